// Reusable bounce buffers for virtio-blk reads (see device.ts "Reset"). A read lands in a bounce
// buffer first; a fresh zero-filled allocation per read cost more than the read itself (the
// threadpool faulted its pages in, V8 zeroed it, the main thread copied it: for 1 MiB reads in the
// test bed, most of the host CPU per request). Buffers are kept per power-of-two size class and
// handed to one read at a time; the pool's total size is capped, and what does not fit is left
// to the garbage collector.

/** Smallest size class: one page. */
const MIN_CLASS = 4096;

export class BouncePool {
  private readonly free = new Map<number, Uint8Array[]>();
  private pooledBytes = 0;

  /** @param maxPooledBytes at most this many bytes are kept for reuse (in-use buffers not counted). */
  constructor(private readonly maxPooledBytes = 32 << 20) {}

  /** A buffer of exactly `length` bytes (a view of a pooled one), for one read. Contents undefined. */
  take(length: number): Uint8Array {
    const size = sizeClass(length);
    const list = this.free.get(size);
    const buf = list?.pop();
    if (buf) {
      this.pooledBytes -= size;
      return buf.subarray(0, length);
    }
    return new Uint8Array(size).subarray(0, length);
  }

  /** Returns a buffer from take() once nothing refers to it any more. */
  give(view: Uint8Array): void {
    const size = view.buffer.byteLength;
    if (view.byteOffset !== 0 || size !== sizeClass(size) || this.pooledBytes + size > this.maxPooledBytes) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(new Uint8Array(view.buffer));
    this.pooledBytes += size;
  }

  /** Bytes held for reuse now. */
  get pooled(): number {
    return this.pooledBytes;
  }
}

/** The power of two >= length (at least MIN_CLASS). */
export function sizeClass(length: number): number {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`bounce buffer length ${length}`);
  let size = MIN_CLASS;
  while (size < length) size *= 2;
  return size;
}
