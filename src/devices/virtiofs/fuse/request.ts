// Decoding of FUSE requests (include/uapi/linux/fuse.h, 7.38) as virtio-fs delivers them: the
// driver-readable part of a chain holds fuse_in_header, the op's in args laid end to end, and
// total_extlen × 8 bytes of extensions (virtio 1.2 §5.11.6: no /dev/fuse framing). The guest is
// hostile: every length is checked before the bytes it covers are read, a violation throws
// FuseDecodeError (with opcode and unique once the header was read, so the server can still
// reply), and an opcode without a decoder is { kind: 'unknown' } for an ENOSYS reply, never a
// throw. Lengths are exact: the kernel sizes each in arg for the negotiated minor (fs/fuse's
// fuse_adjust_compat), so bytes after the last field mean a malformed request — except in INIT,
// which precedes negotiation and may come from a kernel with a longer fuse_init_in.
// Names, values and WRITE data are views of the input, not copies: they stay valid only while
// the caller keeps those bytes (the descriptors) unchanged.

import {
  FUSE_ACCESS, FUSE_BATCH_FORGET, FUSE_COPY_FILE_RANGE, FUSE_CREATE, FUSE_DESTROY, FUSE_FALLOCATE,
  FUSE_FLUSH, FUSE_FORGET, FUSE_FSYNC, FUSE_FSYNCDIR, FUSE_GETATTR, FUSE_GETLK, FUSE_GETXATTR,
  FUSE_INIT, FUSE_INIT_EXT, FUSE_INTERRUPT, FUSE_LINK, FUSE_LISTXATTR, FUSE_LOOKUP, FUSE_LSEEK,
  FUSE_MKDIR, FUSE_MKNOD, FUSE_OPEN, FUSE_OPENDIR, FUSE_READ, FUSE_READDIR, FUSE_READDIRPLUS,
  FUSE_READLINK, FUSE_RELEASE, FUSE_RELEASEDIR, FUSE_REMOVEMAPPING, FUSE_REMOVEXATTR, FUSE_RENAME,
  FUSE_RENAME2, FUSE_RMDIR, FUSE_SETATTR, FUSE_SETLK, FUSE_SETLKW, FUSE_SETUPMAPPING, FUSE_SETXATTR,
  FUSE_STATFS, FUSE_SYMLINK, FUSE_SYNCFS, FUSE_TMPFILE, FUSE_UNLINK, FUSE_WRITE, opcodeName,
} from './constants.js';
import { FuseDecodeError, type FuseDecodeErrorReason } from './errors.js';
import { readStruct, type Layout, type ValueOfLayout } from './layout.js';
import { requestSource } from './source.js';
import {
  FUSE_ACCESS_IN, FUSE_BATCH_FORGET_IN, FUSE_COPY_FILE_RANGE_IN, FUSE_CREATE_IN, FUSE_FALLOCATE_IN,
  FUSE_FLUSH_IN, FUSE_FORGET_IN, FUSE_FORGET_ONE, FUSE_FSYNC_IN, FUSE_GETATTR_IN, FUSE_GETXATTR_IN,
  FUSE_IN_HEADER, FUSE_INIT_IN, FUSE_INIT_IN_COMPAT, FUSE_INTERRUPT_IN, FUSE_LINK_IN, FUSE_LK_IN,
  FUSE_LSEEK_IN, FUSE_MKDIR_IN, FUSE_MKNOD_IN, FUSE_OPEN_IN, FUSE_READ_IN, FUSE_RELEASE_IN,
  FUSE_REMOVEMAPPING_IN, FUSE_REMOVEMAPPING_ONE, FUSE_RENAME2_IN, FUSE_RENAME_IN, FUSE_SETATTR_IN,
  FUSE_SETUPMAPPING_IN, FUSE_SETXATTR_IN, FUSE_SETXATTR_IN_COMPAT, FUSE_SYNCFS_IN, FUSE_WRITE_IN,
  type FuseInHeader,
} from './structs.js';

type V<L> = ValueOfLayout<L>;
type Name = Uint8Array;

/** A decoded request body, keyed by `kind` (the opcode's fuse.h name in camelCase). */
export type FuseRequestBody =
  | { readonly kind: 'init'; readonly major: number; readonly minor: number; readonly maxReadahead: number; readonly flags: number; readonly flags2: number }
  | { readonly kind: 'destroy' | 'readlink' | 'statfs' | 'syncfs' }
  | { readonly kind: 'lookup' | 'unlink' | 'rmdir' | 'removexattr'; readonly name: Name }
  | ({ readonly kind: 'forget' } & V<typeof FUSE_FORGET_IN>)
  | { readonly kind: 'batchForget'; readonly forgets: readonly V<typeof FUSE_FORGET_ONE>[] }
  | ({ readonly kind: 'getattr' } & V<typeof FUSE_GETATTR_IN>)
  | ({ readonly kind: 'setattr' } & V<typeof FUSE_SETATTR_IN>)
  | { readonly kind: 'symlink'; readonly name: Name; readonly target: Name }
  | ({ readonly kind: 'mknod'; readonly name: Name } & V<typeof FUSE_MKNOD_IN>)
  | ({ readonly kind: 'mkdir'; readonly name: Name } & V<typeof FUSE_MKDIR_IN>)
  | ({ readonly kind: 'rename'; readonly oldname: Name; readonly newname: Name } & V<typeof FUSE_RENAME_IN>)
  | ({ readonly kind: 'rename2'; readonly oldname: Name; readonly newname: Name } & V<typeof FUSE_RENAME2_IN>)
  | ({ readonly kind: 'link'; readonly newname: Name } & V<typeof FUSE_LINK_IN>)
  | ({ readonly kind: 'open' | 'opendir' } & V<typeof FUSE_OPEN_IN>)
  | ({ readonly kind: 'read' | 'readdir' | 'readdirplus' } & V<typeof FUSE_READ_IN>)
  /** data: exactly `size` bytes, as views of the descriptors they arrived in (an iovec). */
  | ({ readonly kind: 'write'; readonly data: readonly Uint8Array[] } & V<typeof FUSE_WRITE_IN>)
  | ({ readonly kind: 'release' | 'releasedir' } & V<typeof FUSE_RELEASE_IN>)
  | ({ readonly kind: 'fsync' | 'fsyncdir' } & V<typeof FUSE_FSYNC_IN>)
  /** setxattrFlags is 0 unless the server negotiated FUSE_SETXATTR_EXT. value: exactly `size` bytes. */
  | ({ readonly kind: 'setxattr'; readonly name: Name; readonly value: Uint8Array } & V<typeof FUSE_SETXATTR_IN>)
  | ({ readonly kind: 'getxattr'; readonly name: Name } & V<typeof FUSE_GETXATTR_IN>)
  | ({ readonly kind: 'listxattr' } & V<typeof FUSE_GETXATTR_IN>)
  | ({ readonly kind: 'flush' } & V<typeof FUSE_FLUSH_IN>)
  | ({ readonly kind: 'getlk' | 'setlk' | 'setlkw' } & V<typeof FUSE_LK_IN>)
  | ({ readonly kind: 'access' } & V<typeof FUSE_ACCESS_IN>)
  /** TMPFILE carries a CREATE's args; its name is the VFS's placeholder "/". */
  | ({ readonly kind: 'create' | 'tmpfile'; readonly name: Name } & V<typeof FUSE_CREATE_IN>)
  | ({ readonly kind: 'interrupt' } & V<typeof FUSE_INTERRUPT_IN>)
  | ({ readonly kind: 'fallocate' } & V<typeof FUSE_FALLOCATE_IN>)
  | ({ readonly kind: 'lseek' } & V<typeof FUSE_LSEEK_IN>)
  | ({ readonly kind: 'copyFileRange' } & V<typeof FUSE_COPY_FILE_RANGE_IN>)
  | ({ readonly kind: 'setupmapping' } & V<typeof FUSE_SETUPMAPPING_IN>)
  | { readonly kind: 'removemapping'; readonly mappings: readonly V<typeof FUSE_REMOVEMAPPING_ONE>[] }
  /** An opcode this codec does not decode (BMAP, IOCTL, POLL, ...): reply ENOSYS. */
  | { readonly kind: 'unknown'; readonly opcode: number };

export type FuseRequestKind = FuseRequestBody['kind'];

/** One decoded request. */
export interface FuseRequest {
  readonly header: FuseInHeader;
  readonly body: FuseRequestBody;
  /** The total_extlen × 8 bytes after the op's args (7.38 extensions; empty unless FUSE_SECURITY_CTX). */
  readonly extensions: Uint8Array;
}

/** What the decoder must know of the negotiated connection. */
export interface DecodeOptions {
  /** The server's INIT reply set FUSE_SETXATTR_EXT: SETXATTR carries the 16-byte fuse_setxattr_in. */
  readonly setxattrExt?: boolean;
}

/** The opcode of each kind the decoder produces (the inverse of its table). */
export const REQUEST_OPCODES: Readonly<Record<Exclude<FuseRequestKind, 'unknown'>, number>> = {
  init: FUSE_INIT, destroy: FUSE_DESTROY, lookup: FUSE_LOOKUP, forget: FUSE_FORGET,
  batchForget: FUSE_BATCH_FORGET, getattr: FUSE_GETATTR, setattr: FUSE_SETATTR,
  readlink: FUSE_READLINK, symlink: FUSE_SYMLINK, mknod: FUSE_MKNOD, mkdir: FUSE_MKDIR,
  unlink: FUSE_UNLINK, rmdir: FUSE_RMDIR, rename: FUSE_RENAME, rename2: FUSE_RENAME2,
  link: FUSE_LINK, open: FUSE_OPEN, read: FUSE_READ, write: FUSE_WRITE, statfs: FUSE_STATFS,
  release: FUSE_RELEASE, fsync: FUSE_FSYNC, setxattr: FUSE_SETXATTR, getxattr: FUSE_GETXATTR,
  listxattr: FUSE_LISTXATTR, removexattr: FUSE_REMOVEXATTR, flush: FUSE_FLUSH,
  opendir: FUSE_OPENDIR, readdir: FUSE_READDIR, releasedir: FUSE_RELEASEDIR,
  fsyncdir: FUSE_FSYNCDIR, getlk: FUSE_GETLK, setlk: FUSE_SETLK, setlkw: FUSE_SETLKW,
  access: FUSE_ACCESS, create: FUSE_CREATE, interrupt: FUSE_INTERRUPT, fallocate: FUSE_FALLOCATE,
  readdirplus: FUSE_READDIRPLUS, lseek: FUSE_LSEEK, copyFileRange: FUSE_COPY_FILE_RANGE,
  setupmapping: FUSE_SETUPMAPPING, removemapping: FUSE_REMOVEMAPPING, syncfs: FUSE_SYNCFS,
  tmpfile: FUSE_TMPFILE,
};

type Fail = (reason: FuseDecodeErrorReason, message: string) => FuseDecodeError;

/** A cursor over the op's args (the bytes between the header and the extensions). */
class ArgsReader {
  private pos = 0;

  constructor(
    private readonly bytes: Uint8Array,
    readonly fail: Fail,
  ) {}

  get remaining(): number {
    return this.bytes.byteLength - this.pos;
  }

  /** Reads `layout` (advancing unless `advance` is false) after checking that it fits. */
  struct<T extends object>(layout: Layout<T>, advance = true): T {
    if (this.remaining < layout.size) {
      throw this.fail('short-body', `struct ${layout.name} needs ${layout.size} bytes, ${this.remaining} left`);
    }
    const value = readStruct(layout, this.bytes, this.pos);
    if (advance) this.pos += layout.size;
    return value;
  }

  /** `count` consecutive `layout`s, which must be exactly the rest of the args. */
  array<T extends object>(layout: Layout<T>, count: number): T[] {
    if (count * layout.size !== this.remaining) {
      throw this.fail('count-mismatch', `count ${count} × struct ${layout.name} (${layout.size} bytes) but ${this.remaining} bytes follow`);
    }
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(this.struct(layout));
    return out;
  }

  /** A NUL-terminated, non-empty name; returns its bytes without the NUL. */
  name(what: string): Name {
    const nul = this.bytes.indexOf(0, this.pos);
    if (nul < 0) throw this.fail('missing-nul', `${what} has no NUL terminator within the request`);
    if (nul === this.pos) throw this.fail('empty-name', `${what} is empty`);
    const name = this.bytes.subarray(this.pos, nul);
    this.pos = nul + 1;
    return name;
  }

  /** The rest of the args, which must be exactly `size` bytes (announced by `what`). */
  exactly(size: number, what: string): Uint8Array {
    if (this.remaining !== size) throw this.fail('size-mismatch', `${what} is ${size} but ${this.remaining} bytes follow`);
    return this.rest();
  }

  rest(): Uint8Array {
    const out = this.bytes.subarray(this.pos);
    this.pos = this.bytes.byteLength;
    return out;
  }

  end(): void {
    if (this.remaining !== 0) throw this.fail('trailing-bytes', `${this.remaining} bytes after the last argument`);
  }
}

type Decoder = (r: ArgsReader, options: DecodeOptions) => FuseRequestBody;

function decodeInit(r: ArgsReader): FuseRequestBody {
  // Before 7.36 fuse_init_in was 16 bytes; FUSE_INIT_EXT says the 64-byte struct (with flags2) came.
  const head = r.struct(FUSE_INIT_IN_COMPAT, false);
  const init = (head.flags & FUSE_INIT_EXT) !== 0 ? r.struct(FUSE_INIT_IN) : { ...r.struct(FUSE_INIT_IN_COMPAT), flags2: 0 };
  r.rest(); // a newer kernel's longer fuse_init_in: its extra fields are not ours to judge
  return { kind: 'init', ...init };
}

function decodeSetxattr(r: ArgsReader, options: DecodeOptions): FuseRequestBody {
  const head = options.setxattrExt ? r.struct(FUSE_SETXATTR_IN) : { ...r.struct(FUSE_SETXATTR_IN_COMPAT), setxattrFlags: 0 };
  const name = r.name('xattr name');
  return { kind: 'setxattr', ...head, name, value: r.exactly(head.size, 'fuse_setxattr_in.size') };
}

const DECODERS: ReadonlyMap<number, Decoder> = new Map<number, Decoder>([
  [FUSE_INIT, decodeInit],
  [FUSE_DESTROY, () => ({ kind: 'destroy' })],
  [FUSE_READLINK, () => ({ kind: 'readlink' })],
  [FUSE_STATFS, () => ({ kind: 'statfs' })],
  [
    FUSE_SYNCFS,
    (r) => {
      r.struct(FUSE_SYNCFS_IN); // fuse_syncfs_in is 8 bytes of padding
      return { kind: 'syncfs' };
    },
  ],
  [FUSE_LOOKUP, (r) => ({ kind: 'lookup', name: r.name('name') })],
  [FUSE_UNLINK, (r) => ({ kind: 'unlink', name: r.name('name') })],
  [FUSE_RMDIR, (r) => ({ kind: 'rmdir', name: r.name('name') })],
  [FUSE_REMOVEXATTR, (r) => ({ kind: 'removexattr', name: r.name('xattr name') })],
  [FUSE_FORGET, (r) => ({ kind: 'forget', ...r.struct(FUSE_FORGET_IN) })],
  [FUSE_BATCH_FORGET, (r) => ({ kind: 'batchForget', forgets: r.array(FUSE_FORGET_ONE, r.struct(FUSE_BATCH_FORGET_IN).count) })],
  [FUSE_GETATTR, (r) => ({ kind: 'getattr', ...r.struct(FUSE_GETATTR_IN) })],
  [FUSE_SETATTR, (r) => ({ kind: 'setattr', ...r.struct(FUSE_SETATTR_IN) })],
  [FUSE_SYMLINK, (r) => ({ kind: 'symlink', name: r.name('name'), target: r.name('link target') })],
  [FUSE_MKNOD, (r) => ({ kind: 'mknod', ...r.struct(FUSE_MKNOD_IN), name: r.name('name') })],
  [FUSE_MKDIR, (r) => ({ kind: 'mkdir', ...r.struct(FUSE_MKDIR_IN), name: r.name('name') })],
  [FUSE_RENAME, (r) => ({ kind: 'rename', ...r.struct(FUSE_RENAME_IN), oldname: r.name('old name'), newname: r.name('new name') })],
  [FUSE_RENAME2, (r) => ({ kind: 'rename2', ...r.struct(FUSE_RENAME2_IN), oldname: r.name('old name'), newname: r.name('new name') })],
  [FUSE_LINK, (r) => ({ kind: 'link', ...r.struct(FUSE_LINK_IN), newname: r.name('new name') })],
  [FUSE_OPEN, (r) => ({ kind: 'open', ...r.struct(FUSE_OPEN_IN) })],
  [FUSE_OPENDIR, (r) => ({ kind: 'opendir', ...r.struct(FUSE_OPEN_IN) })],
  [FUSE_READ, (r) => ({ kind: 'read', ...r.struct(FUSE_READ_IN) })],
  [FUSE_READDIR, (r) => ({ kind: 'readdir', ...r.struct(FUSE_READ_IN) })],
  [FUSE_READDIRPLUS, (r) => ({ kind: 'readdirplus', ...r.struct(FUSE_READ_IN) })],
  [FUSE_RELEASE, (r) => ({ kind: 'release', ...r.struct(FUSE_RELEASE_IN) })],
  [FUSE_RELEASEDIR, (r) => ({ kind: 'releasedir', ...r.struct(FUSE_RELEASE_IN) })],
  [FUSE_FSYNC, (r) => ({ kind: 'fsync', ...r.struct(FUSE_FSYNC_IN) })],
  [FUSE_FSYNCDIR, (r) => ({ kind: 'fsyncdir', ...r.struct(FUSE_FSYNC_IN) })],
  [FUSE_SETXATTR, decodeSetxattr],
  [FUSE_GETXATTR, (r) => ({ kind: 'getxattr', ...r.struct(FUSE_GETXATTR_IN), name: r.name('xattr name') })],
  [FUSE_LISTXATTR, (r) => ({ kind: 'listxattr', ...r.struct(FUSE_GETXATTR_IN) })],
  [FUSE_FLUSH, (r) => ({ kind: 'flush', ...r.struct(FUSE_FLUSH_IN) })],
  [FUSE_GETLK, (r) => ({ kind: 'getlk', ...r.struct(FUSE_LK_IN) })],
  [FUSE_SETLK, (r) => ({ kind: 'setlk', ...r.struct(FUSE_LK_IN) })],
  [FUSE_SETLKW, (r) => ({ kind: 'setlkw', ...r.struct(FUSE_LK_IN) })],
  [FUSE_ACCESS, (r) => ({ kind: 'access', ...r.struct(FUSE_ACCESS_IN) })],
  [FUSE_CREATE, (r) => ({ kind: 'create', ...r.struct(FUSE_CREATE_IN), name: r.name('name') })],
  [FUSE_TMPFILE, (r) => ({ kind: 'tmpfile', ...r.struct(FUSE_CREATE_IN), name: r.name('name') })],
  [FUSE_INTERRUPT, (r) => ({ kind: 'interrupt', ...r.struct(FUSE_INTERRUPT_IN) })],
  [FUSE_FALLOCATE, (r) => ({ kind: 'fallocate', ...r.struct(FUSE_FALLOCATE_IN) })],
  [FUSE_LSEEK, (r) => ({ kind: 'lseek', ...r.struct(FUSE_LSEEK_IN) })],
  [FUSE_COPY_FILE_RANGE, (r) => ({ kind: 'copyFileRange', ...r.struct(FUSE_COPY_FILE_RANGE_IN) })],
  [FUSE_SETUPMAPPING, (r) => ({ kind: 'setupmapping', ...r.struct(FUSE_SETUPMAPPING_IN) })],
  [FUSE_REMOVEMAPPING, (r) => ({ kind: 'removemapping', mappings: r.array(FUSE_REMOVEMAPPING_ONE, r.struct(FUSE_REMOVEMAPPING_IN).count) })],
]);

/**
 * Decodes one request from the driver-readable bytes of a virtio-fs chain: one view, or the
 * descriptors' views in chain order. fuse_in_header.len must equal the bytes given (the
 * readable side holds nothing but the request). Throws FuseDecodeError on any malformed length.
 */
export function decodeRequest(input: Uint8Array | readonly Uint8Array[], options: DecodeOptions = {}): FuseRequest {
  const src = requestSource(input);
  if (src.length < FUSE_IN_HEADER.size) {
    throw new FuseDecodeError('short-header', `FUSE request of ${src.length} bytes is shorter than struct fuse_in_header (${FUSE_IN_HEADER.size})`);
  }
  const header = readStruct(FUSE_IN_HEADER, src.gather(0, FUSE_IN_HEADER.size));
  const fail: Fail = (reason, message) =>
    new FuseDecodeError(reason, `FUSE ${opcodeName(header.opcode)} (unique ${header.unique}): ${message}`, header.opcode, header.unique);
  if (header.len !== src.length) throw fail('length-mismatch', `fuse_in_header.len is ${header.len} but the request has ${src.length} bytes`);
  const argsEnd = src.length - header.totalExtlen * 8;
  if (argsEnd < FUSE_IN_HEADER.size) {
    throw fail('bad-extension-length', `total_extlen ${header.totalExtlen} (× 8 bytes) exceeds the ${src.length - FUSE_IN_HEADER.size} bytes after the header`);
  }
  const extensions = src.gather(argsEnd, src.length);
  if (header.opcode === FUSE_WRITE) {
    // WRITE's data is left in its descriptors: only the 40-byte fuse_write_in is gathered.
    const fixedEnd = FUSE_IN_HEADER.size + FUSE_WRITE_IN.size;
    const r = new ArgsReader(src.gather(FUSE_IN_HEADER.size, Math.min(fixedEnd, argsEnd)), fail);
    const write = r.struct(FUSE_WRITE_IN);
    if (argsEnd - fixedEnd !== write.size) throw fail('size-mismatch', `fuse_write_in.size is ${write.size} but ${argsEnd - fixedEnd} bytes of data follow`);
    return { header, extensions, body: { kind: 'write', ...write, data: src.views(fixedEnd, argsEnd) } };
  }
  const decoder = DECODERS.get(header.opcode);
  if (decoder === undefined) return { header, extensions, body: { kind: 'unknown', opcode: header.opcode } };
  const r = new ArgsReader(src.gather(FUSE_IN_HEADER.size, argsEnd), fail);
  const body = decoder(r, options);
  r.end();
  return { header, extensions, body };
}
