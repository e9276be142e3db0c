// One vsock stream between a guest port and a host port (virtio 1.2 §5.10.6.5 Stream Sockets), as
// a state machine with no I/O. Inputs: validated guest packets (fromGuest), host-side events
// (hostData, hostAccepted, hostEof, hostClose, hostReset, accept) and time (tick, with `now` in
// ms). Outputs: packets for the guest, pulled one at a time (nextPacketForGuest); bytes for the
// host side, pulled a chunk at a time (hostBoundChunk, then hostAccepted with what the host took);
// and host-side effects (takeEffects: connected, end-of-stream, pause/resume reading, close).
//
// Flow control, both ways (§5.10.6.3):
// - host -> guest: we never send more than the guest's credit,
//   peer_buf_alloc - (tx_cnt - peer_fwd_cnt), taken from the latest guest packet. With data
//   waiting and no credit we send one CREDIT_REQUEST per stall (again only after data moved), so
//   an idle reader on the guest side cannot make us ping-pong requests and updates.
// - guest -> host: we advertise buf_alloc (config.bufAlloc) and fwd_cnt, which counts the bytes
//   the host side actually accepted. Bytes the host did not take yet wait in `toHost`, which can
//   never exceed buf_alloc: a guest that sends more than its credit is reset (RST), so a slow host
//   reader stalls the guest instead of growing our memory.
// - CREDIT_UPDATE: we know exactly what the guest believes its credit is,
//   buf_alloc - (rx_cnt - fwd_cnt as last sent), and send an update when that falls below
//   config.creditUpdateThreshold while we have freed space it does not know about, and whenever
//   the guest asks (CREDIT_REQUEST). (Linux's receiver, which cannot see the sender's view, sends
//   one after a read once buf_alloc minus the bytes read since its last advertisement falls below
//   VIRTIO_VSOCK_MAX_PKT_BUF_SIZE, 64 KiB: the same idea, one packet's worth of margin.) Every
//   packet we send carries buf_alloc and fwd_cnt, so any packet answers a pending update and at
//   most one update is ever pending.
//
// Shutdown and reset (§5.10.6.5), following Linux's virtio_transport_common.c:
// - guest SHUTDOWN(SEND): once everything it sent reached the host, the host side is told
//   end-of-stream (half-close of the host socket's write side).
// - guest SHUTDOWN(RCV): host data still buffered for the guest is dropped, later host data too.
// - guest SHUTDOWN with both flags (cumulative): the guest is done and, like Linux's
//   virtio_transport_recv_connected, we confirm with RST once its data reached the host (or after
//   closeTimeoutMs); the host side is told close('closed').
// - host EOF: SHUTDOWN(SEND) to the guest after the buffered host data.
// - host close: SHUTDOWN(RCV|SEND) after the buffered host data, then we wait closeTimeoutMs for
//   the guest's RST (Linux answers a full SHUTDOWN with RST at once, or when its socket is
//   closed) and send RST ourselves when it does not come.
// - RST from the guest ends the connection at once; we never answer an RST. One exception: bytes
//   the guest sent before SHUTDOWN(SEND) and an RST are still delivered to the host side (Linux
//   sends that RST itself when the peer has not confirmed its close within 8 s, its
//   VSOCK_CLOSE_TIMEOUT, and its own receive side keeps data that arrived before an RST
//   readable); nothing more goes to the guest, and the host side is told close('closed') once
//   they are out. Protocol violations, host errors and timeouts send RST and close the host side
//   ('reset' / 'timeout').
// - Close deadlines while the guest's bytes wait for the host (after its full SHUTDOWN, or its
//   RST as above) count from the last time the host took some: a slow but reading host gets all
//   of them; one that stops taking any for closeTimeoutMs loses them.
//
// Memory per connection: toHost holds at most config.bufAlloc bytes (64 KiB chunks),
// toGuest at most config.hostBufferBytes; ByteQueue's coalescing keeps the allocation within
// about twice that, whatever the chunk sizes. Control output is a handful of flags: at most one
// pending packet of each kind.

import { ByteQueue } from './byte-queue.js';
import {
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_BOTH,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HOST_CID,
  VSOCK_MAX_PKT_PAYLOAD,
  opName,
  type VsockHeader,
  type VsockOp,
} from './packet.js';

export type ConnectionState =
  /** Host-initiated: our REQUEST is queued or sent; waiting for the guest's RESPONSE. */
  | 'local-init'
  /** Guest-initiated: the guest's REQUEST arrived; waiting for the host side to accept. */
  | 'peer-init'
  /** Data flows; either direction may be half-closed (see the shutdown fields). */
  | 'established'
  /** An RST for the guest is pending; the host side has been told to close. */
  | 'killed'
  /** Nothing left to do: the muxer forgets the connection. */
  | 'closed';

/** Why the host side is closed. */
export type CloseReason =
  /** Both sides finished cleanly: end the host socket gracefully. */
  | 'closed'
  /** Reset by the guest, by a protocol violation, or by a host-side error: abort the host socket. */
  | 'reset'
  /** The connection was never established: the guest refused (RST to our REQUEST) or the host side refused. */
  | 'refused'
  /** The guest did not answer in time (connect or close timeout). */
  | 'timeout'
  /** The device was reset; every connection is dropped. */
  | 'device-reset';

/** What the host side must do, drained by the muxer after every input (takeEffects). */
export type HostEffect =
  /** Host-initiated: the guest accepted the connection (hybrid vsock answers "OK <port>\n"). */
  | { readonly kind: 'connected' }
  /** The guest sends no more and all its bytes were delivered: half-close the host socket's write side. */
  | { readonly kind: 'end-of-stream' }
  /** Host data for the guest reached config.hostBufferBytes: stop reading the host socket. */
  | { readonly kind: 'pause-reading' }
  /** The guest drained the buffer to half of config.hostBufferBytes: read the host socket again. */
  | { readonly kind: 'resume-reading' }
  /** The connection is over for the host side (exactly once per connection). */
  | { readonly kind: 'close'; readonly reason: CloseReason };

/** What a guest packet did to the connection. */
export type GuestPacketVerdict =
  /** Accepted. */
  | 'ok'
  /** Not valid in this state: the connection was reset. */
  | 'violation'
  /** Arrived after the connection ended (or while our RST is on its way): no effect. */
  | 'ignored';

export interface ConnectionConfig {
  /** The guest's CID: dst_cid of every packet we send. */
  readonly guestCid: bigint;
  /** Our receive buffer for guest -> host bytes, advertised as buf_alloc. */
  readonly bufAlloc: number;
  /** The most host -> guest bytes held while the guest has no credit or no rx buffers. */
  readonly hostBufferBytes: number;
  /** Send CREDIT_UPDATE when the guest's view of its credit falls below this. */
  readonly creditUpdateThreshold: number;
  /** How long a connection waits for the guest's RESPONSE or the host side's accept. */
  readonly connectTimeoutMs: number;
  /** How long a closing connection waits for the guest's RST or for its data to reach the host. */
  readonly closeTimeoutMs: number;
}

/** A packet for the guest's rx queue: the header to encode, then `len` payload bytes. */
export interface GuestBoundPacket {
  readonly header: VsockHeader;
  /** header.len bytes (empty for control packets). */
  readonly payload: Uint8Array;
}

/** Counters of one connection, for tests and diagnostics. */
export interface ConnectionAccounting {
  /** Payload bytes received from the guest (u32, wrapping). */
  readonly rxCnt: number;
  /** Of those, bytes the host side accepted or that were dropped because it is gone (u32, wrapping). */
  readonly fwdCnt: number;
  /** Payload bytes sent to the guest (u32, wrapping). */
  readonly txCnt: number;
  readonly peerBufAlloc: number;
  readonly peerFwdCnt: number;
  /** Bytes from the guest not yet accepted by the host side. */
  readonly toHostBytes: number;
  /** Bytes from the host not yet sent to the guest. */
  readonly toGuestBytes: number;
  readonly readingPaused: boolean;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** u32 a - b, wrapping. */
function wrapSub(a: number, b: number): number {
  return (a - b) >>> 0;
}

export class VsockConnection {
  private stateValue: ConnectionState;
  private requestSent = false;
  private responsePending = false;
  private rstPending = false;
  // The guest's half-close promises: permanent once received (§5.10.6.5).
  private guestNoRecv = false;
  private guestNoSend = false;
  // The host side's: it sends no more (EOF), it receives no more (closed).
  private hostNoSend = false;
  private hostGone = false;
  /** SHUTDOWN flags the guest must be told, and those it was told. */
  private shutdownOwed = 0;
  private shutdownSent = 0;
  private endOfStreamTold = false;
  private closeTold = false;
  /** The guest reset the connection after SHUTDOWN(SEND) with bytes still for the host: they drain, nothing goes to the guest. */
  private guestReset = false;
  // guest -> host
  private rxCnt = 0;
  private fwdCnt = 0;
  private lastFwdCntSent = 0;
  private readonly toHost = new ByteQueue();
  private creditUpdatePending = false;
  // host -> guest
  private peerBufAlloc = 0;
  private peerFwdCnt = 0;
  private txCnt = 0;
  private readonly toGuest = new ByteQueue();
  private readingPaused = false;
  private creditRequestSent = false;
  private deadlineAt: number | undefined;
  private effects: HostEffect[] = [];
  private violationText: string | undefined;

  private constructor(
    private readonly config: ConnectionConfig,
    readonly guestPort: number,
    readonly hostPort: number,
    /** Who asked for the connection. */
    readonly initiator: 'host' | 'guest',
    state: ConnectionState,
  ) {
    this.stateValue = state;
  }

  /** A host-initiated connection: a REQUEST for the guest is pending; the guest must answer within connectTimeoutMs. */
  static hostInitiated(config: ConnectionConfig, guestPort: number, hostPort: number, now: number): VsockConnection {
    const c = new VsockConnection(config, guestPort, hostPort, 'host', 'local-init');
    c.deadlineAt = now + config.connectTimeoutMs;
    return c;
  }

  /**
   * A guest-initiated connection from its (validated) REQUEST: waits for accept(), within
   * connectTimeoutMs. The REQUEST carries the guest's first credit information.
   */
  static guestInitiated(config: ConnectionConfig, request: VsockHeader, now: number): VsockConnection {
    const c = new VsockConnection(config, request.srcPort, request.dstPort, 'guest', 'peer-init');
    c.peerBufAlloc = request.bufAlloc;
    c.peerFwdCnt = request.fwdCnt;
    c.deadlineAt = now + config.connectTimeoutMs;
    return c;
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** The time (ms) at which tick() will act, if any. */
  get deadline(): number | undefined {
    return this.deadlineAt;
  }

  get accounting(): ConnectionAccounting {
    return {
      rxCnt: this.rxCnt,
      fwdCnt: this.fwdCnt,
      txCnt: this.txCnt,
      peerBufAlloc: this.peerBufAlloc,
      peerFwdCnt: this.peerFwdCnt,
      toHostBytes: this.toHost.length,
      toGuestBytes: this.toGuest.length,
      readingPaused: this.readingPaused,
    };
  }

  /** What the guest did wrong, when a protocol violation reset the connection. */
  get violationMessage(): string | undefined {
    return this.violationText;
  }

  /** Bytes held by this connection's two buffers (for tests of the memory bound). */
  get allocatedBytes(): number {
    return this.toHost.allocatedBytes + this.toGuest.allocatedBytes;
  }

  /** How many more payload bytes the guest can take now (§5.10.6.3); 0 when it shrank its buffer below what is in flight. */
  get peerCredit(): number {
    const inFlight = wrapSub(this.txCnt, this.peerFwdCnt);
    return inFlight >= this.peerBufAlloc ? 0 : this.peerBufAlloc - inFlight;
  }

  /** The credit the guest believes it has: computed from the fwd_cnt we last sent it. */
  get guestSeenCredit(): number {
    const used = wrapSub(this.rxCnt, this.lastFwdCntSent);
    return used >= this.config.bufAlloc ? 0 : this.config.bufAlloc - used;
  }

  /** The host-side effects since the last call, in order. */
  takeEffects(): HostEffect[] {
    if (this.effects.length === 0) return [];
    const out = this.effects;
    this.effects = [];
    return out;
  }

  // --- inputs from the guest -----------------------------------------------------------------

  /**
   * A packet from the guest for this connection, already checked by checkGuestPacket (so
   * `payload` holds at least header.len bytes; it may be a view of guest memory and is copied if
   * kept). REQUEST is not expected here: the muxer creates connections from it.
   */
  fromGuest(header: VsockHeader, payload: Uint8Array, now: number): GuestPacketVerdict {
    if (this.stateValue === 'closed') return 'ignored';
    // §5.10.6.3: every packet carries the sender's buf_alloc and fwd_cnt.
    this.peerBufAlloc = header.bufAlloc;
    this.peerFwdCnt = header.fwdCnt;
    if (this.guestReset) return 'ignored';
    if (header.op === VIRTIO_VSOCK_OP_RST) {
      this.onGuestReset(now);
      return 'ok';
    }
    if (this.stateValue === 'killed') return 'ignored';
    switch (header.op) {
      case VIRTIO_VSOCK_OP_RESPONSE:
        if (this.stateValue !== 'local-init' || !this.requestSent) return this.protocolViolation('RESPONSE to no REQUEST of ours');
        this.stateValue = 'established';
        this.deadlineAt = undefined;
        this.effects.push({ kind: 'connected' });
        return 'ok';
      case VIRTIO_VSOCK_OP_RW:
        return this.guestData(header.len, payload);
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        if (!this.isEstablished()) return this.protocolViolation('SHUTDOWN before the connection was established');
        this.guestShutdown(header.flags, now);
        return 'ok';
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        return 'ok'; // the credit fields were taken above
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        if (this.isEstablished()) this.creditUpdatePending = true;
        return 'ok';
      default:
        return this.protocolViolation(`${opName(header.op)} on an existing connection`);
    }
  }

  private isEstablished(): boolean {
    return this.stateValue === 'established' && !this.responsePending;
  }

  private onGuestReset(now: number): void {
    if (this.stateValue === 'killed') {
      // Our own RST is pending: the guest already knows the connection is gone.
      this.rstPending = false;
      this.stateValue = 'closed';
      return;
    }
    if (this.stateValue === 'established' && this.guestNoSend && this.toHost.length > 0 && !this.hostGone) {
      // What the guest sent before closing still reaches the host (see the top of the file).
      this.guestReset = true;
      this.toGuest.clear();
      this.responsePending = false;
      this.creditUpdatePending = false;
      this.shutdownOwed = this.shutdownSent;
      this.deadlineAt = now + this.config.closeTimeoutMs;
      return;
    }
    const clean =
      this.toHost.length === 0 && this.toGuest.length === 0 && (this.hostGone || (this.guestNoRecv && this.guestNoSend));
    this.end(this.stateValue === 'local-init' ? 'refused' : clean ? 'closed' : 'reset', false);
  }

  private guestData(len: number, payload: Uint8Array): GuestPacketVerdict {
    if (!this.isEstablished()) return this.protocolViolation('RW before the connection was established');
    if (this.guestNoSend) return this.protocolViolation('RW after the guest sent SHUTDOWN(SEND)');
    // §5.10.6.3: the guest may only send what fits in the buffer we advertised.
    if (this.toHost.length + len > this.config.bufAlloc) {
      return this.protocolViolation(`RW of ${len} bytes with ${this.toHost.length} of our ${this.config.bufAlloc}-byte buffer in use`);
    }
    this.rxCnt = (this.rxCnt + len) >>> 0;
    if (len === 0) return 'ok';
    if (this.hostGone) {
      // Nobody to give it to: count it as consumed so the guest's credit keeps moving.
      this.fwdCnt = (this.fwdCnt + len) >>> 0;
      this.maybeScheduleCreditUpdate();
      return 'ok';
    }
    this.toHost.push(payload.subarray(0, len), false);
    return 'ok';
  }

  private guestShutdown(flags: number, now: number): void {
    const hadNoRecv = this.guestNoRecv;
    if (flags & VIRTIO_VSOCK_SHUTDOWN_RCV) this.guestNoRecv = true;
    if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND) this.guestNoSend = true;
    if (this.guestNoRecv && !hadNoRecv) {
      this.toGuest.clear();
      this.creditRequestSent = false;
      this.maybeResumeReading();
    }
    this.advanceClose(now);
  }

  /** The protocol was broken: reset the connection. */
  private protocolViolation(what: string): GuestPacketVerdict {
    this.violationText = what;
    this.kill('reset');
    return 'violation';
  }

  // --- inputs from the host side -------------------------------------------------------------

  /** The host side accepted a guest-initiated connection: RESPONSE goes out next. False if not in peer-init. */
  accept(): boolean {
    if (this.stateValue !== 'peer-init') return false;
    this.stateValue = 'established';
    this.responsePending = true;
    this.deadlineAt = undefined;
    return true;
  }

  /**
   * Bytes read from the host side for the guest. Returns how many were taken (the rest must be
   * offered again after resume-reading); the taken part is kept by reference, so the caller must
   * not change it. Bytes that can no longer reach the guest (the guest shut its receive side,
   * the host said EOF, the connection is over) are dropped and counted as taken.
   */
  hostData(bytes: Uint8Array): number {
    const n = bytes.byteLength;
    if (this.stateValue === 'killed' || this.stateValue === 'closed' || this.hostNoSend || this.guestNoRecv) return n;
    const take = Math.min(n, this.config.hostBufferBytes - this.toGuest.length);
    if (take > 0) this.toGuest.push(take === n ? bytes : bytes.subarray(0, take), true);
    if (this.toGuest.length >= this.config.hostBufferBytes && !this.readingPaused) {
      this.readingPaused = true;
      this.effects.push({ kind: 'pause-reading' });
    }
    return take;
  }

  /** The next bytes for the host side (a view the host may keep), or undefined. Follow with hostAccepted. */
  hostBoundChunk(): Uint8Array | undefined {
    return this.stateValue === 'established' ? this.toHost.peek() : undefined;
  }

  /** The host side took the first `n` bytes of hostBoundChunk(): they count as forwarded (fwd_cnt). */
  hostAccepted(n: number, now: number): void {
    if (n <= 0 || this.stateValue !== 'established') return;
    const taken = Math.min(n, this.toHost.length);
    this.toHost.consume(taken);
    this.fwdCnt = (this.fwdCnt + taken) >>> 0;
    // The host is taking bytes: a close that waits for them is not stuck.
    if (this.deadlineAt !== undefined && (this.guestReset || (this.guestNoRecv && this.guestNoSend)) && !this.hostGone) this.deadlineAt = now + this.config.closeTimeoutMs;
    this.maybeScheduleCreditUpdate();
    this.advanceClose(now);
  }

  /** The host side will send nothing more: SHUTDOWN(SEND) to the guest after the buffered data. */
  hostEof(): void {
    if (this.stateValue === 'killed' || this.stateValue === 'closed') return;
    this.hostNoSend = true;
    this.shutdownOwed |= VIRTIO_VSOCK_SHUTDOWN_SEND;
  }

  /**
   * The host side is closed for good (it neither sends nor receives): SHUTDOWN(RCV|SEND) to the
   * guest after the buffered data, then wait closeTimeoutMs for its RST. Before the connection is
   * established this ends it at once.
   */
  hostClose(now: number): void {
    if (this.stateValue === 'local-init') return this.kill('closed');
    if (this.stateValue === 'peer-init') return this.kill('refused');
    if (this.stateValue !== 'established') return;
    this.hostNoSend = true;
    this.hostGone = true;
    this.fwdCnt = (this.fwdCnt + this.toHost.clear()) >>> 0;
    this.shutdownOwed = VIRTIO_VSOCK_SHUTDOWN_BOTH;
    this.armDeadline(now + this.config.closeTimeoutMs);
    this.advanceClose(now);
  }

  /** The host side failed: RST to the guest. */
  hostReset(): void {
    this.kill('reset');
  }

  // --- time ------------------------------------------------------------------------------------

  /** Acts on an expired deadline (connect or close timeout): RST to the guest, close('timeout'). */
  tick(now: number): void {
    if (this.deadlineAt === undefined || now < this.deadlineAt) return;
    if (this.guestReset) this.end('timeout', false);
    else this.kill('timeout');
  }

  private armDeadline(at: number): void {
    if (this.deadlineAt === undefined || at < this.deadlineAt) this.deadlineAt = at;
  }

  // --- outputs for the guest -----------------------------------------------------------------

  /** Whether nextPacketForGuest would give a packet given room for a full payload. */
  hasPacketForGuest(): boolean {
    return this.nextOp(VSOCK_MAX_PKT_PAYLOAD) !== undefined;
  }

  /**
   * The next packet for the guest, with at most `maxPayload` payload bytes, or undefined. Order:
   * RST, REQUEST/RESPONSE, data, SHUTDOWN (only once the data before it is out), CREDIT_REQUEST,
   * CREDIT_UPDATE (any packet carries the credit, so a pending update is dropped once another
   * packet goes out).
   */
  nextPacketForGuest(maxPayload: number): GuestBoundPacket | undefined {
    const op = this.nextOp(maxPayload);
    if (op === undefined) return undefined;
    let payload: Uint8Array = EMPTY;
    let flags = 0;
    switch (op) {
      case VIRTIO_VSOCK_OP_RST:
        this.rstPending = false;
        this.stateValue = 'closed';
        break;
      case VIRTIO_VSOCK_OP_REQUEST:
        this.requestSent = true;
        break;
      case VIRTIO_VSOCK_OP_RESPONSE:
        this.responsePending = false;
        break;
      case VIRTIO_VSOCK_OP_RW: {
        const n = Math.min(maxPayload, VSOCK_MAX_PKT_PAYLOAD, this.peerCredit, this.toGuest.length);
        payload = this.toGuest.take(n);
        this.txCnt = (this.txCnt + n) >>> 0;
        this.creditRequestSent = false;
        this.maybeResumeReading();
        break;
      }
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        flags = this.shutdownOwed;
        this.shutdownSent = this.shutdownOwed;
        break;
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        this.creditRequestSent = true;
        break;
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        break;
    }
    this.creditUpdatePending = false;
    this.lastFwdCntSent = this.fwdCnt;
    return {
      header: {
        srcCid: VSOCK_HOST_CID,
        dstCid: this.config.guestCid,
        srcPort: this.hostPort,
        dstPort: this.guestPort,
        len: payload.byteLength,
        type: VIRTIO_VSOCK_TYPE_STREAM,
        op,
        flags,
        bufAlloc: this.config.bufAlloc,
        fwdCnt: this.fwdCnt,
      },
      payload,
    };
  }

  private nextOp(maxPayload: number): VsockOp | undefined {
    switch (this.stateValue) {
      case 'closed':
      case 'peer-init':
        return undefined;
      case 'killed':
        return this.rstPending ? VIRTIO_VSOCK_OP_RST : undefined;
      case 'local-init':
        return this.requestSent ? undefined : VIRTIO_VSOCK_OP_REQUEST;
      case 'established':
        break;
    }
    if (this.guestReset) return undefined;
    if (this.responsePending) return VIRTIO_VSOCK_OP_RESPONSE;
    const waiting = !this.guestNoRecv && this.toGuest.length > 0;
    const credit = this.peerCredit;
    if (waiting && credit > 0 && maxPayload >= 1) return VIRTIO_VSOCK_OP_RW;
    if ((this.shutdownOwed & ~this.shutdownSent) !== 0 && !waiting) return VIRTIO_VSOCK_OP_SHUTDOWN;
    if (waiting && credit === 0 && !this.creditRequestSent) return VIRTIO_VSOCK_OP_CREDIT_REQUEST;
    if (this.creditUpdatePending) return VIRTIO_VSOCK_OP_CREDIT_UPDATE;
    return undefined;
  }

  // --- internal transitions ------------------------------------------------------------------

  /** Schedules a CREDIT_UPDATE when the guest may be starved of credit we could give it. */
  private maybeScheduleCreditUpdate(): void {
    if (!this.isEstablished() || this.guestNoSend || this.fwdCnt === this.lastFwdCntSent) return;
    if (this.guestSeenCredit < this.config.creditUpdateThreshold) this.creditUpdatePending = true;
  }

  private maybeResumeReading(): void {
    if (this.readingPaused && this.toGuest.length <= this.config.hostBufferBytes / 2) {
      this.readingPaused = false;
      this.effects.push({ kind: 'resume-reading' });
    }
  }

  /** Moves the close handshake on after a shutdown or after bytes reached the host side. */
  private advanceClose(now: number): void {
    if (this.stateValue !== 'established') return;
    if (this.guestReset) {
      if (this.toHost.length === 0) this.end('closed', false);
      return;
    }
    if (this.guestNoRecv && this.guestNoSend) {
      // The guest is done: confirm with RST once its bytes reached the host side (Linux answers a
      // full SHUTDOWN the same way), giving the host closeTimeoutMs to take them.
      if (this.toHost.length === 0) this.kill('closed');
      else this.armDeadline(now + this.config.closeTimeoutMs);
      return;
    }
    if (this.guestNoSend && this.toHost.length === 0 && !this.endOfStreamTold && !this.hostGone) {
      this.endOfStreamTold = true;
      this.effects.push({ kind: 'end-of-stream' });
    }
  }

  /**
   * Ends the connection: buffers dropped, the host side told close(reason), and an RST queued for
   * the guest if it knows about the connection (it does unless our REQUEST never went out).
   */
  kill(reason: CloseReason): void {
    if (this.stateValue === 'killed' || this.stateValue === 'closed') return;
    const guestKnows = this.stateValue !== 'local-init' || this.requestSent;
    this.end(reason, guestKnows);
  }

  /** Ends the connection with no packet for the guest (a transport reset: the guest drops its connections itself). */
  abandon(reason: CloseReason): void {
    if (this.stateValue !== 'closed') this.end(reason, false);
  }

  private end(reason: CloseReason, sendRst: boolean): void {
    this.toHost.clear();
    this.toGuest.clear();
    this.responsePending = false;
    this.creditUpdatePending = false;
    this.deadlineAt = undefined;
    if (!this.closeTold) {
      this.closeTold = true;
      this.effects.push({ kind: 'close', reason });
    }
    this.rstPending = sendRst;
    this.stateValue = sendRst ? 'killed' : 'closed';
  }
}
