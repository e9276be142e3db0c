// The resource allocator: who gets which virtio-mmio slot, interrupt line (GSI), KVM memory slot
// and guest-physical range above RAM (shared-memory windows such as virtio-fs DAX). Devices get
// resources by asking, never by their position in a list, and every grant names its owner, so
// an exhausted resource is an error that says who holds it.
import { IRQ_BASE, IRQ_MAX, VIRTIO_MMIO_BASE, VIRTIO_MMIO_MAX_SLOTS, VIRTIO_MMIO_SLOT_SIZE } from '../boot/index.js';

export class ResourceExhaustedError extends Error {
  constructor(what: string, owner: string, held: readonly string[]) {
    super(`no ${what} left for ${owner}: all ${held.length} are taken (${held.join(', ')})`);
    this.name = 'ResourceExhaustedError';
  }
}

/** KVM's limit on memory slots (KVM_CAP_NR_MEMSLOTS is at least 32 on every x86 kernel). */
export const KVM_MEMORY_SLOTS = 32;
/** Guest-physical addresses stay below 2^39 (512 GiB): every x86-64 CPU KVM runs on has 39 bits or more. */
export const GUEST_PHYS_LIMIT = 2n ** 39n;

export interface ResourceLimits {
  mmioBase: number;
  mmioSlotSize: number;
  mmioSlots: number;
  gsiFirst: number;
  gsiLast: number;
  kvmSlots: number;
  /** First guest-physical address above RAM (firstAddressAboveRam). */
  aboveRamStart: bigint;
  aboveRamEnd: bigint;
}

/** One pool of numbered resources (slots, lines) handed out lowest first. */
class NumberPool {
  private readonly owners = new Map<number, string>();

  constructor(
    private readonly what: string,
    private readonly first: number,
    private readonly count: number,
  ) {}

  take(owner: string): number {
    for (let n = this.first; n < this.first + this.count; n++) {
      if (!this.owners.has(n)) {
        this.owners.set(n, owner);
        return n;
      }
    }
    throw new ResourceExhaustedError(this.what, owner, [...this.owners].map(([n, o]) => `${n}: ${o}`));
  }

  release(n: number): void {
    this.owners.delete(n);
  }

  get taken(): ReadonlyMap<number, string> {
    return this.owners;
  }
}

export interface MmioSlot {
  base: number;
  size: number;
}

export interface GuestRange {
  guestPhysAddr: bigint;
  size: bigint;
}

export class ResourceAllocator {
  private readonly mmio: NumberPool;
  private readonly gsis: NumberPool;
  private readonly kvmSlots: NumberPool;
  private readonly ranges: { range: GuestRange; owner: string }[] = [];

  constructor(private readonly limits: ResourceLimits) {
    this.mmio = new NumberPool('virtio-mmio slot', 0, limits.mmioSlots);
    this.gsis = new NumberPool('interrupt line (GSI)', limits.gsiFirst, limits.gsiLast - limits.gsiFirst + 1);
    this.kvmSlots = new NumberPool('KVM memory slot', 0, limits.kvmSlots);
  }

  /** The x86 layout of src/boot/layout.ts, with above-RAM space from `aboveRamStart`. */
  static forX86(aboveRamStart: number): ResourceAllocator {
    return new ResourceAllocator({
      mmioBase: VIRTIO_MMIO_BASE,
      mmioSlotSize: VIRTIO_MMIO_SLOT_SIZE,
      mmioSlots: VIRTIO_MMIO_MAX_SLOTS,
      gsiFirst: IRQ_BASE,
      gsiLast: IRQ_MAX,
      kvmSlots: KVM_MEMORY_SLOTS,
      aboveRamStart: BigInt(aboveRamStart),
      aboveRamEnd: GUEST_PHYS_LIMIT,
    });
  }

  mmioSlot(owner: string): MmioSlot {
    const n = this.mmio.take(owner);
    return { base: this.limits.mmioBase + n * this.limits.mmioSlotSize, size: this.limits.mmioSlotSize };
  }

  gsi(owner: string): number {
    return this.gsis.take(owner);
  }

  kvmSlot(owner: string): number {
    return this.kvmSlots.take(owner);
  }

  releaseKvmSlot(slot: number): void {
    this.kvmSlots.release(slot);
  }

  /**
   * A guest-physical range of `size` bytes above RAM, aligned to `align` (a power of two), after
   * every range granted before it.
   */
  aboveRam(owner: string, size: bigint, align: bigint): GuestRange {
    if (size <= 0n) throw new RangeError(`${owner}: a range above RAM needs a positive size, got ${size}`);
    if (align <= 0n || (align & (align - 1n)) !== 0n) throw new RangeError(`${owner}: alignment ${align} is not a power of two`);
    const last = this.ranges[this.ranges.length - 1];
    const from = last ? last.range.guestPhysAddr + last.range.size : this.limits.aboveRamStart;
    const base = ((from + align - 1n) / align) * align;
    if (base + size > this.limits.aboveRamEnd) {
      throw new ResourceExhaustedError(`guest-physical space above RAM (${size} bytes, up to 0x${this.limits.aboveRamEnd.toString(16)})`, owner, this.ranges.map((r) => `0x${r.range.guestPhysAddr.toString(16)}+0x${r.range.size.toString(16)}: ${r.owner}`));
    }
    const range = { guestPhysAddr: base, size };
    this.ranges.push({ range, owner });
    return range;
  }

  /** Who holds what, for reports and tests. */
  describe(): string[] {
    const list = (what: string, pool: NumberPool): string[] => [...pool.taken].map(([n, o]) => `${what} ${n}: ${o}`);
    return [
      ...list('virtio-mmio slot', this.mmio),
      ...list('GSI', this.gsis),
      ...list('KVM memory slot', this.kvmSlots),
      ...this.ranges.map((r) => `guest range 0x${r.range.guestPhysAddr.toString(16)}+0x${r.range.size.toString(16)}: ${r.owner}`),
    ];
  }
}
