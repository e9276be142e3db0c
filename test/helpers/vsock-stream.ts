// The byte streams the vsock tests move and check, the same as test/guest/vsockt.c's: the
// little-endian 32-bit words of xorshift32 started at SEED | 1. A StreamWriter makes the next
// chunk; a StreamChecker checks what arrived, byte by byte, wherever the chunks split.

class Xorshift32 {
  private state: number;
  private word = 0;
  private left = 0;

  constructor(seed: number) {
    this.state = (seed | 1) >>> 0;
  }

  next(): number {
    if (this.left === 0) {
      let x = this.state;
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      this.state = x;
      this.word = x;
      this.left = 4;
    }
    const b = this.word & 0xff;
    this.word >>>= 8;
    this.left--;
    return b;
  }
}

export class StreamWriter {
  private readonly gen: Xorshift32;
  written = 0;

  constructor(
    seed: number,
    readonly total: number,
  ) {
    this.gen = new Xorshift32(seed);
  }

  /** The next up to `max` bytes of the stream (empty once `total` were made). */
  chunk(max = 65536): Buffer {
    const n = Math.min(max, this.total - this.written);
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.gen.next();
    this.written += n;
    return b;
  }

  get done(): boolean {
    return this.written >= this.total;
  }
}

export class StreamChecker {
  private readonly gen: Xorshift32;
  received = 0;
  /** Offset of the first byte that differed, if any. */
  mismatchAt: number | undefined;

  constructor(seed: number) {
    this.gen = new Xorshift32(seed);
  }

  /** Checks `data` as the stream's next bytes; false from the first difference on. */
  feed(data: Uint8Array): boolean {
    if (this.mismatchAt !== undefined) return false;
    for (let i = 0; i < data.length; i++) {
      if (this.gen.next() !== data[i]) {
        this.mismatchAt = this.received + i;
        return false;
      }
    }
    this.received += data.length;
    return true;
  }
}
