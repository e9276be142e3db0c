// PIO and MMIO buses (vm-device / Firecracker Bus): address ranges mapped to devices. Inserting
// an overlapping range is an error. An access no device claims reads as all-ones and its write is
// ignored; both are counted per address so `--stats` can show what the guest poked at.

export interface BusDevice {
  /** Fill data with the value at offset (relative to the range base). */
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

export class BusOverlapError extends Error {
  constructor(readonly deviceName: string, readonly base: number, readonly length: number, readonly existing: string) {
    super(`cannot map ${deviceName} at [0x${base.toString(16)}, +0x${length.toString(16)}): it overlaps ${existing}`);
    this.name = 'BusOverlapError';
  }
}

interface Range {
  base: number;
  end: number;
  name: string;
  device: BusDevice;
  reads: number;
  writes: number;
}

export interface BusStats {
  devices: { name: string; base: number; reads: number; writes: number }[];
  unknown: { address: number; reads: number; writes: number }[];
  unknownDropped: number;
}

/** Distinct unknown addresses remembered; beyond that they are counted only in total. */
const MAX_UNKNOWN_ADDRESSES = 256;

export class Bus {
  private readonly ranges: Range[] = [];
  private readonly unknown = new Map<number, { reads: number; writes: number }>();
  private unknownDropped = 0;

  constructor(readonly kind: 'pio' | 'mmio') {}

  insert(name: string, base: number, length: number, device: BusDevice): void {
    if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(length) || length <= 0) {
      throw new RangeError(`bad ${this.kind} range for ${name}: base ${base}, length ${length}`);
    }
    const end = base + length;
    const clash = this.ranges.find((r) => base < r.end && r.base < end);
    if (clash) {
      throw new BusOverlapError(name, base, length, `${clash.name} at [0x${clash.base.toString(16)}, 0x${clash.end.toString(16)})`);
    }
    this.ranges.push({ base, end, name, device, reads: 0, writes: 0 });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  private find(addr: number): Range | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid] as Range;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  private countUnknown(addr: number, write: boolean): void {
    let c = this.unknown.get(addr);
    if (!c) {
      if (this.unknown.size >= MAX_UNKNOWN_ADDRESSES) {
        this.unknownDropped++;
        return;
      }
      this.unknown.set(addr, (c = { reads: 0, writes: 0 }));
    }
    if (write) c.writes++;
    else c.reads++;
  }

  /** Returns false (and fills data with 0xff) when no device claims addr. */
  read(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr);
    if (!r || addr + data.byteLength > r.end) {
      data.fill(0xff);
      this.countUnknown(addr, false);
      return false;
    }
    r.reads++;
    r.device.read(addr - r.base, data);
    return true;
  }

  /** Returns false (and drops the write) when no device claims addr. */
  write(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr);
    if (!r || addr + data.byteLength > r.end) {
      this.countUnknown(addr, true);
      return false;
    }
    r.writes++;
    r.device.write(addr - r.base, data);
    return true;
  }

  stats(): BusStats {
    return {
      devices: this.ranges.map((r) => ({ name: r.name, base: r.base, reads: r.reads, writes: r.writes })),
      unknown: [...this.unknown.entries()].map(([address, c]) => ({ address, ...c })).sort((a, b) => a.address - b.address),
      unknownDropped: this.unknownDropped,
    };
  }
}
