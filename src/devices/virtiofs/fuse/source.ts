// The bytes of one request as the device finds them: the driver-readable descriptors of a chain
// (virtio 1.2 §5.11.6), one view or several. Linux's virtio_fs puts fuse_in_header, the in args
// and WRITE's data pages in separate descriptors, so the decoder reads through this interface:
// small structs and names are gathered (copied only when they straddle descriptors), and WRITE's
// data is handed out as views of the descriptors, never copied.

/** A request's readable bytes, addressed as one run of `length` bytes. */
export interface RequestSource {
  readonly length: number;
  /** Bytes [start, end) contiguous: a view when they lie in one segment, else a copy. */
  gather(start: number, end: number): Uint8Array;
  /** Bytes [start, end) as views of the segments they lie in, in order; no empty views. */
  views(start: number, end: number): Uint8Array[];
}

class SingleSource implements RequestSource {
  constructor(private readonly bytes: Uint8Array) {}

  get length(): number {
    return this.bytes.byteLength;
  }

  gather(start: number, end: number): Uint8Array {
    return this.bytes.subarray(start, end);
  }

  views(start: number, end: number): Uint8Array[] {
    return end > start ? [this.bytes.subarray(start, end)] : [];
  }
}

class SegmentedSource implements RequestSource {
  readonly length: number;

  constructor(private readonly segments: readonly Uint8Array[]) {
    this.length = segments.reduce((n, s) => n + s.byteLength, 0);
  }

  views(start: number, end: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let base = 0;
    for (const s of this.segments) {
      const from = Math.max(start, base);
      const to = Math.min(end, base + s.byteLength);
      if (to > from) out.push(s.subarray(from - base, to - base));
      base += s.byteLength;
      if (base >= end) break;
    }
    return out;
  }

  gather(start: number, end: number): Uint8Array {
    const parts = this.views(start, end);
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(Math.max(0, end - start));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

/** Wraps one view or a list of descriptor views as a RequestSource. */
export function requestSource(input: Uint8Array | readonly Uint8Array[]): RequestSource {
  if (input instanceof Uint8Array) return new SingleSource(input);
  return input.length === 1 ? new SingleSource(input[0]) : new SegmentedSource(input);
}
