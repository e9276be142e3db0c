// File calls Node's fs lacks (addon/fileio.cc): non-blocking positional reads (preadv2 with
// RWF_NOWAIT: what the page cache holds is copied at once, on the calling thread; nothing ever
// waits for a device or a lock), the O_DIRECT alignment (statx), and fallocate on the threadpool.
import { native as addon } from './native.js';
import { mapNativeError, native } from './errors.js';

/** What a non-blocking read did: bytes read (all, or the cached prefix), or why it read nothing. */
export type NoWaitRead = number | 'would-block' | 'unsupported';

/**
 * Reads into `buffers` (in order) from `fd` at `position` without waiting: returns the bytes
 * read, which may be fewer than asked (only a prefix was cached) or 0 at end of file;
 * 'would-block' when the first byte is not cached; 'unsupported' when the file system does not
 * do RWF_NOWAIT (tmpfs, for one: callers stop trying). Other failures throw SyscallError.
 */
export function preadNoWait(fd: number, buffers: readonly Uint8Array[], position: number): NoWaitRead {
  const n = native(() => addon().preadNoWait(fd, buffers, position));
  if (n === -1) return 'would-block';
  if (n === -2) return 'unsupported';
  return n;
}

/** What O_DIRECT needs of a file's transfers: buffer addresses and file offsets (and lengths)
 * multiples of these. */
export interface DirectIoAlignment {
  memory: number;
  offset: number;
}

/**
 * The O_DIRECT alignment of `fd` (statx STATX_DIOALIGN, Linux 6.1 and later), or undefined when
 * the kernel or the file system does not report it. { 0, 0 }: the file cannot do O_DIRECT.
 */
export function directIoAlignment(fd: number): DirectIoAlignment | undefined {
  return native(() => addon().dioAlignment(fd)) ?? undefined;
}

/** fallocate(2) modes (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/**
 * fallocate(fd, mode, offset, length) on libuv's threadpool (Node's fs has no fallocate). Rejects
 * with a SyscallError; its code is EOPNOTSUPP where the file system does not do `mode`.
 */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      addon().fallocateAsync(fd, mode, offset, length, (err?: Error) => (err ? reject(mapNativeError(err)) : resolve()));
    } catch (e) {
      reject(mapNativeError(e));
    }
  });
}
