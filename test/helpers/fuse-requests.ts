// FUSE requests built the way Linux's virtio_fs driver sends them: fuse_in_header with
// len = 40 + the in args (fs/fuse/dev.c queue_request_and_unlock), then each in arg end to end
// with names NUL-terminated (fs/fuse/dir.c sends name.len + 1 bytes), then any extensions
// (total_extlen × 8 bytes, fuse.h 7.38). For the decoder's tests and, later, the server's.
import {
  FUSE_ACCESS_IN, FUSE_BATCH_FORGET_IN, FUSE_COPY_FILE_RANGE_IN, FUSE_CREATE_IN, FUSE_FALLOCATE_IN,
  FUSE_FLUSH_IN, FUSE_FORGET_IN, FUSE_FORGET_ONE, FUSE_FSYNC_IN, FUSE_GETATTR_IN, FUSE_GETXATTR_IN,
  FUSE_IN_HEADER, FUSE_INIT_IN, FUSE_INTERRUPT_IN, FUSE_LINK_IN, FUSE_LK_IN, FUSE_LSEEK_IN,
  FUSE_MKDIR_IN, FUSE_MKNOD_IN, FUSE_OPEN_IN, FUSE_READ_IN, FUSE_RELEASE_IN, FUSE_REMOVEMAPPING_IN,
  FUSE_REMOVEMAPPING_ONE, FUSE_RENAME2_IN, FUSE_RENAME_IN, FUSE_SETATTR_IN, FUSE_SETUPMAPPING_IN,
  FUSE_SETXATTR_IN, FUSE_SETXATTR_IN_COMPAT, FUSE_SYNCFS_IN, FUSE_WRITE_IN, REQUEST_OPCODES,
  writeStruct, type FuseRequestBody, type Layout,
} from '../../src/devices/virtiofs/fuse/index.js';

/** fuse_in_header fields other than len and opcode; defaults are a plausible guest process. */
export interface HeaderFields {
  readonly unique?: bigint;
  readonly nodeid?: bigint;
  readonly uid?: number;
  readonly gid?: number;
  readonly pid?: number;
  /** Extension bytes appended after the args; total_extlen becomes their length / 8. */
  readonly extensions?: Uint8Array;
  /** Overrides the computed len (to build malformed requests). */
  readonly len?: number;
  /** Overrides total_extlen (to build malformed requests). */
  readonly totalExtlen?: number;
}

export const DEFAULT_UNIQUE = 2n;
export const DEFAULT_NODEID = 1n;

/** Bytes from hex written in memory order (fields little-endian as they sit in the buffer); '#' starts a comment. For hand-written fixtures. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** The error of class `cls` that `fn` throws; rethrows any other error, and fails when nothing is thrown. */
export function thrown<E extends Error>(cls: abstract new (...args: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  throw new Error(`expected a ${cls.name}, nothing was thrown`);
}

/** The UTF-8 bytes of `s`. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** `s` as a C string: its bytes (UTF-8 for a string) and a NUL. */
export function cstr(s: string | Uint8Array): Uint8Array {
  const bytes = typeof s === 'string' ? utf8(s) : s;
  const out = new Uint8Array(bytes.byteLength + 1);
  out.set(bytes);
  return out;
}

/** `value` laid out as `layout`, in a new buffer. */
export function structBytes<T extends object>(layout: Layout<T>, value: T): Uint8Array {
  const out = new Uint8Array(layout.size);
  writeStruct(layout, out, 0, value);
  return out;
}

/** `parts` joined into a new Uint8Array of its own (not a Buffer: deep equality compares classes). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** A request: header for `opcode`, then `args` end to end, then the header's extensions. */
export function buildRequest(opcode: number, args: readonly Uint8Array[], h: HeaderFields = {}): Uint8Array {
  const ext = h.extensions ?? new Uint8Array(0);
  const body = concat([...args, ext]);
  const header = structBytes(FUSE_IN_HEADER, {
    len: h.len ?? FUSE_IN_HEADER.size + body.byteLength,
    opcode,
    unique: h.unique ?? DEFAULT_UNIQUE,
    nodeid: h.nodeid ?? DEFAULT_NODEID,
    uid: h.uid ?? 1000,
    gid: h.gid ?? 1000,
    pid: h.pid ?? 4242,
    totalExtlen: h.totalExtlen ?? ext.byteLength / 8,
  });
  return concat([header, body]);
}

/** What encodeRequest must know of the connection (as DecodeOptions). */
export interface EncodeOptions {
  readonly setxattrExt?: boolean;
}

/** The in args the kernel sends for `body` (fs/fuse/*.c: one entry per args.in_args[i]). */
export function requestArgs(body: FuseRequestBody, options: EncodeOptions = {}): Uint8Array[] {
  const s = <T extends object>(layout: Layout<T>, v: T) => structBytes(layout, v);
  switch (body.kind) {
    case 'init':
      return [s(FUSE_INIT_IN, body)]; // 6.1 always sends the 64-byte struct
    case 'destroy':
    case 'readlink':
    case 'statfs':
      return [];
    case 'syncfs':
      return [s(FUSE_SYNCFS_IN, {})];
    case 'lookup':
    case 'unlink':
    case 'rmdir':
    case 'removexattr':
      return [cstr(body.name)];
    case 'forget':
      return [s(FUSE_FORGET_IN, body)];
    case 'batchForget':
      return [s(FUSE_BATCH_FORGET_IN, { count: body.forgets.length }), ...body.forgets.map((f) => s(FUSE_FORGET_ONE, f))];
    case 'getattr':
      return [s(FUSE_GETATTR_IN, body)];
    case 'setattr':
      return [s(FUSE_SETATTR_IN, body)];
    case 'symlink':
      return [cstr(body.name), cstr(body.target)];
    case 'mknod':
      return [s(FUSE_MKNOD_IN, body), cstr(body.name)];
    case 'mkdir':
      return [s(FUSE_MKDIR_IN, body), cstr(body.name)];
    case 'rename':
      return [s(FUSE_RENAME_IN, body), cstr(body.oldname), cstr(body.newname)];
    case 'rename2':
      return [s(FUSE_RENAME2_IN, body), cstr(body.oldname), cstr(body.newname)];
    case 'link':
      return [s(FUSE_LINK_IN, body), cstr(body.newname)];
    case 'open':
    case 'opendir':
      return [s(FUSE_OPEN_IN, body)];
    case 'read':
    case 'readdir':
    case 'readdirplus':
      return [s(FUSE_READ_IN, body)];
    case 'write':
      return [s(FUSE_WRITE_IN, body), ...body.data];
    case 'release':
    case 'releasedir':
      return [s(FUSE_RELEASE_IN, body)];
    case 'fsync':
    case 'fsyncdir':
      return [s(FUSE_FSYNC_IN, body)];
    case 'setxattr':
      return [options.setxattrExt ? s(FUSE_SETXATTR_IN, body) : s(FUSE_SETXATTR_IN_COMPAT, body), cstr(body.name), body.value];
    case 'getxattr':
      return [s(FUSE_GETXATTR_IN, body), cstr(body.name)];
    case 'listxattr':
      return [s(FUSE_GETXATTR_IN, body)];
    case 'flush':
      return [s(FUSE_FLUSH_IN, body)];
    case 'getlk':
    case 'setlk':
    case 'setlkw':
      return [s(FUSE_LK_IN, body)];
    case 'access':
      return [s(FUSE_ACCESS_IN, body)];
    case 'create':
    case 'tmpfile':
      return [s(FUSE_CREATE_IN, body), cstr(body.name)];
    case 'interrupt':
      return [s(FUSE_INTERRUPT_IN, body)];
    case 'fallocate':
      return [s(FUSE_FALLOCATE_IN, body)];
    case 'lseek':
      return [s(FUSE_LSEEK_IN, body)];
    case 'copyFileRange':
      return [s(FUSE_COPY_FILE_RANGE_IN, body)];
    case 'setupmapping':
      return [s(FUSE_SETUPMAPPING_IN, body)];
    case 'removemapping':
      return [s(FUSE_REMOVEMAPPING_IN, { count: body.mappings.length }), ...body.mappings.map((m) => s(FUSE_REMOVEMAPPING_ONE, m))];
    case 'unknown':
      return [];
  }
}

/** The opcode the kernel uses for `body`. */
export function opcodeOf(body: FuseRequestBody): number {
  return body.kind === 'unknown' ? body.opcode : REQUEST_OPCODES[body.kind];
}

/** The whole request the kernel sends for `body`. */
export function encodeRequest(body: FuseRequestBody, header: HeaderFields = {}, options: EncodeOptions = {}): Uint8Array {
  return buildRequest(opcodeOf(body), requestArgs(body, options), header);
}

/** Shorthands for the common requests, as the kernel builds them. */
export const req = {
  lookup: (parent: bigint, name: string, h: HeaderFields = {}) => encodeRequest({ kind: 'lookup', name: utf8(name) }, { nodeid: parent, ...h }),
  write: (nodeid: bigint, fh: bigint, offset: bigint, data: Uint8Array, h: HeaderFields = {}) =>
    encodeRequest({ kind: 'write', fh, offset, size: data.byteLength, writeFlags: 0, lockOwner: 0n, flags: 0, data: [data] }, { nodeid, ...h }),
};
