// Typed errors of the FUSE codec. Two culprits:
// - FuseDecodeError: a request the guest put on a virtio-fs request queue (virtio 1.2 §5.11.6)
//   does not match fuse.h's layout. It carries the opcode and unique once the 40-byte
//   fuse_in_header was readable, so the server can still answer that request (EINVAL/EIO) and the
//   guest's waiter is not left hanging.
// - FuseEncodeError: the server asked for a reply the kernel would refuse (an errno out of range,
//   a field wider than its struct member, a dirent name parse_dirfile() rejects) or gave a buffer
//   too small. These are programming errors on the host side.
// Their `reason` is for code to branch on; the message names the opcode and what was wrong.

export type FuseDecodeErrorReason =
  /** Fewer than the 40 bytes of struct fuse_in_header. */
  | 'short-header'
  /** fuse_in_header.len is not the number of bytes the request occupies. */
  | 'length-mismatch'
  /** total_extlen (8-byte units) claims more bytes than follow the header. */
  | 'bad-extension-length'
  /** The op's fixed struct (fuse_*_in) does not fit in the bytes after the header. */
  | 'short-body'
  /** Bytes left over after the last field the op carries. */
  | 'trailing-bytes'
  /** A name or path that must be NUL-terminated has no NUL before the end of the request. */
  | 'missing-nul'
  /** A name the kernel never sends empty is empty. */
  | 'empty-name'
  /** A payload (WRITE data, SETXATTR value) is not exactly the size its struct announces. */
  | 'size-mismatch'
  /** An array (BATCH_FORGET, REMOVEMAPPING) is not exactly count entries long. */
  | 'count-mismatch';

export class FuseDecodeError extends Error {
  override readonly name = 'FuseDecodeError';

  constructor(
    readonly reason: FuseDecodeErrorReason,
    message: string,
    /** fuse_in_header.opcode, when the header was readable. */
    readonly opcode?: number,
    /** fuse_in_header.unique, when the header was readable: the reply's unique. */
    readonly unique?: bigint,
  ) {
    super(message);
  }
}

export type FuseEncodeErrorReason =
  /** The buffer given cannot hold the struct or reply. */
  | 'buffer-too-small'
  /** A value does not fit its field (not an integer, negative, wider than the member). */
  | 'out-of-range'
  /** A dirent name the kernel rejects: empty, longer than FUSE_NAME_MAX, or containing '/'. */
  | 'bad-name';

export class FuseEncodeError extends Error {
  override readonly name = 'FuseEncodeError';

  constructor(
    readonly reason: FuseEncodeErrorReason,
    message: string,
  ) {
    super(message);
  }
}
