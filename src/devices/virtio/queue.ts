// The device side of a split virtqueue (virtio 1.2 §2.7): takes descriptor chains from the
// available ring, returns them through the used ring, and decides when the driver needs an
// interrupt (§2.7.7, VIRTIO_F_EVENT_IDX) and whether the driver should notify us (§2.7.10).
//
// Memory ordering. The driver runs on vCPUs, concurrently with us, and shares the rings. JS has
// no fences for plain typed-array accesses, so the points where a native device needs one are
// marked below with Linux's names (virtio_rmb / virtio_wmb / virtio_mb). On x86 (TSO) loads stay in
// order with loads and stores with stores, so rmb/wmb only need the JIT not to reorder those
// accesses (V8 compiles DataView loads and stores as effectful operations, kept in program
// order); the mb points (a store, then a load of the driver's field) need a real fence, since the
// device side (the main thread) and the driver (vCPU threads) run on different CPUs at once:
// fullFence() gives one (src/vmm/fence.ts). Without it a missed wake-up, and a hung request, is
// possible.

import type { GuestMemory } from '../../vmm/guest-memory.js';
import { fullFence } from '../../vmm/fence.js';
import { DescriptorChain, DESC_SIZE, type ChainContext } from './chain.js';
import { VirtioQueueError, hex } from './errors.js';

/** avail.flags: the driver does not want used-buffer interrupts (§2.7.7, without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags: the device does not want available-buffer notifications (§2.7.10, without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** The largest queue size the split ring allows (§2.7). */
export const MAX_QUEUE_SIZE = 32768;

/** Byte sizes of the three parts for a queue of `size` entries (§2.7 table). */
export function ringSizes(size: number): { desc: number; driver: number; device: number } {
  return { desc: DESC_SIZE * size, driver: 6 + 2 * size, device: 6 + 8 * size };
}

function queueName(config: Pick<SplitQueueConfig, 'index'>): string {
  return `virtqueue ${config.index ?? '?'}`;
}

/**
 * The queue-configuration rules of §2.7: size a power of two up to the device's maximum, each
 * ring part aligned and inside one guest memory region. Throws VirtioQueueError ('bad-size' or
 * 'bad-address'). The transport runs it when the driver sets QueueReady; SplitQueue again when
 * the device is activated.
 */
export function checkQueueConfig(
  memory: GuestMemory,
  config: Pick<SplitQueueConfig, 'index' | 'size' | 'maxSize' | 'desc' | 'driver' | 'device'>,
): void {
  const { size, maxSize } = config;
  const name = queueName(config);
  if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > MAX_QUEUE_SIZE) {
    throw new VirtioQueueError('bad-size', `${name}: maximum size ${maxSize} is not in [1, ${MAX_QUEUE_SIZE}]`);
  }
  if (!Number.isInteger(size) || size < 1 || size > maxSize || (size & (size - 1)) !== 0) {
    throw new VirtioQueueError('bad-size', `${name}: size ${size} is not a power of two in [1, ${maxSize}] (§2.7)`);
  }
  const sizes = ringSizes(size);
  const parts: [string, number, number, number][] = [
    ['descriptor table', config.desc, sizes.desc, 16],
    ['available ring (driver area)', config.driver, sizes.driver, 2],
    ['used ring (device area)', config.device, sizes.device, 4],
  ];
  for (const [part, addr, length, align] of parts) {
    if (!Number.isSafeInteger(addr) || addr < 0) {
      throw new VirtioQueueError('bad-address', `${name}: ${part} address ${addr} is not a guest-physical address`);
    }
    if (addr % align !== 0) {
      throw new VirtioQueueError('bad-address', `${name}: ${part} at ${hex(addr)} is not ${align}-byte aligned (§2.7)`);
    }
    if (!memory.contains(addr, length)) {
      throw new VirtioQueueError('bad-address', `${name}: ${part} [${hex(addr)}, +${length}) is not inside one guest memory region`);
    }
  }
}

export interface SplitQueueConfig {
  /** Queue number, for messages. */
  readonly index?: number;
  /** QueueNum: entries in the descriptor table and both rings; a power of two <= maxSize. */
  readonly size: number;
  /** QueueNumMax the device offered: also the cap on descriptors per chain and per indirect table. */
  readonly maxSize: number;
  /** Descriptor Area (descriptor table), 16-byte aligned. */
  readonly desc: number;
  /** Driver Area (available ring), 2-byte aligned. */
  readonly driver: number;
  /** Device Area (used ring), 4-byte aligned. */
  readonly device: number;
  /** VIRTIO_F_EVENT_IDX (bit 29) negotiated. */
  readonly eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC (bit 28) negotiated. */
  readonly indirectDesc: boolean;
}

export class SplitQueue {
  readonly size: number;
  readonly maxSize: number;
  readonly eventIdx: boolean;
  readonly indirectDesc: boolean;
  private readonly name: string;
  private readonly ctx: ChainContext;
  // The driver area (flags, idx, ring[size], used_event; §2.7.6) and the device area (flags, idx,
  // ring[size] of {id, len}, avail_event; §2.7.8), and the offsets of their event fields.
  private readonly avail: DataView;
  private readonly used: DataView;
  private readonly usedEventOffset: number;
  private readonly availEventOffset: number;
  /** Free-running 16-bit indices: next avail entry to take, next used entry to write. */
  private nextAvailIdx = 0;
  private nextUsedIdx = 0;
  /** used.idx when needsNotification last answered (EVENT_IDX); undefined: notify on the next call. */
  private signalledUsed: number | undefined = undefined;

  /** Validates the configuration against §2.7 and guest memory; throws VirtioQueueError. */
  constructor(
    private readonly memory: GuestMemory,
    config: SplitQueueConfig,
  ) {
    const { size, maxSize } = config;
    this.name = queueName(config);
    checkQueueConfig(memory, config);

    this.size = size;
    this.maxSize = maxSize;
    this.eventIdx = config.eventIdx;
    this.indirectDesc = config.indirectDesc;
    const sizes = ringSizes(size);
    // Views of the three parts, each inside one region (checked above): ring accesses need no
    // region lookup.
    this.ctx = { desc: config.desc, descView: memory.dataView(config.desc, sizes.desc), size, maxSize, indirectDesc: config.indirectDesc };
    this.avail = memory.dataView(config.driver, sizes.driver);
    this.used = memory.dataView(config.device, sizes.device);
    this.usedEventOffset = 4 + 2 * size;
    this.availEventOffset = 4 + 8 * size;
  }

  /**
   * The ring indices as the device and the driver see them now, for a stuck-guest report: chains
   * the driver published that the device has not taken (avail.idx ahead of next avail) point at a
   * lost notification; used entries the driver has not seen, at a lost interrupt.
   */
  describe(): string {
    const read = (area: DataView, offset: number): number => area.getUint16(offset, true);
    const events = this.eventIdx
      ? `, used_event ${read(this.avail, this.usedEventOffset)}, avail_event ${read(this.used, this.availEventOffset)}`
      : `, avail flags ${read(this.avail, 0)}, used flags ${read(this.used, 0)}`;
    return `${this.name}: avail.idx ${read(this.avail, 2)}, next avail ${this.nextAvailIdx}, used.idx ${read(this.used, 2)} (pushed ${this.nextUsedIdx}, last signalled ${this.signalledUsed ?? '-'})${events}`;
  }

  /** The device's next available-ring index (free-running, 16 bits). */
  get nextAvail(): number {
    return this.nextAvailIdx;
  }

  /** The device's next used-ring index: the used.idx it last published. */
  get nextUsed(): number {
    return this.nextUsedIdx;
  }

  /** Chains popped and not yet returned with pushUsed. */
  get inFlight(): number {
    return (this.nextAvailIdx - this.nextUsedIdx) & 0xffff;
  }

  /** Entries the driver has published that we have not taken. Throws VirtioQueueError on overrun. */
  pending(): number {
    const idx = this.avail.getUint16(2, true);
    const pending = (idx - this.nextAvailIdx) & 0xffff;
    // §2.7.13: the ring holds at most `size` entries, so a driver can be at most `size` ahead;
    // more means avail.idx is garbage and no entry in the ring can be trusted to be new.
    if (pending > this.size) {
      throw new VirtioQueueError(
        'avail-overrun',
        `${this.name}: avail.idx ${idx} is ${pending} entries ahead of the device's ${this.nextAvailIdx}, more than the queue size ${this.size}`,
      );
    }
    return pending;
  }

  /**
   * Takes the next chain from the available ring, or undefined when there is none.
   * Throws VirtioChainError when the chain is malformed: its entry is consumed, and the device
   * fails the request with pushUsed(err.head, 0) (if err.returnable) or sets NEEDS_RESET.
   * Throws VirtioQueueError ('avail-overrun') when avail.idx is impossible; nothing is consumed.
   */
  popAvail(): DescriptorChain | undefined {
    if (this.pending() === 0) return undefined;
    // virtio_rmb (acquire): the ring entry and the descriptors must be read after avail.idx
    // (§2.7.13.3.1: the driver wrote them before its barrier and idx update).
    const head = this.avail.getUint16(4 + 2 * (this.nextAvailIdx % this.size), true);
    this.nextAvailIdx = (this.nextAvailIdx + 1) & 0xffff;
    return DescriptorChain.parse(this.memory, this.ctx, head);
  }

  /**
   * Returns a chain to the driver: writes {id: headIndex, len: writtenLen} to the used ring and
   * publishes it by advancing used.idx (§2.7.8). writtenLen is the bytes written to the writable
   * side, from its start.
   */
  pushUsed(headIndex: number, writtenLen: number): void {
    if (!Number.isInteger(headIndex) || headIndex < 0 || headIndex >= this.size) {
      throw new VirtioQueueError('bad-used-entry', `${this.name}: used head ${headIndex} is outside the descriptor table of ${this.size} entries`);
    }
    if (!Number.isInteger(writtenLen) || writtenLen < 0 || writtenLen > 0xffff_ffff) {
      throw new VirtioQueueError('bad-used-entry', `${this.name}: used length ${writtenLen} for head ${headIndex} is not a u32`);
    }
    if (this.inFlight === 0) {
      throw new VirtioQueueError('bad-used-entry', `${this.name}: pushUsed(${headIndex}) with no chain in flight would overwrite an entry the driver has not seen`);
    }
    const elem = 4 + 8 * (this.nextUsedIdx % this.size);
    this.used.setUint32(elem, headIndex, true);
    this.used.setUint32(elem + 4, writtenLen, true);
    this.nextUsedIdx = (this.nextUsedIdx + 1) & 0xffff;
    // virtio_wmb (release): the element (and the data written to the buffers) must be visible
    // before the new used.idx (§2.7.8.1: "set len prior to updating the used idx").
    this.used.setUint16(2, this.nextUsedIdx, true);
  }

  /**
   * Whether the driver wants a used-buffer interrupt now, for the entries pushed since the last
   * call (§2.7.7). With EVENT_IDX: vring_need_event(used_event, used.idx, used.idx at the last
   * call). Without: unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT.
   */
  needsNotification(): boolean {
    // virtio_mb (full barrier): our used.idx store must be visible before we read the driver's
    // used_event / flags, or we and the driver can each miss the other's update.
    fullFence();
    if (this.eventIdx) {
      const newIdx = this.nextUsedIdx;
      const old = this.signalledUsed;
      this.signalledUsed = newIdx;
      if (old === undefined) return true;
      return needEvent(this.avail.getUint16(this.usedEventOffset, true), newIdx, old);
    }
    return (this.avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Asks the driver to notify us of new available buffers (§2.7.10): with EVENT_IDX by setting
   * avail_event to our next index, else by clearing VIRTQ_USED_F_NO_NOTIFY. Returns true when
   * chains are already pending — published before the driver could see the change, so no
   * notification will come for them: the caller must process them now.
   * Throws VirtioQueueError ('avail-overrun') like pending().
   */
  enableNotification(): boolean {
    if (this.eventIdx) {
      this.used.setUint16(this.availEventOffset, this.nextAvailIdx, true);
    } else {
      this.used.setUint16(0, this.used.getUint16(0, true) & ~VIRTQ_USED_F_NO_NOTIFY, true);
    }
    // virtio_mb (full barrier): the store above must be visible before we re-read avail.idx.
    fullFence();
    return this.pending() !== 0;
  }

  /**
   * Tells the driver it need not notify us (we are already processing). Without EVENT_IDX this
   * sets VIRTQ_USED_F_NO_NOTIFY; with EVENT_IDX it writes nothing: avail_event stays where
   * enableNotification put it, and once the driver passes it no further notifications come.
   */
  disableNotification(): void {
    if (this.eventIdx) return;
    this.used.setUint16(0, this.used.getUint16(0, true) | VIRTQ_USED_F_NO_NOTIFY, true);
  }

  /** Device reset (§2.4): forget all progress. The rings in guest memory are the driver's to re-initialise. */
  reset(): void {
    this.nextAvailIdx = 0;
    this.nextUsedIdx = 0;
    this.signalledUsed = undefined;
  }
}

/**
 * vring_need_event (§2.7.7, virtio_ring.h): whether moving used.idx from old to newIdx passed the
 * driver's event index, i.e. event is in [old, newIdx) modulo 2^16.
 */
export function needEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}
