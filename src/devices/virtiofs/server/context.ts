// What every op module sees of the server: the tables, the share's mode, the caller, and the
// shape of an op's answer. Ops never touch the reply descriptors except READ (bodyViews).
import { writeStruct, type FuseInHeader, type FuseRequestBody, type Layout } from '../fuse/index.js';
import type { HandleTable } from './handle-table.js';
import type { InodeTable } from './inode-table.js';
import type { ReplyViews } from './reply-views.js';
import { Errno, FsError } from './errors.js';

/** The decoded body member that carries kind K (some members serve several kinds: lookup/unlink/...). */
export type Body<K extends FuseRequestBody['kind']> = FuseRequestBody extends infer B ? (B extends { readonly kind: infer BK } ? (K extends BK ? B : never) : never) : never;

/** An op's answer: a body, a body already read into the reply views, an errno, or no reply at all. */
export type Reply = { readonly body: Uint8Array } | { readonly filled: number } | { readonly errno: number } | 'none';

/** An empty successful reply (the header alone). */
export const OK: Reply = { body: new Uint8Array(0) };

/** A reply whose body is `value` laid out as `layout`. */
export function struct<T extends object>(layout: Layout<T>, value: T): Reply {
  const body = new Uint8Array(layout.size);
  writeStruct(layout, body, 0, value);
  return { body };
}

/** Byte counters the file ops add to. */
export interface IoCounters {
  bytesRead: number;
  bytesWritten: number;
}

export interface OpContext {
  readonly inodes: InodeTable;
  readonly handles: HandleTable;
  readonly readOnly: boolean;
  /** The VMM runs as root: new inodes are given to the caller (see server.ts). */
  readonly privileged: boolean;
  /** Entry and attribute validity given to the guest, in seconds. */
  readonly timeoutSec: number;
  readonly io: IoCounters;
  /** The reply descriptors (READ fills them directly). */
  readonly out: ReplyViews;
  readonly header: FuseInHeader;
}

/** EROFS for a mutating op on a read-only share. */
export function mustWrite(ctx: OpContext, what: string): void {
  if (ctx.readOnly) throw new FsError(Errno.EROFS, `${what}: the share is read-only`);
}

/** A guest u64 file offset as a number; EINVAL past 2^53 (no Linux file is that large). */
export function offsetOf(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FsError(Errno.EINVAL, `offset ${v} is beyond 2^53`);
  return Number(v);
}
