// The test guest's side of virtio-vsock: drives a VirtioVsock through the real transport
// (VirtioTestDriver) over an in-memory GuestMemory, the way Linux's virtio_transport does — a
// pool of 4 KiB rx buffers kept posted, tx packets as header + payload descriptors (or split
// further, or all in one), the event queue. Tests speak the packet protocol with it directly.
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { VirtioDevice } from '../../src/devices/virtio/device.js';
import { encodeHeader, parseHeader, VSOCK_HEADER_SIZE, VIRTIO_VSOCK_TYPE_STREAM, VSOCK_HOST_CID, type VsockHeader } from '../../src/devices/vsock/packet.js';
import { VirtioTestDriver } from './virtio-driver.js';
import type { GuestBuffer, VirtqDriver } from './virtq-driver.js';

/** Linux's VIRTIO_VSOCK_DEFAULT_RX_BUF_SIZE: header and payload share one 4 KiB buffer. */
export const RX_BUFFER_SIZE = 4096;
const QUEUE_SIZE = 64;
const RX_BUFFERS = 32;
/** Guest-physical area for the guest's own rx/tx/event buffers (above the driver's rings). */
const POOL_BASE = 0x40_0000;
const TX_SLOT = 0x1_1000;

export interface ReceivedPacket {
  header: VsockHeader;
  payload: Uint8Array;
}

/** How a tx packet is laid out in descriptors. */
export type TxLayout = 'header+payload' | 'one-descriptor' | 'split';

export class VsockTestGuest {
  readonly driver: VirtioTestDriver;
  readonly memory: GuestMemory;
  /** Packets the device put in rx buffers, oldest first (take them with take()). */
  readonly received: ReceivedPacket[] = [];
  events = 0;
  private readonly rxByHead = new Map<number, GuestBuffer>();
  private txSlot = 0;

  constructor(
    readonly device: VirtioDevice,
    readonly cid: bigint,
    opts: { eventIdx?: boolean } = {},
  ) {
    this.memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x100_0000 }]);
    this.driver = new VirtioTestDriver(device, this.memory);
    this.driver.init((1n << 32n) | (opts.eventIdx === false ? 0n : 1n << 29n), { size: QUEUE_SIZE, base: 0x1_0000, bufferSpace: 0x1000 });
    for (let i = 0; i < RX_BUFFERS; i++) this.postRx({ addr: POOL_BASE + i * RX_BUFFER_SIZE, len: RX_BUFFER_SIZE });
    this.postEvent();
    this.driver.kick(0);
    this.driver.kick(2);
  }

  private get rx(): VirtqDriver {
    return this.driver.queues[0] as VirtqDriver;
  }

  private get tx(): VirtqDriver {
    return this.driver.queues[1] as VirtqDriver;
  }

  private postRx(b: GuestBuffer): void {
    const head = this.rx.postBuffers([], [b], { publish: false });
    this.rxByHead.set(head, b);
  }

  private postEvent(): void {
    const q = this.driver.queues[2] as VirtqDriver;
    q.postBuffers([], [{ addr: POOL_BASE - 0x1000, len: 4 }], { publish: false });
  }

  /** Reads what the device used on rx and event (the interrupt handler's work) and reposts the buffers. */
  poll(): number {
    let n = 0;
    // Every used entry's buffer is looked up before any is posted again (a repost may reuse a head).
    const used = this.rx.collectUsed().map((u) => {
      const b = this.rxByHead.get(u.head);
      if (!b) throw new Error(`vsock test guest: unknown rx head ${u.head}`);
      this.rxByHead.delete(u.head);
      return { len: u.len, b };
    });
    for (const { len, b } of used) {
      if (len >= VSOCK_HEADER_SIZE) {
        const bytes = this.memory.slice(b.addr, len).slice();
        this.received.push({ header: parseHeader(bytes.subarray(0, VSOCK_HEADER_SIZE)), payload: bytes.subarray(VSOCK_HEADER_SIZE) });
        n++;
      }
      this.postRx(b);
    }
    for (const u of (this.driver.queues[2] as VirtqDriver).collectUsed()) {
      if (u.len === 4) this.events++;
      this.postEvent();
    }
    this.driver.kick(0);
    this.driver.kick(2);
    (this.driver.queues[1] as VirtqDriver).collectUsed();
    return n;
  }

  /** The received packets so far, removed from `received`. */
  take(): ReceivedPacket[] {
    this.poll();
    return this.received.splice(0);
  }

  /** Sends one packet on tx (header fields defaulted to a stream packet from this guest to the host). */
  send(h: Partial<VsockHeader> & { op: number; srcPort: number; dstPort: number }, payload: Uint8Array = new Uint8Array(0), layout: TxLayout = 'header+payload'): void {
    const header: VsockHeader = {
      srcCid: this.cid,
      dstCid: VSOCK_HOST_CID,
      len: payload.byteLength,
      type: VIRTIO_VSOCK_TYPE_STREAM,
      flags: 0,
      bufAlloc: 256 * 1024,
      fwdCnt: 0,
      ...h,
    };
    this.sendRaw(encodeHeader(header), payload, layout);
  }

  /** Sends header bytes and payload as given (for malformed packets). */
  sendRaw(header: Uint8Array, payload: Uint8Array, layout: TxLayout = 'header+payload'): void {
    this.tx.collectUsed();
    const base = POOL_BASE + RX_BUFFERS * RX_BUFFER_SIZE + (this.txSlot++ % 16) * TX_SLOT;
    const place = (data: Uint8Array, at: number): GuestBuffer => {
      this.memory.write(at, data);
      return { addr: at, len: data.byteLength };
    };
    let bufs: GuestBuffer[];
    if (layout === 'one-descriptor') {
      const all = new Uint8Array(header.byteLength + payload.byteLength);
      all.set(header);
      all.set(payload, header.byteLength);
      bufs = [place(all, base)];
    } else if (layout === 'split') {
      // The header cut in two, the payload in pieces of at most 1000 bytes.
      bufs = [place(header.subarray(0, 20), base), place(header.subarray(20), base + 64)];
      for (let o = 0; o < payload.byteLength; o += 1000) bufs.push(place(payload.subarray(o, o + 1000), base + 128 + o));
    } else {
      bufs = [place(header, base)];
      if (payload.byteLength > 0) bufs.push(place(payload, base + 64));
    }
    this.tx.postBuffers(bufs, []);
    this.driver.kick(1);
  }
}
