// virtio-vsock (virtio 1.2 §5.10): the device around the connection multiplexer (muxer.ts) and
// a host backend (hybrid-backend.ts). Queues: rx 0 (device -> driver), tx 1 (driver -> device),
// event 2; config: the guest's 64-bit CID.
//
// tx: each chain is one packet, its header and payload spread over any readable descriptors
// (Linux 6.1 sends header and payload in two, newer guests split large payloads further; §2.7.4
// lets a driver lay buffers out as it likes). The chain goes back with used length 0. The device
// stops taking tx chains while the muxer owes the guest too many replies (§5.10.6.1) and resumes
// once the guest gives rx buffers.
// rx: a chain is taken only when a packet waits (ActiveQueue.popOrEnable), the header and payload
// written across its writable descriptors, and returned with their length. A buffer too small
// for a header goes back empty (Linux drops it); otherwise a buffer taken with nothing to put in
// it waits for the next packet.
// event: VIRTIO_VSOCK_EVENT_TRANSPORT_RESET when the host side lost every connection.
import type { ActivateContext, DeviceMetrics, VirtioDevice } from '../virtio/device.js';
import type { DescriptorChain } from '../virtio/chain.js';
import type { ActiveQueue } from '../virtio/active-queue.js';
import { QueueSession } from '../virtio/queue-session.js';
import { VsockMuxer, type VsockBackend, type VsockMuxerOptions } from './muxer.js';
import {
  VIRTIO_ID_VSOCK,
  VSOCK_EVENT_QUEUE,
  VSOCK_EVENT_SIZE,
  VSOCK_HEADER_SIZE,
  VSOCK_MAX_PKT_PAYLOAD,
  VSOCK_RX_QUEUE,
  VSOCK_TX_QUEUE,
  encodeConfig,
  encodeHeader,
} from './packet.js';
import type { VsockHostPort } from './hybrid-backend.js';

/** Queue sizes (Firecracker's). */
export const VSOCK_QUEUE_SIZE = 256;
/** tx/rx passes one service() makes before leaving the rest to the next event-loop turn. */
const SERVICE_PASSES = 4;

/** A backend the device can attach its muxer calls to and dispose. */
export interface AttachableVsockBackend extends VsockBackend {
  attach(port: VsockHostPort): void;
  dispose(): Promise<void>;
  readonly counters?: Readonly<Record<string, number>>;
}

export interface VsockDeviceCounters {
  txPackets: number;
  rxPackets: number;
  /** rx buffers smaller than a packet header, returned empty. */
  rxBuffersTooSmall: number;
  events: number;
  interrupts: number;
  /** Chains the queues could not use (returned with length 0, or NEEDS_RESET). */
  badChains: number;
}

interface Active {
  readonly session: QueueSession;
  readonly rx: ActiveQueue;
  readonly tx: ActiveQueue;
  readonly event: ActiveQueue | undefined;
  /** An rx chain taken when a packet seemed to wait, kept for the next one. */
  parked: DescriptorChain | undefined;
}

export class VirtioVsock implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_VSOCK;
  /** No device feature bits: a stream-only device (VIRTIO_VSOCK_F_STREAM is implied when none is offered, §5.10.3). */
  readonly features = 0n;
  readonly queueMaxSizes: readonly number[] = [VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE];
  readonly config: Uint8Array;
  readonly muxer: VsockMuxer;
  private active: Active | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private readonly counters: VsockDeviceCounters = { txPackets: 0, rxPackets: 0, rxBuffersTooSmall: 0, events: 0, interrupts: 0, badChains: 0 };
  private readonly header = new Uint8Array(VSOCK_HEADER_SIZE);
  private disposed = false;
  /** service() continues on the next turn (SERVICE_PASSES ran with work left). */
  private serviceScheduled = false;
  /** A backend call asked for service() in a microtask. */
  private serviceQueued = false;

  constructor(
    readonly guestCid: bigint,
    private readonly backend: AttachableVsockBackend,
    options: Omit<VsockMuxerOptions, 'guestCid'> = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.config = encodeConfig(guestCid);
    this.muxer = new VsockMuxer(backend, { ...options, guestCid });
    backend.attach(this.hostPort());
  }

  /**
   * The muxer calls of the backend: each runs, then the queues are served (and the timer
   * re-armed) in a microtask, after the backend has recorded what the call returned: the guest
   * can answer a REQUEST within the same service() (the vCPU runs meanwhile), and its answer
   * must find the backend's side of the connection in place.
   */
  private hostPort(): VsockHostPort {
    const m = this.muxer;
    const then = <T>(r: T): T => {
      if (!this.serviceQueued) {
        this.serviceQueued = true;
        queueMicrotask(() => {
          this.serviceQueued = false;
          this.service();
        });
      }
      return r;
    };
    return {
      hostConnect: (guestPort) => then(m.hostConnect(guestPort, this.now())),
      acceptGuestConnection: (id) => then(m.acceptGuestConnection(id)),
      refuseGuestConnection: (id) => then(m.refuseGuestConnection(id)),
      hostData: (id, bytes) => then(m.hostData(id, bytes)),
      hostWritable: (id) => then(m.hostWritable(id, this.now())),
      hostEof: (id) => then(m.hostEof(id)),
      hostClose: (id) => then(m.hostClose(id, this.now())),
      hostReset: (id) => then(m.hostReset(id)),
    };
  }

  metrics(): DeviceMetrics {
    const s = this.muxer.stats;
    const invalid = Object.values(s.invalidPackets).reduce((a, b) => a + b, 0);
    return {
      ...this.counters,
      connections: this.muxer.connectionCount,
      connectionsOpened: s.connectionsOpened,
      connectionsClosed: s.connectionsClosed,
      packetsFromGuest: s.packetsFromGuest,
      packetsToGuest: s.packetsToGuest,
      invalidPackets: invalid,
      protocolViolations: s.protocolViolations,
      resetsQueued: s.resetsQueued,
      resetsDropped: s.resetsDropped,
      refusedTableFull: s.refusedTableFull,
      ...this.backend.counters,
    };
  }

  activate(ctx: ActivateContext): void {
    const session = new QueueSession(ctx, 'virtio-vsock');
    if (this.disposed) {
      session.fail('activated after dispose()');
      return;
    }
    const options = { onInterrupt: () => void this.counters.interrupts++, onBadChain: () => void this.counters.badChains++ };
    const rx = session.queue(VSOCK_RX_QUEUE, options);
    const tx = session.queue(VSOCK_TX_QUEUE, options);
    const event = session.queue(VSOCK_EVENT_QUEUE, options);
    if (!rx || !tx) {
      session.fail('DRIVER_OK without the rx and tx queues ready');
      return;
    }
    this.active = { session, rx, tx, event, parked: undefined };
    this.service();
  }

  notify(index: number): void {
    // Whatever the queue, the answer is the same: take what the guest sent, give what waits.
    if (index <= VSOCK_EVENT_QUEUE) this.service();
  }

  /** The host side lost every connection: the guest is told with TRANSPORT_RESET (§5.10.6.7). */
  transportReset(): void {
    this.muxer.transportReset();
    this.service();
  }

  reset(): void {
    const a = this.active;
    this.active = undefined;
    a?.session.end();
    // Every connection ends with the device; each host side is told (close: device-reset).
    this.muxer.reset();
    this.armTimer();
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.reset();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.backend.dispose();
  }

  /**
   * Takes the guest's packets, fills rx buffers with what waits, and repeats while either moves.
   * Each pass takes at most a ring's worth from each queue; after a few passes with work left
   * (a guest refilling as fast as we empty), the rest continues on the next event-loop turn.
   */
  private service(): void {
    const a = this.active;
    if (a && a.session.live && !this.serviceScheduled) {
      let idle = false;
      for (let pass = 0; pass < SERVICE_PASSES && !idle; pass++) {
        const took = this.takeTx(a);
        const gave = this.fillRx(a);
        idle = !took && !gave;
      }
      this.fillEvents(a);
      if (!idle) {
        this.serviceScheduled = true;
        setImmediate(() => {
          this.serviceScheduled = false;
          this.service();
        });
      }
    }
    this.armTimer();
  }

  /** Up to a ring's worth of tx packets into the muxer; whether any was taken. */
  private takeTx(a: Active): boolean {
    let taken = 0;
    a.tx.batch(() => {
      while (taken < VSOCK_QUEUE_SIZE && a.session.live && this.muxer.canTakeGuestPacket()) {
        const chain = a.tx.popOrEnable();
        if (!chain) break;
        taken++;
        this.counters.txPackets++;
        const reader = chain.reader();
        const got = reader.read(this.header);
        const header = got === VSOCK_HEADER_SIZE ? this.header : this.header.subarray(0, got);
        // The payload as guest-memory views; copied only when the guest split it.
        const views = reader.take(Math.min(reader.remaining, VSOCK_MAX_PKT_PAYLOAD + 1));
        const payload = views.length === 1 ? (views[0] as Uint8Array) : concat(views);
        this.muxer.handleGuestPacket(header, payload, this.now());
        a.tx.pushUsed(chain.head, 0);
      }
    });
    return taken > 0;
  }

  /** Up to a ring's worth of packets into rx buffers; whether any buffer was used. */
  private fillRx(a: Active): boolean {
    let moved = false;
    let used = 0;
    a.rx.batch(() => {
      while (used++ < VSOCK_QUEUE_SIZE && a.session.live && this.muxer.hasPacketForGuest()) {
        const chain = a.parked ?? a.rx.popOrEnable();
        a.parked = undefined;
        if (!chain) break;
        const writer = chain.writer();
        const room = writer.remaining;
        if (room < VSOCK_HEADER_SIZE) {
          this.counters.rxBuffersTooSmall++;
          a.rx.pushUsed(chain.head, 0);
          moved = true;
          continue;
        }
        const packet = this.muxer.nextPacketForGuest(room);
        if (!packet) {
          a.parked = chain;
          break;
        }
        writer.write(encodeHeader(packet.header, this.header));
        writer.write(packet.payload);
        a.rx.pushUsed(chain.head, VSOCK_HEADER_SIZE + packet.payload.byteLength);
        this.counters.rxPackets++;
        moved = true;
      }
    });
    return moved;
  }

  private fillEvents(a: Active): void {
    const q = a.event;
    if (!q) return;
    q.batch(() => {
      while (a.session.live && this.muxer.hasEventForGuest()) {
        const chain = q.popOrEnable();
        if (!chain) break;
        const event = this.muxer.takeEventForGuest();
        if (!event) {
          q.pushUsed(chain.head, 0);
          break;
        }
        const written = chain.writer().write(event);
        q.pushUsed(chain.head, written);
        if (written === VSOCK_EVENT_SIZE) this.counters.events++;
      }
    });
  }

  /** One timer for the muxer's next deadline (connect and close timeouts). */
  private armTimer(): void {
    const at = this.muxer.nextDeadline();
    if (at === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at === undefined || this.disposed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = undefined;
      this.muxer.tick(this.now());
      this.service();
    }, Math.max(0, at - this.now()));
  }
}

function concat(views: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const v of views) n += v.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const v of views) {
    out.set(v, o);
    o += v.byteLength;
  }
  return out;
}
