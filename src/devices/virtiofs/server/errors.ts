// Errors of the passthrough server and the errno a FUSE reply carries for them. A failed host
// call arrives from confined-fs as a SyscallError whose errno is what Linux said; the server passes
// that errno to the guest (as virtiofsd does), so the guest sees what a local file system would.
// Anything else thrown inside an op is a server bug: it is answered EIO, never thrown out of handle().
import { SyscallError } from '../../../vmm/errors.js';
import { FUSE_MAX_REPLY_ERRNO } from '../fuse/index.js';

/** The errnos the server itself answers (asm-generic/errno-base.h, errno.h; x86 values). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EFBIG: 27,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOPNOTSUPP: 95,
  ESTALE: 116,
} as const;

/** A refusal decided by the server (not by a system call): its errno goes into the reply. */
export class FsError extends Error {
  override readonly name = 'FsError';

  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** NodeJS.ErrnoException from node:fs carries a negative errno (libuv's -errno). */
function nodeErrno(e: unknown): number | undefined {
  if (!(e instanceof Error)) return undefined;
  const n = (e as NodeJS.ErrnoException).errno;
  return typeof n === 'number' ? Math.abs(n) : undefined;
}

/** The errno to answer for `e`, and whether it was expected (a host errno) or a server bug (EIO). */
export function errnoOf(e: unknown): { errno: number; bug: boolean } {
  let n: number | undefined;
  if (e instanceof FsError || e instanceof SyscallError) n = e.errno;
  else n = nodeErrno(e);
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > FUSE_MAX_REPLY_ERRNO) return { errno: Errno.EIO, bug: true };
  return { errno: n, bug: false };
}

/** The metrics class of an errno: the common ones by name, the rest as 'other'. */
export function errnoClass(errno: number): string {
  for (const [name, value] of Object.entries(Errno)) if (value === errno) return name;
  return 'other';
}
