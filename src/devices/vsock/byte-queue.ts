// A FIFO of bytes held as a list of segments, for the two data directions of a vsock connection.
//
// Bytes handed out (peek, take) are never written again: new bytes are only ever appended past
// the end of what a segment holds, and a consumed segment is dropped, never reused. So whoever
// receives a view may keep it (a Node socket's write queue does) without a copy.
//
// Memory: chunks of COALESCE_BELOW bytes or more become one segment each; smaller ones are copied
// into shared segments of that size. Whatever the chunk sizes, the segments hold at most
// 2 * length + COALESCE_BELOW bytes plus the already consumed part of the first segment, in at
// most 2 * length / COALESCE_BELOW + 2 segments: a peer sending one byte per packet cannot
// multiply its cost in per-object overhead.

/** Chunks below this size are coalesced into shared segments of this capacity. */
export const COALESCE_BELOW = 4096;

interface Segment {
  readonly bytes: Uint8Array;
  /** First unread byte. */
  start: number;
  /** One past the last written byte. */
  end: number;
  /** A segment of ours with room past `end` (a coalescing segment). */
  readonly appendable: boolean;
}

export class ByteQueue {
  private readonly segments: Segment[] = [];
  private bytes = 0;

  /** Bytes queued. */
  get length(): number {
    return this.bytes;
  }

  /**
   * Appends `chunk`. `owned`: the caller hands the chunk over and will not change it, so a large
   * one is kept by reference; otherwise (a view of guest memory) it is copied.
   */
  push(chunk: Uint8Array, owned: boolean): void {
    const n = chunk.byteLength;
    if (n === 0) return;
    this.bytes += n;
    if (n >= COALESCE_BELOW) {
      this.segments.push({ bytes: owned ? chunk : chunk.slice(), start: 0, end: n, appendable: false });
      return;
    }
    const tail = this.segments[this.segments.length - 1];
    if (tail && tail.appendable && tail.bytes.byteLength - tail.end >= n) {
      tail.bytes.set(chunk, tail.end);
      tail.end += n;
      return;
    }
    const bytes = new Uint8Array(COALESCE_BELOW);
    bytes.set(chunk, 0);
    this.segments.push({ bytes, start: 0, end: n, appendable: true });
  }

  /** The unread bytes of the first segment (a view), or undefined when empty. */
  peek(): Uint8Array | undefined {
    const head = this.segments[0];
    return head ? head.bytes.subarray(head.start, head.end) : undefined;
  }

  /** Drops the first min(n, length) bytes. */
  consume(n: number): void {
    let left = Math.min(Math.max(0, Math.floor(n)), this.bytes);
    this.bytes -= left;
    while (left > 0) {
      const head = this.segments[0] as Segment;
      const step = Math.min(left, head.end - head.start);
      head.start += step;
      left -= step;
      if (head.start === head.end) this.segments.shift();
    }
  }

  /**
   * Removes and returns the first min(max, length) bytes: a view of the first segment when it
   * holds them all, else a new buffer gathered from several segments.
   */
  take(max: number): Uint8Array {
    const n = Math.min(Math.max(0, Math.floor(max)), this.bytes);
    const head = this.segments[0];
    if (!head || n === 0) return new Uint8Array(0);
    if (head.end - head.start >= n) {
      const out = head.bytes.subarray(head.start, head.start + n);
      this.consume(n);
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const s of this.segments) {
      if (at === n) break;
      const step = Math.min(n - at, s.end - s.start);
      out.set(s.bytes.subarray(s.start, s.start + step), at);
      at += step;
    }
    this.consume(n);
    return out;
  }

  /** Drops everything; returns how many bytes were dropped. */
  clear(): number {
    const dropped = this.bytes;
    this.segments.length = 0;
    this.bytes = 0;
    return dropped;
  }

  /** Segments held (for tests of the memory bound). */
  get segmentCount(): number {
    return this.segments.length;
  }

  /** Bytes allocated by the segments (for tests of the memory bound). */
  get allocatedBytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.bytes.byteLength;
    return total;
  }
}
