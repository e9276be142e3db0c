// Descriptor chains of a split virtqueue (virtio 1.2 §2.7.5): parsed once, eagerly, when the chain
// is popped, into zero-copy views of guest memory — device-readable buffers first, then
// device-writable ones (§2.7.4.2). Everything the guest wrote is untrusted: every index is checked
// against its table, every [addr, addr+len) through GuestMemory, the walk is bounded so a NEXT loop
// ends in an error, and any malformation is a VirtioChainError — never another exception, never an
// access outside guest memory.

import type { GuestMemory } from '../../vmm/guest-memory.js';
import { VirtioChainError, type VirtioChainErrorReason, hex } from './errors.js';

/** struct virtq_desc flags (§2.7.5). */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** sizeof(struct virtq_desc): le64 addr, le32 len, le16 flags, le16 next. */
export const DESC_SIZE = 16;

const U32_MAX = 0xffff_ffff;
/** High 32 bits of an address at or above this make it larger than 2^53: outside any guest memory. */
const UNSAFE_HIGH = 0x20_0000;

/** What parsing needs to know about the queue the chain came from. */
export interface ChainContext {
  /** Guest-physical address of the descriptor table (already validated for 16 * size bytes). */
  readonly desc: number;
  /** The descriptor table itself: a view of those 16 * size bytes of guest memory. */
  readonly descView: DataView;
  /** Queue size: entries in the descriptor table. */
  readonly size: number;
  /** The queue's maximum size (QueueNumMax): cap on descriptors in a chain and entries in an indirect table. */
  readonly maxSize: number;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  readonly indirectDesc: boolean;
}

function fail(reason: VirtioChainErrorReason, head: number, ctx: ChainContext, where: string, what: string): never {
  throw new VirtioChainError(reason, head, head < ctx.size, `${where} of the chain at head ${head}: ${what}`);
}

/** A descriptor's address for an error message (hi and lo as read, addr as computed). */
function addrText(hi: number, lo: number, addr: number): string {
  return hi >= UNSAFE_HIGH ? `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}` : hex(addr);
}

function describe(indirect: boolean, index: number, table: number, tableLen: number): string {
  return indirect ? `indirect descriptor ${index} (table at ${hex(table)}, ${tableLen} entries)` : `descriptor ${index}`;
}

export class DescriptorChain {
  private constructor(
    /** Head index in the descriptor table: what pushUsed takes back. */
    readonly head: number,
    /** Device-readable buffers, in chain order: views of guest memory (do not write to them). */
    readonly readable: readonly Uint8Array[],
    /** Device-writable buffers, in chain order: views of guest memory. */
    readonly writable: readonly Uint8Array[],
    readonly readableLength: number,
    readonly writableLength: number,
    /** Buffer descriptors in the chain (a descriptor that points at an indirect table is not counted). */
    readonly descriptorCount: number,
  ) {}

  /**
   * Walks the chain at `head`. Throws VirtioChainError (and nothing else) when it is malformed.
   * The caller guarantees that ctx.desc is inside guest memory for 16 * ctx.size bytes.
   */
  static parse(memory: GuestMemory, ctx: ChainContext, head: number): DescriptorChain {
    if (!Number.isInteger(head) || head < 0 || head >= ctx.size) {
      fail('index', head, ctx, 'head', `index ${head} is outside the descriptor table of ${ctx.size} entries`);
    }

    const readable: Uint8Array[] = [];
    const writable: Uint8Array[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let table = ctx.desc;
    let tableView = ctx.descView;
    let tableLen = ctx.size;
    let indirect = false;
    let index = head;
    let walked = 0; // descriptors read from the current table
    let count = 0; // buffer descriptors in the chain
    const bad = (reason: VirtioChainErrorReason, what: string): never =>
      fail(reason, head, ctx, describe(indirect, index, table, tableLen), what);

    for (;;) {
      // The walk is bounded by the table: following more NEXT links than the table has entries
      // means some entry was visited twice (§2.7.5.2: "loops in the descriptor chain are forbidden").
      if (walked === tableLen) {
        bad('loop', `more than ${tableLen} descriptors followed in a table of ${tableLen}: NEXT links form a loop`);
      }
      walked++;
      // tableView covers the table (the queue's, validated at configuration; an indirect one,
      // below), and index < tableLen: these reads cannot leave guest memory.
      const at = index * DESC_SIZE;
      const lo = tableView.getUint32(at, true);
      const hi = tableView.getUint32(at + 4, true);
      const len = tableView.getUint32(at + 8, true);
      const flags = tableView.getUint16(at + 12, true);
      const next = tableView.getUint16(at + 14, true);
      const addr = hi >= UNSAFE_HIGH ? Number.POSITIVE_INFINITY : hi * 0x1_0000_0000 + lo;

      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (indirect) bad('nested-indirect', 'VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1 allows one table per chain)');
        if (!ctx.indirectDesc) bad('indirect-not-negotiated', 'VIRTQ_DESC_F_INDIRECT set but VIRTIO_F_INDIRECT_DESC was not negotiated');
        if (len === 0 || len % DESC_SIZE !== 0) {
          bad('bad-indirect-length', `indirect table length ${len} is not a non-zero multiple of ${DESC_SIZE}`);
        }
        if (len / DESC_SIZE > ctx.maxSize) {
          bad('bad-indirect-length', `indirect table of ${len / DESC_SIZE} entries exceeds the queue maximum of ${ctx.maxSize}`);
        }
        const t = memory.sliceIfInside(addr, len);
        if (!t) return bad('out-of-range', `indirect table ${addrText(hi, lo, addr)} + ${len} outside guest memory`);
        // §2.7.5.3: the table replaces the rest of the chain; WRITE on this descriptor is ignored
        // (§2.7.5.3.2) and so is NEXT, which drivers must not set together with INDIRECT (§2.7.5.3.1).
        table = addr;
        tableView = new DataView(t.buffer, t.byteOffset, t.byteLength);
        tableLen = len / DESC_SIZE;
        indirect = true;
        index = 0;
        walked = 0;
        continue;
      }

      count++;
      if (count > ctx.maxSize) bad('too-long', `more than ${ctx.maxSize} descriptors in one chain (the queue maximum)`);
      const view = memory.sliceIfInside(addr, len);
      if (!view) return bad('out-of-range', `address ${addrText(hi, lo, addr)} + ${len} outside guest memory`);
      if (flags & VIRTQ_DESC_F_WRITE) {
        writableLength += len;
        if (writableLength > U32_MAX) bad('too-long', `device-writable buffers exceed 2^32-1 bytes in total (§2.7.5.2)`);
        writable.push(view);
      } else {
        if (writable.length > 0) {
          bad('direction', 'device-readable descriptor after a device-writable one (§2.7.4.2: readable buffers come first)');
        }
        readableLength += len;
        if (readableLength > U32_MAX) bad('too-long', `device-readable buffers exceed 2^32-1 bytes in total (§2.7.5.2)`);
        readable.push(view);
      }

      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      if (next >= tableLen) {
        bad('index', `next index ${next} is outside the ${indirect ? 'indirect' : 'descriptor'} table of ${tableLen} entries`);
      }
      index = next;
    }
    return new DescriptorChain(head, readable, writable, readableLength, writableLength, count);
  }

  /** A cursor over the device-readable side. */
  reader(): ChainReader {
    return new ChainReader(this.readable, this.readableLength);
  }

  /** A cursor over the device-writable side; its `written` is the len to give pushUsed. */
  writer(): ChainWriter {
    return new ChainWriter(this.writable, this.writableLength);
  }

  /** A copy of the first min(maxBytes, readableLength) readable bytes, across descriptor boundaries. */
  readAll(maxBytes = Number.POSITIVE_INFINITY): Uint8Array {
    const out = new Uint8Array(Math.min(Math.max(0, maxBytes), this.readableLength));
    this.reader().read(out);
    return out;
  }
}

/** A position in a list of views; moves forward only. */
class ViewCursor {
  private view = 0;
  private offset = 0;
  private done = 0;

  constructor(
    private readonly views: readonly Uint8Array[],
    /** Total bytes of all views. */
    readonly length: number,
  ) {}

  /** Bytes not yet consumed. */
  get remaining(): number {
    return this.length - this.done;
  }

  /** Bytes consumed so far. */
  protected get position(): number {
    return this.done;
  }

  /**
   * Advances by up to n bytes, calling visit for each contiguous piece (a subarray of one view and
   * the offset of that piece within the n bytes). Returns the bytes advanced.
   */
  protected advance(n: number, visit?: (piece: Uint8Array, at: number) => void): number {
    let left = Math.min(Math.max(0, Math.floor(n)), this.remaining);
    const total = left;
    while (left > 0) {
      const v = this.views[this.view] as Uint8Array;
      const step = Math.min(left, v.byteLength - this.offset);
      // A piece that is a whole view is that view: no new view per buffer of a large request.
      if (step > 0 && visit) visit(step === v.byteLength ? v : v.subarray(this.offset, this.offset + step), total - left);
      this.offset += step;
      left -= step;
      if (this.offset === v.byteLength) {
        this.view++;
        this.offset = 0;
      }
    }
    this.done += total;
    return total;
  }

  /** Skips up to n bytes; returns how many. */
  skip(n: number): number {
    return this.advance(n);
  }

  /** Zero-copy views of the next min(n, remaining) bytes, then advances past them. */
  take(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.advance(n, (piece) => out.push(piece));
    return out;
  }
}

export class ChainReader extends ViewCursor {
  /** Copies min(dst.length, remaining) bytes into dst; returns how many. */
  read(dst: Uint8Array): number {
    return this.advance(dst.byteLength, (piece, at) => dst.set(piece, at));
  }

  /** Bytes read or skipped so far. */
  get consumed(): number {
    return this.position;
  }
}

export class ChainWriter extends ViewCursor {
  /** Copies min(src.length, remaining) bytes of src into guest memory; returns how many. */
  write(src: Uint8Array): number {
    return this.advance(src.byteLength, (piece, at) => piece.set(src.subarray(at, at + piece.byteLength)));
  }

  /** Bytes written (or handed out by take) from the start of the first writable buffer: pushUsed's len. */
  get written(): number {
    return this.position;
  }
}
