// The device-writable side of a chain, as one run of bytes over its descriptors (virtio 1.2
// §5.11.6: fuse_out_header, then the out args; Linux's virtio_fs gives the header its own
// descriptor and READ data its pages). Replies are scattered into the views; READ data is read
// straight into bodyViews(), so file contents reach guest memory with no copy in JavaScript.
import { FUSE_OUT_HEADER_SIZE, writeErrorReply, writeReplyHeader } from '../fuse/index.js';
import { requestSource, type RequestSource } from '../fuse/source.js';

/** The reply does not fit the buffers the guest gave (only a hostile or broken guest does this). */
export class ReplyTooSmall extends Error {
  override readonly name = 'ReplyTooSmall';
}

export class ReplyViews {
  /** Total bytes the reply descriptors hold. */
  readonly capacity: number;
  /** The descriptors as one run of bytes (the same segment walk the request side uses). */
  private readonly run: RequestSource;

  constructor(views: readonly Uint8Array[]) {
    this.run = requestSource(views);
    this.capacity = this.run.length;
  }

  /** Bytes available for a body after the out header (0 when not even the header fits). */
  get bodyCapacity(): number {
    return Math.max(0, this.capacity - FUSE_OUT_HEADER_SIZE);
  }

  /** Views of bytes [start, start + length) of the reply, in order, within its capacity. */
  slice(start: number, length: number): Uint8Array[] {
    const end = Math.min(start + length, this.capacity);
    return end > start ? this.run.views(start, end) : [];
  }

  /** Up to `max` bytes after the header, as views for a read to fill. */
  bodyViews(max: number): Uint8Array[] {
    return this.slice(FUSE_OUT_HEADER_SIZE, Math.min(max, this.bodyCapacity));
  }

  private scatter(at: number, bytes: Uint8Array): void {
    let from = 0;
    for (const v of this.slice(at, bytes.byteLength)) {
      v.set(bytes.subarray(from, from + v.byteLength));
      from += v.byteLength;
    }
  }

  private need(bytes: number): void {
    if (bytes > this.capacity) throw new ReplyTooSmall(`a reply of ${bytes} bytes does not fit ${this.capacity} bytes of reply descriptors`);
  }

  /** A successful reply whose body is `body`; returns the reply's length. */
  reply(unique: bigint, body: Uint8Array): number {
    const len = FUSE_OUT_HEADER_SIZE + body.byteLength;
    this.need(len);
    this.header(unique, body.byteLength);
    this.scatter(FUSE_OUT_HEADER_SIZE, body);
    return len;
  }

  /** The header of a reply whose `bodyLength` bytes are already in bodyViews(); returns the length. */
  header(unique: bigint, bodyLength: number): number {
    const len = FUSE_OUT_HEADER_SIZE + bodyLength;
    this.need(len);
    const h = new Uint8Array(FUSE_OUT_HEADER_SIZE);
    writeReplyHeader(h, 0, unique, bodyLength);
    this.scatter(0, h);
    return len;
  }

  /** An error reply (the header alone); returns its length. */
  error(unique: bigint, errno: number): number {
    this.need(FUSE_OUT_HEADER_SIZE);
    const h = new Uint8Array(FUSE_OUT_HEADER_SIZE);
    writeErrorReply(h, 0, unique, errno);
    this.scatter(0, h);
    return FUSE_OUT_HEADER_SIZE;
  }
}
