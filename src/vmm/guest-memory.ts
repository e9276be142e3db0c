// Guest-physical memory (vm-memory's GuestMemory + Bytes): regions of guest-physical address
// space backed by host memory, every access bounds-checked. An access that leaves guest memory or
// crosses a region edge is a GuestMemoryError, never a crash and never a silent wrap. Addresses
// are JS numbers: exact up to 2^53, far beyond any guest-physical address space.

export class GuestMemoryError extends Error {
  constructor(
    readonly gpa: number,
    readonly length: number,
    reason: string,
  ) {
    super(`guest memory access [0x${gpa.toString(16)}, +${length}) ${reason}`);
    this.name = 'GuestMemoryError';
  }
}

export interface GuestRegion {
  readonly guestPhysAddr: number;
  readonly bytes: Uint8Array;
}

interface Region extends GuestRegion {
  readonly end: number;
  readonly view: DataView;
}

/** A guest address and length as they arrive from the guest: validated before use. */
function checkRange(gpa: number, length: number): void {
  if (!Number.isSafeInteger(gpa) || gpa < 0) throw new GuestMemoryError(gpa, length, 'has an invalid address');
  if (!Number.isSafeInteger(length) || length < 0) throw new GuestMemoryError(gpa, length, 'has an invalid length');
}

export class GuestMemory {
  private readonly regions: Region[];

  /** Regions must not overlap; they need not be contiguous (the 32-bit MMIO gap lies between). */
  constructor(regions: readonly GuestRegion[]) {
    const sorted = [...regions].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
    this.regions = sorted.map((r) => ({
      guestPhysAddr: r.guestPhysAddr,
      bytes: r.bytes,
      end: r.guestPhysAddr + r.bytes.byteLength,
      view: new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength),
    }));
    for (let i = 1; i < this.regions.length; i++) {
      const prev = this.regions[i - 1] as Region;
      const cur = this.regions[i] as Region;
      if (cur.guestPhysAddr < prev.end) {
        throw new Error(`guest memory regions overlap at 0x${cur.guestPhysAddr.toString(16)}`);
      }
    }
  }

  /** Plain in-memory regions, for tests and for devices tested without a VM. */
  static fromSizes(layout: readonly { guestPhysAddr: number; size: number }[]): GuestMemory {
    return new GuestMemory(layout.map((l) => ({ guestPhysAddr: l.guestPhysAddr, bytes: new Uint8Array(l.size) })));
  }

  get regionList(): readonly GuestRegion[] {
    return this.regions;
  }

  /** Total bytes of guest RAM. */
  get size(): number {
    return this.regions.reduce((n, r) => n + r.bytes.byteLength, 0);
  }

  /** One past the highest guest-physical address backed by memory. */
  get end(): number {
    return this.regions.length === 0 ? 0 : (this.regions[this.regions.length - 1] as Region).end;
  }

  private find(gpa: number): Region | undefined {
    let lo = 0;
    let hi = this.regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.regions[mid] as Region;
      if (gpa < r.guestPhysAddr) hi = mid - 1;
      else if (gpa >= r.end) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** The region holding all of [gpa, gpa+length), and the offset of gpa in it. */
  private locate(gpa: number, length: number): { region: Region; offset: number } {
    checkRange(gpa, length);
    const region = this.find(gpa);
    if (!region) throw new GuestMemoryError(gpa, length, 'is outside guest memory');
    if (gpa + length > region.end) {
      throw new GuestMemoryError(gpa, length, `crosses the end of the region at 0x${region.end.toString(16)}`);
    }
    return { region, offset: gpa - region.guestPhysAddr };
  }

  /** The region holding all of [gpa, gpa+length), if one does; never throws. */
  private holding(gpa: number, length: number): Region | undefined {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0) return undefined;
    const r = this.find(gpa);
    return r !== undefined && gpa + length <= r.end ? r : undefined;
  }

  /** True when [gpa, gpa+length) lies inside one region. */
  contains(gpa: number, length: number): boolean {
    return this.holding(gpa, length) !== undefined;
  }

  /**
   * slice(gpa, length), or undefined when [gpa, gpa+length) is not inside one region: one lookup
   * for an address the guest chose (contains() then slice() is two).
   */
  sliceIfInside(gpa: number, length: number): Uint8Array | undefined {
    const r = this.holding(gpa, length);
    if (r === undefined) return undefined;
    const offset = gpa - r.guestPhysAddr;
    return r.bytes.subarray(offset, offset + length);
  }

  /**
   * A zero-copy DataView of [gpa, gpa+length), which must lie in one region (GuestMemoryError
   * otherwise): for a structure accessed field by field many times (a virtqueue's rings), so that
   * each access needs no region lookup.
   */
  dataView(gpa: number, length: number): DataView {
    const { region, offset } = this.locate(gpa, length);
    return new DataView(region.bytes.buffer, region.bytes.byteOffset + offset, length);
  }

  /** A zero-copy view of [gpa, gpa+length): writes to it are writes to guest memory. */
  slice(gpa: number, length: number): Uint8Array {
    const { region, offset } = this.locate(gpa, length);
    return region.bytes.subarray(offset, offset + length);
  }

  read(gpa: number, dst: Uint8Array): void {
    dst.set(this.slice(gpa, dst.byteLength));
  }

  write(gpa: number, src: Uint8Array): void {
    this.slice(gpa, src.byteLength).set(src);
  }

  fill(gpa: number, length: number, value = 0): void {
    this.slice(gpa, length).fill(value);
  }

  readU8(gpa: number): number {
    const { region, offset } = this.locate(gpa, 1);
    return region.view.getUint8(offset);
  }

  readU16(gpa: number): number {
    const { region, offset } = this.locate(gpa, 2);
    return region.view.getUint16(offset, true);
  }

  readU32(gpa: number): number {
    const { region, offset } = this.locate(gpa, 4);
    return region.view.getUint32(offset, true);
  }

  readU64(gpa: number): bigint {
    const { region, offset } = this.locate(gpa, 8);
    return region.view.getBigUint64(offset, true);
  }

  writeU8(gpa: number, v: number): void {
    const { region, offset } = this.locate(gpa, 1);
    region.view.setUint8(offset, v);
  }

  writeU16(gpa: number, v: number): void {
    const { region, offset } = this.locate(gpa, 2);
    region.view.setUint16(offset, v, true);
  }

  writeU32(gpa: number, v: number): void {
    const { region, offset } = this.locate(gpa, 4);
    region.view.setUint32(offset, v, true);
  }

  writeU64(gpa: number, v: bigint): void {
    const { region, offset } = this.locate(gpa, 8);
    region.view.setBigUint64(offset, BigInt.asUintN(64, v), true);
  }
}
