// Encoding of FUSE replies (fuse.h fuse_out_header and the fuse_*_out structs) into the
// device-writable part of a virtio-fs chain (virtio 1.2 §5.11.6). Encoders write at an offset of
// a caller-given Uint8Array and return the offset after what they wrote: Linux's virtio_fs gives
// the out header and the out args separate descriptors, so the device can pass each descriptor's
// guest-memory view (GuestMemory.slice) and every struct lands in the guest with no intermediate
// buffer and no allocation; encodeReply() is the one-buffer form for tests and slow paths.
// A reply is fuse_out_header (len = 16 + body bytes, error = 0 or -errno, the request's unique)
// followed by the body; error replies are the header alone (fs/fuse/dev.c ignores any body).

import { FUSE_MAX_REPLY_ERRNO } from './constants.js';
import { FuseEncodeError } from './errors.js';
import { writeStruct, type Layout } from './layout.js';
import { FUSE_OUT_HEADER } from './structs.js';

/** sizeof(struct fuse_out_header). */
export const FUSE_OUT_HEADER_SIZE = FUSE_OUT_HEADER.size;

/**
 * Writes the header of a successful reply whose body is `bodyLength` bytes (a struct, READ data,
 * a READLINK target, dirents): len = 16 + bodyLength, error = 0.
 */
export function writeReplyHeader(into: Uint8Array, offset: number, unique: bigint, bodyLength: number): number {
  return writeStruct(FUSE_OUT_HEADER, into, offset, { len: FUSE_OUT_HEADER_SIZE + bodyLength, error: 0, unique });
}

/**
 * Writes an error reply: the 16-byte header alone with error = -errno. `errno` is a positive
 * errno below ERESTARTSYS (512), the range fs/fuse/dev.c accepts from a server.
 */
export function writeErrorReply(into: Uint8Array, offset: number, unique: bigint, errno: number): number {
  if (!Number.isInteger(errno) || errno < 1 || errno > FUSE_MAX_REPLY_ERRNO) {
    throw new FuseEncodeError('out-of-range', `FUSE error reply: errno ${errno} is not in 1..${FUSE_MAX_REPLY_ERRNO}`);
  }
  return writeStruct(FUSE_OUT_HEADER, into, offset, { len: FUSE_OUT_HEADER_SIZE, error: -errno, unique });
}

/** Writes header and body (`value` as `layout`) and returns the offset after the reply. */
export function writeReply<T extends object>(into: Uint8Array, offset: number, unique: bigint, layout: Layout<T>, value: T): number {
  if (offset + FUSE_OUT_HEADER_SIZE + layout.size > into.byteLength) {
    throw new FuseEncodeError('buffer-too-small', `FUSE reply with ${layout.name}: ${FUSE_OUT_HEADER_SIZE + layout.size} bytes at offset ${offset} do not fit a buffer of ${into.byteLength}`);
  }
  return writeStruct(layout, into, writeReplyHeader(into, offset, unique, layout.size), value);
}

/** A successful reply with body `value` as `layout`, in a new buffer. */
export function encodeReply<T extends object>(unique: bigint, layout: Layout<T>, value: T): Uint8Array {
  const out = new Uint8Array(FUSE_OUT_HEADER_SIZE + layout.size);
  writeReply(out, 0, unique, layout, value);
  return out;
}

/** An error reply in a new 16-byte buffer. */
export function encodeErrorReply(unique: bigint, errno: number): Uint8Array {
  const out = new Uint8Array(FUSE_OUT_HEADER_SIZE);
  writeErrorReply(out, 0, unique, errno);
  return out;
}
