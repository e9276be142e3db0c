// The vsock connection multiplexer: the table of streams between guest ports and host ports, and
// the one object the virtio device and the host backend talk to. No I/O, no timers: the device
// drives it from its queues, the backend from its sockets, and both pass the time (`now`, ms).
//
// How the virtio device (virtio 1.2 §5.10) drives it:
// - tx queue (guest -> device): while canTakeGuestPacket(), pop a chain, read its first 44
//   readable bytes as `header` and pass the readable bytes after them as `payload` (views of guest
//   memory are fine: they are read during the call, copied where kept, never written):
//   handleGuestPacket(header, payload, now). Return the chain with pushUsed(head, 0). When
//   canTakeGuestPacket() is false, stop: replies we owe the guest fill our bounded queue, and
//   §5.10.6.1 lets the device stop processing tx until the guest processes rx. Retry after rx.
// - rx queue (device -> guest): while hasPacketForGuest() and the guest gave a buffer, pop a
//   chain and call nextPacketForGuest(chain.writableLength); write encodeHeader(packet.header)
//   then packet.payload into it and pushUsed(head, 44 + payload.length). It may return undefined
//   (a buffer too small for a header, or for the only data pending): return that chain with
//   used length 0 (Linux drops such a buffer) and stop until the next notification.
// - event queue: after transportReset() (e.g. on restoring a snapshot), while
//   hasEventForGuest() and the guest gave a buffer, write takeEventForGuest() (4 bytes).
// - driver reset of the device: reset() drops every connection, telling each host side.
// - time: arm one timer for nextDeadline() after every call and call tick(now) when it fires.
// After any input the device should look at hasPacketForGuest() again: host events make packets.
//
// How a host backend (the hybrid Unix-socket one) plugs in: it implements VsockBackend and calls
// hostConnect / acceptGuestConnection / refuseGuestConnection / hostData / hostWritable / hostEof /
// hostClose / hostReset with the connection id the muxer gave it. Backend callbacks run inside
// muxer calls and must not call the muxer back synchronously (VsockUsageError 're-entered';
// defer with queueMicrotask).
//
// Bounds: at most maxConnections connections (REQUESTs beyond are answered with RST, hostConnect
// is refused), and a guest can only open those the backend accepts; each holds at most bufAlloc
// bytes for the host and hostBufferBytes for the guest (allocated: at most about twice that, see
// byte-queue.ts) and a few pending control flags; replies to packets for no connection wait in a
// queue of at most maxPendingResets, deduplicated. So what we hold is bounded by about
// maxConnections * 2 * (bufAlloc + hostBufferBytes) + maxPendingResets small records; lower
// maxConnections or bufAlloc where that is too much.

import {
  type CloseReason,
  type ConnectionAccounting,
  type ConnectionConfig,
  type ConnectionState,
  type GuestBoundPacket,
  VsockConnection,
} from './connection.js';
import { VsockPacketError, type VsockPacketErrorReason, VsockUsageError } from './errors.js';
import {
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HEADER_SIZE,
  VSOCK_HOST_CID,
  VSOCK_MAX_PKT_PAYLOAD,
  checkGuestCid,
  checkGuestPacket,
  opName,
  encodeEvent,
  type CheckedPacket,
  type PacketLimits,
  type VsockHeader,
} from './packet.js';

export type { CloseReason, GuestBoundPacket } from './connection.js';

/** What the backend answers to a guest's connection request. */
export type GuestConnectDecision =
  /** A host listener took it: RESPONSE goes to the guest. */
  | 'accept'
  /** No listener on that port: RST goes to the guest; the connection id is forgotten (no close()). */
  | 'refuse'
  /** Not known yet (an asynchronous connect): call acceptGuestConnection or refuseGuestConnection later. */
  | 'defer';

/**
 * The host side of the connections, implemented by a backend (the hybrid Unix-socket one forwards
 * guest connections to `<uds_path>_<port>`). Every method gets the connection id the muxer chose.
 * The callbacks run inside muxer calls and must not call the muxer synchronously.
 */
export interface VsockBackend {
  /** The guest asks to connect from guestPort to hostPort (a REQUEST). */
  onGuestConnect(connId: number, guestPort: number, hostPort: number): GuestConnectDecision;
  /** A host-initiated connection was accepted by the guest (hybrid vsock writes "OK <hostPort>\n"). */
  connected(connId: number): void;
  /**
   * Bytes from the guest for the host side. Returns how many were taken, 0..bytes.length; the
   * taken part may be kept without a copy (it is never written again). Take only what the host
   * side absorbs without unbounded buffering (with a Node socket: nothing while
   * socket.writableNeedDrain, else write and take all). After returning less than offered,
   * nothing more is offered until hostWritable(connId) (e.g. on 'drain'): meanwhile the guest is
   * held back by its credit.
   */
  deliver(connId: number, bytes: Uint8Array): number;
  /** The guest will send nothing more and everything it sent was delivered (half-close the write side). */
  endOfStream(connId: number): void;
  /** Stop reading the host side: hostBufferBytes of its data wait for the guest. */
  pauseReading(connId: number): void;
  /** Read the host side again. */
  resumeReading(connId: number): void;
  /**
   * The connection is over: close the host side ('closed': gracefully; otherwise abort). Called
   * exactly once for every connection of hostConnect or of onGuestConnect answered 'accept' or
   * 'defer' — also when the backend itself ended it (hostClose, hostReset, refuseGuestConnection).
   */
  close(connId: number, reason: CloseReason): void;
}

export interface VsockMuxerOptions {
  /** The guest's CID (§5.10.4): src_cid of every valid guest packet. */
  readonly guestCid: bigint;
  /** Connections at once (Firecracker: 1023). */
  readonly maxConnections?: number;
  /** Our receive buffer per connection for guest -> host bytes, advertised as buf_alloc. */
  readonly bufAlloc?: number;
  /** Host -> guest bytes held per connection before the host side is told to pause reading. */
  readonly hostBufferBytes?: number;
  /** CREDIT_UPDATE when the guest's view of its credit falls below this (default min(64 KiB, bufAlloc / 2)). */
  readonly creditUpdateThreshold?: number;
  /** Wait for the guest's RESPONSE, or for a deferred accept. */
  readonly connectTimeoutMs?: number;
  /** Wait for the guest's RST after our full SHUTDOWN, or for its last bytes to reach the host. */
  readonly closeTimeoutMs?: number;
  /** RST replies to packets for no connection waiting for rx buffers. */
  readonly maxPendingResets?: number;
  /** Largest payload accepted from and sent to the guest (at most 64 KiB). */
  readonly maxPacketPayload?: number;
  /** Where to say why a guest packet was refused or a connection reset (a debug log). */
  readonly log?: (line: string) => void;
}

/**
 * Defaults. 256 KiB of receive buffer is Linux's default vsock buffer size
 * (VIRTIO_VSOCK_DEFAULT_BUF_SIZE); 1023 connections, 2 s to connect and 256 pending RSTs are
 * Firecracker's (MAX_CONNECTIONS, CONN_REQUEST_TIMEOUT_MS, MUXER_RXQ_SIZE); 8 s to close is
 * Linux's VSOCK_CLOSE_TIMEOUT.
 */
export const VSOCK_MUXER_DEFAULTS = {
  maxConnections: 1023,
  bufAlloc: 256 * 1024,
  hostBufferBytes: 64 * 1024,
  connectTimeoutMs: 2000,
  closeTimeoutMs: 8000,
  maxPendingResets: 256,
  maxPacketPayload: VSOCK_MAX_PKT_PAYLOAD,
} as const;

export type HostConnectResult =
  | { readonly ok: true; readonly connId: number; readonly hostPort: number }
  | { readonly ok: false; readonly reason: 'too-many-connections' | 'port-in-use' };

/** A connection as the backend and tests see it. */
export interface ConnectionInfo {
  readonly connId: number;
  readonly guestPort: number;
  readonly hostPort: number;
  readonly initiator: 'host' | 'guest';
  readonly state: ConnectionState;
  readonly accounting: ConnectionAccounting;
}

export interface VsockMuxerStats {
  packetsFromGuest: number;
  packetsToGuest: number;
  /** Malformed guest packets, by reason (dropped, or answered with RST). */
  invalidPackets: Record<VsockPacketErrorReason, number>;
  /** Valid packets that broke a connection's protocol (it was reset). */
  protocolViolations: number;
  /** RST replies queued for packets addressed to no connection (or refused REQUESTs). */
  resetsQueued: number;
  /** RST replies dropped because maxPendingResets were already waiting. */
  resetsDropped: number;
  /** Guest REQUESTs refused because maxConnections were open. */
  refusedTableFull: number;
  connectionsOpened: number;
  connectionsClosed: number;
}

function emptyStats(): VsockMuxerStats {
  return {
    packetsFromGuest: 0,
    packetsToGuest: 0,
    invalidPackets: {
      'short-header': 0,
      'wrong-src-cid': 0,
      'wrong-dst-cid': 0,
      'unknown-type': 0,
      'unknown-op': 0,
      oversized: 0,
      truncated: 0,
      'unexpected-payload': 0,
    },
    protocolViolations: 0,
    resetsQueued: 0,
    resetsDropped: 0,
    refusedTableFull: 0,
    connectionsOpened: 0,
    connectionsClosed: 0,
  };
}

/** Host-side ports for host-initiated connections: [2^30, 2^31), in turn, like Firecracker's. */
const LOCAL_PORT_FIRST = 2 ** 30;
const LOCAL_PORT_END = 2 ** 31;

interface Entry {
  readonly id: number;
  readonly conn: VsockConnection;
  readonly key: string;
  /** The host port came from the local-port allocator. */
  readonly allocatedPort: boolean;
  /** deliver() took less than offered: wait for hostWritable. */
  hostBlocked: boolean;
}

interface PendingReset {
  readonly guestPort: number;
  readonly hostPort: number;
}

function connKey(guestPort: number, hostPort: number): string {
  return `${guestPort}:${hostPort}`;
}

function checkPort(what: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) {
    throw new VsockUsageError('bad-port', `${what} ${port} is not an integer in [0, 2^32)`);
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`VsockMuxer: ${name} ${value} is not a positive integer`);
  return value;
}

export class VsockMuxer {
  readonly guestCid: bigint;
  readonly stats: VsockMuxerStats = emptyStats();
  private readonly config: ConnectionConfig;
  private readonly limits: PacketLimits;
  private readonly maxConnections: number;
  private readonly maxPendingResets: number;
  private readonly log: ((line: string) => void) | undefined;
  private readonly byId = new Map<number, Entry>();
  private readonly byKey = new Map<string, Entry>();
  /** Connections with a packet for the guest, in round-robin order (a Set keeps insertion order). */
  private readonly ready = new Set<Entry>();
  private readonly resets: PendingReset[] = [];
  private readonly resetKeys = new Set<string>();
  private readonly localPorts = new Set<number>();
  private lastLocalPort = LOCAL_PORT_FIRST - 1;
  private nextId = 1;
  private eventPending = false;
  private busy = false;

  constructor(
    private readonly backend: VsockBackend,
    options: VsockMuxerOptions,
  ) {
    this.guestCid = checkGuestCid(options.guestCid);
    const d = VSOCK_MUXER_DEFAULTS;
    const bufAlloc = positiveInteger('bufAlloc', options.bufAlloc ?? d.bufAlloc);
    if (bufAlloc > 0xffff_ffff) throw new RangeError(`VsockMuxer: bufAlloc ${bufAlloc} does not fit the le32 buf_alloc`);
    const maxPacketPayload = positiveInteger('maxPacketPayload', options.maxPacketPayload ?? d.maxPacketPayload);
    if (maxPacketPayload > VSOCK_MAX_PKT_PAYLOAD) {
      throw new RangeError(`VsockMuxer: maxPacketPayload ${maxPacketPayload} exceeds ${VSOCK_MAX_PKT_PAYLOAD}`);
    }
    this.config = {
      guestCid: this.guestCid,
      bufAlloc,
      hostBufferBytes: positiveInteger('hostBufferBytes', options.hostBufferBytes ?? d.hostBufferBytes),
      creditUpdateThreshold: options.creditUpdateThreshold ?? Math.min(VSOCK_MAX_PKT_PAYLOAD, Math.floor(bufAlloc / 2)),
      connectTimeoutMs: options.connectTimeoutMs ?? d.connectTimeoutMs,
      closeTimeoutMs: options.closeTimeoutMs ?? d.closeTimeoutMs,
    };
    this.limits = { guestCid: this.guestCid, maxPayload: maxPacketPayload };
    this.maxConnections = positiveInteger('maxConnections', options.maxConnections ?? d.maxConnections);
    this.maxPendingResets = positiveInteger('maxPendingResets', options.maxPendingResets ?? d.maxPendingResets);
    this.log = options.log;
  }

  /** Open connections (also those whose RST for the guest is still pending). */
  get connectionCount(): number {
    return this.byId.size;
  }

  /** RST replies waiting for rx buffers. */
  get pendingResetCount(): number {
    return this.resets.length;
  }

  connectionInfo(connId: number): ConnectionInfo | undefined {
    const e = this.byId.get(connId);
    return e && this.info(e);
  }

  connections(): ConnectionInfo[] {
    return [...this.byId.values()].map((e) => this.info(e));
  }

  private info(e: Entry): ConnectionInfo {
    const c = e.conn;
    return { connId: e.id, guestPort: c.guestPort, hostPort: c.hostPort, initiator: c.initiator, state: c.state, accounting: c.accounting };
  }

  // --- tx queue: packets from the guest --------------------------------------------------------

  /** False while maxPendingResets replies wait for rx buffers: stop taking tx chains until rx moves (§5.10.6.1). */
  canTakeGuestPacket(): boolean {
    return this.resets.length < this.maxPendingResets;
  }

  /**
   * One packet from the tx queue. `header`: the first bytes of the chain's readable side (44 are
   * needed); `payload`: the readable bytes after them (at least `len` must be there). Returns the
   * VsockPacketError when the packet was malformed (it was dropped, or answered with RST), else
   * undefined. Never throws on guest input.
   */
  handleGuestPacket(header: Uint8Array, payload: Uint8Array, now: number): VsockPacketError | undefined {
    return this.guarded(() => {
      this.stats.packetsFromGuest++;
      const checked = checkGuestPacket(header, payload.byteLength, this.limits);
      if (!checked.ok) {
        this.malformed(checked);
        return checked.error;
      }
      const h = checked.header;
      const entry = this.byKey.get(connKey(h.srcPort, h.dstPort));
      this.log?.(`guest packet ${opName(h.op)} ${h.srcPort} -> ${h.dstPort}, len ${h.len}, flags ${h.flags}, buf_alloc ${h.bufAlloc}, fwd_cnt ${h.fwdCnt}${entry ? `, connection ${entry.id} ${entry.conn.state}` : ', no connection'}`);
      if (entry) {
        if (entry.conn.fromGuest(h, payload, now) === 'violation') {
          this.stats.protocolViolations++;
          this.log?.(`guest port ${h.srcPort} -> host port ${h.dstPort}: reset: ${entry.conn.violationMessage ?? 'protocol violation'}`);
        }
        this.settle(entry, now);
      } else if (h.op === VIRTIO_VSOCK_OP_REQUEST) {
        this.guestConnect(h, now);
      } else if (h.op !== VIRTIO_VSOCK_OP_RST) {
        // No such connection: tell the guest (Linux's virtio_transport_reset_no_sock), but never
        // answer an RST with an RST.
        this.queueReset(h.srcPort, h.dstPort);
      }
      return undefined;
    });
  }

  /**
   * A malformed packet. With wrong CIDs or no header there is nobody trustworthy to answer:
   * dropped. Otherwise the connection it names is reset, or, when there is none, an RST answers
   * it (§5.10.6.4 requires one for an unknown type). A malformed RST is never answered with one:
   * its connection just ends.
   */
  private malformed(checked: Extract<CheckedPacket, { ok: false }>): void {
    const reason = checked.error.reason;
    this.stats.invalidPackets[reason]++;
    this.log?.(`malformed packet from the guest: ${checked.error.message}`);
    const h = checked.header;
    if (!h || reason === 'wrong-src-cid' || reason === 'wrong-dst-cid') return;
    const entry = this.byKey.get(connKey(h.srcPort, h.dstPort));
    if (entry) {
      if (h.op === VIRTIO_VSOCK_OP_RST) entry.conn.abandon('reset');
      else entry.conn.kill('reset');
      this.refresh(entry);
    } else if (h.op !== VIRTIO_VSOCK_OP_RST) {
      this.queueReset(h.srcPort, h.dstPort);
    }
  }

  private guestConnect(request: VsockHeader, now: number): void {
    const { srcPort: guestPort, dstPort: hostPort } = request;
    if (this.byId.size >= this.maxConnections) {
      this.stats.refusedTableFull++;
      this.queueReset(guestPort, hostPort);
      return;
    }
    const entry = this.add(VsockConnection.guestInitiated(this.config, request, now), false);
    const decision: unknown = this.backend.onGuestConnect(entry.id, guestPort, hostPort);
    if (decision === 'refuse') {
      this.remove(entry);
      this.queueReset(guestPort, hostPort);
      return;
    }
    if (decision === 'accept') entry.conn.accept();
    else if (decision !== 'defer') {
      this.remove(entry);
      throw new VsockUsageError('bad-decision', `onGuestConnect returned ${String(decision)}, not 'accept', 'refuse' or 'defer'`);
    }
    this.settle(entry, now);
  }

  private queueReset(guestPort: number, hostPort: number): void {
    const key = connKey(guestPort, hostPort);
    if (this.resetKeys.has(key)) return;
    if (this.resets.length >= this.maxPendingResets) {
      this.stats.resetsDropped++;
      return;
    }
    this.resets.push({ guestPort, hostPort });
    this.resetKeys.add(key);
    this.stats.resetsQueued++;
  }

  // --- rx queue: packets for the guest ---------------------------------------------------------

  /** Whether a packet waits for an rx buffer. */
  hasPacketForGuest(): boolean {
    return this.resets.length > 0 || this.ready.size > 0;
  }

  /**
   * The next packet for an rx buffer of `maxLen` bytes (header included), or undefined when
   * nothing fits. Pending RST replies go first, then the connections in turn (one packet each).
   */
  nextPacketForGuest(maxLen: number): GuestBoundPacket | undefined {
    return this.guarded(() => {
      if (!(maxLen >= VSOCK_HEADER_SIZE)) return undefined;
      const maxPayload = Math.min(Math.floor(maxLen) - VSOCK_HEADER_SIZE, this.limits.maxPayload);
      const reset = this.resets.shift();
      if (reset) {
        this.resetKeys.delete(connKey(reset.guestPort, reset.hostPort));
        this.stats.packetsToGuest++;
        return this.resetPacket(reset);
      }
      for (let tries = this.ready.size; tries > 0; tries--) {
        const entry = this.ready.values().next().value as Entry;
        this.ready.delete(entry); // refresh() puts it back at the end if it has more to send
        const packet = entry.conn.nextPacketForGuest(maxPayload);
        this.refresh(entry);
        if (packet) {
          this.stats.packetsToGuest++;
          return packet;
        }
      }
      return undefined;
    });
  }

  private resetPacket(r: PendingReset): GuestBoundPacket {
    return {
      header: {
        srcCid: VSOCK_HOST_CID,
        dstCid: this.guestCid,
        srcPort: r.hostPort,
        dstPort: r.guestPort,
        len: 0,
        type: VIRTIO_VSOCK_TYPE_STREAM,
        op: VIRTIO_VSOCK_OP_RST,
        flags: 0,
        bufAlloc: 0,
        fwdCnt: 0,
      },
      payload: new Uint8Array(0),
    };
  }

  // --- event queue and resets ------------------------------------------------------------------

  /**
   * The host lost every connection (e.g. a snapshot was restored): each host side is told
   * close('device-reset') and VIRTIO_VSOCK_EVENT_TRANSPORT_RESET waits for the event queue; the
   * guest then drops its connections and reads guest_cid again (§5.10.6.7).
   */
  transportReset(): void {
    this.guarded(() => {
      this.dropAll();
      this.eventPending = true;
    });
  }

  hasEventForGuest(): boolean {
    return this.eventPending;
  }

  /** The pending event (struct virtio_vsock_event, 4 bytes), once. */
  takeEventForGuest(): Uint8Array | undefined {
    if (!this.eventPending) return undefined;
    this.eventPending = false;
    return encodeEvent();
  }

  /** The driver reset the device: every connection is dropped (each host side told), nothing is owed to the guest. */
  reset(): void {
    this.guarded(() => {
      this.dropAll();
      this.eventPending = false;
      this.lastLocalPort = LOCAL_PORT_FIRST - 1;
    });
  }

  private dropAll(): void {
    for (const entry of [...this.byId.values()]) {
      entry.conn.abandon('device-reset');
      this.refresh(entry);
    }
    this.resets.length = 0;
    this.resetKeys.clear();
  }

  // --- inputs from the host side ---------------------------------------------------------------

  /**
   * The host connects to `guestPort`, from `hostPort` or from a free port of [2^30, 2^31). A REQUEST
   * goes to the guest; its RESPONSE gives connected(connId), its RST close(connId, 'refused').
   */
  hostConnect(guestPort: number, now: number, hostPort?: number): HostConnectResult {
    return this.guarded(() => {
      checkPort('guest port', guestPort);
      if (hostPort !== undefined) checkPort('host port', hostPort);
      if (this.byId.size >= this.maxConnections) return { ok: false, reason: 'too-many-connections' } as const;
      if (hostPort !== undefined && this.byKey.has(connKey(guestPort, hostPort))) return { ok: false, reason: 'port-in-use' } as const;
      const port = hostPort ?? this.allocateLocalPort(guestPort);
      const entry = this.add(VsockConnection.hostInitiated(this.config, guestPort, port, now), hostPort === undefined);
      this.refresh(entry);
      return { ok: true, connId: entry.id, hostPort: port } as const;
    });
  }

  /** The next free port of [2^30, 2^31) after the last one given, as Firecracker's muxer does. */
  private allocateLocalPort(guestPort: number): number {
    // Fewer than maxConnections ports are allocated and fewer than maxConnections keys exist, so
    // one of any 2 * maxConnections + 1 consecutive ports is free.
    for (let tries = 2 * this.maxConnections + 1; tries > 0; tries--) {
      this.lastLocalPort = this.lastLocalPort + 1 >= LOCAL_PORT_END ? LOCAL_PORT_FIRST : this.lastLocalPort + 1;
      const port = this.lastLocalPort;
      if (!this.localPorts.has(port) && !this.byKey.has(connKey(guestPort, port))) return port;
    }
    throw new Error('VsockMuxer: no free local port although the table is not full');
  }

  /** The host side accepted a deferred guest connection. False when it is no longer waiting (timed out, reset). */
  acceptGuestConnection(connId: number): boolean {
    return this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry || !entry.conn.accept()) return false;
      this.refresh(entry);
      return true;
    });
  }

  /** The host side refused a deferred guest connection: RST to the guest, close(connId, 'refused'). */
  refuseGuestConnection(connId: number): boolean {
    return this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry || entry.conn.state !== 'peer-init') return false;
      entry.conn.kill('refused');
      this.refresh(entry);
      return true;
    });
  }

  /**
   * Bytes read from the host side. Returns how many were taken: fewer than offered means the
   * buffer is full and pauseReading(connId) was called; keep the rest (a Node socket can
   * unshift() it) and offer it after resumeReading(connId). The taken part is kept by reference:
   * do not change it. For a connection that is gone (or cannot reach the guest) all are dropped.
   */
  hostData(connId: number, bytes: Uint8Array): number {
    return this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry) return bytes.byteLength;
      const taken = entry.conn.hostData(bytes);
      this.refresh(entry);
      return taken;
    });
  }

  /** The host side can take bytes again after deliver() took less than offered. */
  hostWritable(connId: number, now: number): void {
    this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry) return;
      entry.hostBlocked = false;
      this.settle(entry, now);
    });
  }

  /** The host side will send no more (EOF): the guest gets SHUTDOWN(SEND) after the buffered data. */
  hostEof(connId: number): void {
    this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry) return;
      entry.conn.hostEof();
      this.refresh(entry);
    });
  }

  /** The host side closed: the guest gets SHUTDOWN(RCV|SEND) and closeTimeoutMs to answer with RST. */
  hostClose(connId: number, now: number): void {
    this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry) return;
      entry.conn.hostClose(now);
      this.settle(entry, now);
    });
  }

  /** The host side failed: RST to the guest. */
  hostReset(connId: number): void {
    this.guarded(() => {
      const entry = this.byId.get(connId);
      if (!entry) return;
      entry.conn.hostReset();
      this.refresh(entry);
    });
  }

  // --- time ------------------------------------------------------------------------------------

  /** The earliest time (ms) at which tick() has something to do. */
  nextDeadline(): number | undefined {
    let earliest: number | undefined;
    for (const e of this.byId.values()) {
      const d = e.conn.deadline;
      if (d !== undefined && (earliest === undefined || d < earliest)) earliest = d;
    }
    return earliest;
  }

  /** Expires connect and close timeouts: those connections get RST and close(connId, 'timeout'). */
  tick(now: number): void {
    this.guarded(() => {
      for (const entry of [...this.byId.values()]) {
        const d = entry.conn.deadline;
        if (d === undefined || now < d) continue;
        entry.conn.tick(now);
        this.refresh(entry);
      }
    });
  }

  // --- internals -------------------------------------------------------------------------------

  private guarded<T>(body: () => T): T {
    if (this.busy) {
      throw new VsockUsageError('re-entered', 'a VsockMuxer method was called from inside a VsockBackend callback; defer the call (queueMicrotask)');
    }
    this.busy = true;
    try {
      return body();
    } finally {
      this.busy = false;
    }
  }

  private add(conn: VsockConnection, allocatedPort: boolean): Entry {
    const entry: Entry = { id: this.nextId++, conn, key: connKey(conn.guestPort, conn.hostPort), allocatedPort, hostBlocked: false };
    this.byId.set(entry.id, entry);
    this.byKey.set(entry.key, entry);
    if (allocatedPort) this.localPorts.add(conn.hostPort);
    this.stats.connectionsOpened++;
    return entry;
  }

  private remove(entry: Entry): void {
    if (!this.byId.delete(entry.id)) return;
    this.byKey.delete(entry.key);
    this.ready.delete(entry);
    if (entry.allocatedPort) this.localPorts.delete(entry.conn.hostPort);
    this.stats.connectionsClosed++;
  }

  /** After an input that may have given the host side bytes to take: effects, delivery, effects. */
  private settle(entry: Entry, now: number): void {
    this.applyEffects(entry);
    this.deliverToHost(entry, now);
    this.refresh(entry);
  }

  /** Runs the connection's host-side effects, then drops it when it is over or files it for rx. */
  private refresh(entry: Entry): void {
    this.applyEffects(entry);
    if (entry.conn.state === 'closed') this.remove(entry);
    else if (entry.conn.hasPacketForGuest()) this.ready.add(entry);
    else this.ready.delete(entry);
  }

  private applyEffects(entry: Entry): void {
    for (const effect of entry.conn.takeEffects()) {
      switch (effect.kind) {
        case 'connected':
          this.backend.connected(entry.id);
          break;
        case 'end-of-stream':
          this.backend.endOfStream(entry.id);
          break;
        case 'pause-reading':
          this.backend.pauseReading(entry.id);
          break;
        case 'resume-reading':
          this.backend.resumeReading(entry.id);
          break;
        case 'close':
          this.backend.close(entry.id, effect.reason);
          break;
      }
    }
  }

  /** Offers the guest's bytes to the host side until it takes less than offered. */
  private deliverToHost(entry: Entry, now: number): void {
    for (;;) {
      if (entry.hostBlocked) return;
      const chunk = entry.conn.hostBoundChunk();
      if (!chunk) return;
      const n: unknown = this.backend.deliver(entry.id, chunk);
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > chunk.byteLength) {
        throw new VsockUsageError('bad-deliver-count', `deliver(${entry.id}) returned ${String(n)} for ${chunk.byteLength} bytes`);
      }
      if (n < chunk.byteLength) entry.hostBlocked = true;
      entry.conn.hostAccepted(n, now);
      this.applyEffects(entry);
    }
  }
}
