// Confined, fd-relative file-system calls for the virtio-fs passthrough server (addon/fs_at.cc).
// Every call acts relative to a file descriptor the server holds — an O_PATH handle per inode —
// so a guest that names files by (parent inode, name) cannot reach outside the shared directory:
// lookups are openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS and
// O_PATH | O_NOFOLLOW (a symlink comes back as itself), names are single components checked here
// and again in C++ before any system call, and what Linux offers only by path goes through the
// fd's /proc/self/fd magic link, which leads to exactly the inode held. The one absolute path is
// the share root (openRoot). Node's fs is path based and cannot promise any of this.
//
// What the confinement does not cover: a directory the HOST moves out of the share while the
// server holds its handle keeps working through that handle (everything stays beneath it, never
// above it); a hard link the host made inside the share to an outside file is shared content.
//
// All calls are synchronous; fsync, copyFileRange, truncateInode and readDir with
// a large budget can block on a slow disk and belong on a worker thread.
import { native as addon } from './native.js';
import type { NativeFsAt, NativeInodeStat } from './native.js';
import { DisposedError, SyscallError, mapNativeError } from './errors.js';

/** See NativeInodeStat: statx(2) of an inode, bigint where a value can pass 2^53. */
export type InodeStat = NativeInodeStat;

/** An O_PATH handle and the stat of its inode, as a lookup or a creation returns them. */
export interface Entry {
  /** O_PATH | O_CLOEXEC handle; the caller owns it (close it, or wrap it in an FdHandle). */
  fd: number;
  stat: InodeStat;
}

/** What createAt returns: an fd for I/O and an O_PATH handle of the same inode, both owned. */
export interface CreatedFile extends Entry {
  /** Open with the flags asked for (plus O_CLOEXEC), for reads and writes. */
  ioFd: number;
}

/** One getdents64(2) record. */
export interface DirEntry {
  ino: bigint;
  /** The cookie seekDir takes to resume after this entry (opaque; ext4 gives 63-bit hashes). */
  off: bigint;
  /** DT_* (DT_DIR 4, DT_REG 8, DT_LNK 10, DT_UNKNOWN 0 ...). */
  type: number;
  /** The name's raw bytes (not necessarily UTF-8). */
  name: Uint8Array;
}

export type FsStat = ReturnType<NativeFsAt['statfsFd']>;

/** A conflicting OFD lock (fcntl(2) F_OFD_GETLK); pid is -1 for an OFD lock. */
export interface LockConflict {
  type: number;
  start: bigint;
  length: bigint;
  pid: number;
}

/** A time for utimensInode: seconds and nanoseconds, or the current time, or unchanged. */
export type TimeSpec = { sec: bigint; nsec: number } | 'now' | 'omit';

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const SEEK_SET = 0;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
/** chownInode: leave this id as it is ((uid_t)-1). */
export const ID_UNCHANGED = 0xffffffff;
const UTIME_NOW = (1 << 30) - 1;
const UTIME_OMIT = (1 << 30) - 2;
const NAME_MAX = 255;
const EINVAL = 22;
const ENAMETOOLONG = 36;

/**
 * A name the guest gave is not one safe path component: empty, ".", "..", containing '/' or NUL
 * (errno EINVAL, virtiofsd's answer), or longer than NAME_MAX (ENAMETOOLONG). Nothing was called.
 */
export class UnsafeNameError extends SyscallError {
  constructor(message: string, errno: number) {
    super(message, 'checkName', errno, errno === ENAMETOOLONG ? 'ENAMETOOLONG' : 'EINVAL');
    this.name = 'UnsafeNameError';
  }
}

/** The reason `name` is not one safe path component, or undefined when it is. */
export function unsafeNameReason(name: Uint8Array): { why: string; errno: number } | undefined {
  if (!(name instanceof Uint8Array)) return { why: 'is not a Uint8Array', errno: EINVAL };
  if (name.length === 0) return { why: 'is empty', errno: EINVAL };
  if (name.length === 1 && name[0] === 0x2e) return { why: "is '.'", errno: EINVAL };
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return { why: "is '..'", errno: EINVAL };
  if (name.includes(0x2f)) return { why: "contains '/'", errno: EINVAL };
  if (name.includes(0)) return { why: 'contains NUL', errno: EINVAL };
  if (name.length > NAME_MAX) return { why: `is ${name.length} bytes, NAME_MAX is ${NAME_MAX}`, errno: ENAMETOOLONG };
  return undefined;
}

/** Throws UnsafeNameError unless `name` is one safe path component. */
export function checkName(name: Uint8Array, what = 'name'): void {
  const bad = unsafeNameReason(name);
  if (bad) throw new UnsafeNameError(`${what} ${bad.why}: a file name must be one path component`, bad.errno);
}

/** Runs an addon call; its errors become SyscallError, its name refusals UnsafeNameError. */
function call<T>(fn: (fs: NativeFsAt) => T): T {
  try {
    return fn(addon().fsAt);
  } catch (e) {
    const mapped = mapNativeError(e);
    if (mapped instanceof SyscallError && mapped.syscall === 'checkName') throw new UnsafeNameError(mapped.message, mapped.errno);
    throw mapped;
  }
}

/**
 * Opens the share root: an O_PATH | O_DIRECTORY | O_CLOEXEC fd, the only absolute path used
 * (symlinks in `path` are followed: the host's operator named it). Also opens /proc/self/fd once
 * for the process (kept open until exit).
 */
export function openRoot(path: string): number {
  return call((fs) => fs.openRoot(path));
}

/**
 * Looks up one name in `dirfd` without following anything: a symlink comes back as a handle on
 * the link itself. With `sameMount`, a mount point inside the share is refused with EXDEV
 * (RESOLVE_NO_XDEV); by default submounts are crossed (their `stat.mntId` differs).
 */
export function lookupAt(dirfd: number, name: Uint8Array, opts: { sameMount?: boolean } = {}): Entry {
  checkName(name);
  return call((fs) => fs.lookupAt(dirfd, name, opts.sameMount ?? false));
}

/** statx(2) of the inode `fd` refers to (an O_PATH handle or an open fd), never following. */
export function statAt(fd: number): InodeStat {
  return call((fs) => fs.statAt(fd));
}

/** fstatfs(2) of the file system `fd` is on. */
export function statfsFd(fd: number): FsStat {
  return call((fs) => fs.statfsFd(fd));
}

/**
 * An fd for I/O on the inode an O_PATH handle refers to, re-opened through its /proc/self/fd
 * link (no name is resolved, so a rename or a swapped symlink cannot redirect it). `flags`: the
 * access mode with O_APPEND, O_TRUNC, O_DIRECT, O_SYNC, O_DSYNC, O_NOATIME, O_NONBLOCK or
 * O_DIRECTORY; anything else (O_CREAT, O_EXCL, O_PATH, O_NOFOLLOW, O_TMPFILE ...) is refused with
 * EINVAL. A symlink handle gets ELOOP; only regular files and directories open (others ENXIO).
 */
export function openFile(fd: number, flags: number): number {
  return call((fs) => fs.openFile(fd, flags));
}

/**
 * Creates (or, without O_EXCL in `flags`, opens an existing regular file) `name` in `dirfd`.
 * `flags` as openFile plus O_CREAT/O_EXCL; `mode`: permission bits (07777), the umask applies.
 * An existing symlink is refused with ELOOP, a directory EISDIR, anything else ENXIO.
 */
export function createAt(dirfd: number, name: Uint8Array, flags: number, mode: number): CreatedFile {
  checkName(name);
  return call((fs) => fs.createAt(dirfd, name, flags, mode));
}

/**
 * mkdirat(2), then a confined lookup of the new directory. A concurrent rename between the two
 * could hand back another entry of `dirfd`; never one outside it.
 */
export function mkdirAt(dirfd: number, name: Uint8Array, mode: number): Entry {
  checkName(name);
  return call((fs) => fs.mkdirAt(dirfd, name, mode));
}

/**
 * mknodat(2) of a regular file, FIFO or socket (`mode` = S_IFREG/S_IFIFO/S_IFSOCK | permission
 * bits), then a confined lookup. Character and block devices are refused with EPERM.
 */
export function mknodAt(dirfd: number, name: Uint8Array, mode: number): Entry {
  checkName(name);
  return call((fs) => fs.mknodAt(dirfd, name, mode, 0));
}

/** symlinkat(2): `target` is stored verbatim and never resolved by this module. */
export function symlinkAt(target: Uint8Array, dirfd: number, name: Uint8Array): Entry {
  checkName(name);
  return call((fs) => fs.symlinkAt(target, dirfd, name));
}

/**
 * A hard link named `newname` in `newdirfd` to the inode `fd` holds (linkat(2) of its
 * /proc/self/fd link with AT_SYMLINK_FOLLOW, which needs no CAP_DAC_READ_SEARCH, unlike
 * AT_EMPTY_PATH on Linux 6.1; a symlink handle links the symlink itself). Only held inodes can
 * be linked; fs.protected_hardlinks still applies to an unprivileged server.
 */
export function linkAt(fd: number, newdirfd: number, newname: Uint8Array): Entry {
  checkName(newname, 'newname');
  return call((fs) => fs.linkAt(fd, newdirfd, newname));
}

/** unlinkat(2); `dir` removes an empty directory (AT_REMOVEDIR). */
export function unlinkAt(dirfd: number, name: Uint8Array, opts: { dir?: boolean } = {}): void {
  checkName(name);
  call((fs) => fs.unlinkAt(dirfd, name, opts.dir ?? false));
}

/** renameat2(2) with flags 0, RENAME_NOREPLACE or RENAME_EXCHANGE (others EINVAL). */
export function renameAt2(olddirfd: number, oldname: Uint8Array, newdirfd: number, newname: Uint8Array, flags = 0): void {
  checkName(oldname, 'oldname');
  checkName(newname, 'newname');
  call((fs) => fs.renameAt2(olddirfd, oldname, newdirfd, newname, flags));
}

/** The target bytes of the symlink an O_PATH handle refers to (readlinkat(fd, "")). */
export function readlinkAt(fd: number): Uint8Array {
  return call((fs) => fs.readlinkAt(fd));
}

/** chmod of the inode `fd` holds; a symlink is refused with EOPNOTSUPP (Linux has no lchmod). */
export function chmodInode(fd: number, mode: number): void {
  call((fs) => fs.chmodInode(fd, mode));
}

/** chown of the inode `fd` holds (a symlink itself, not its target); ID_UNCHANGED keeps an id. */
export function chownInode(fd: number, uid: number = ID_UNCHANGED, gid: number = ID_UNCHANGED): void {
  call((fs) => fs.chownInode(fd, uid, gid));
}

function timeArgs(t: TimeSpec): [bigint, number] {
  if (t === 'now') return [0n, UTIME_NOW];
  if (t === 'omit') return [0n, UTIME_OMIT];
  return [t.sec, t.nsec];
}

/** Sets atime and mtime of the inode `fd` holds (a symlink itself), utimensat(fd, "", AT_EMPTY_PATH). */
export function utimensInode(fd: number, atime: TimeSpec, mtime: TimeSpec): void {
  const [as, an] = timeArgs(atime);
  const [ms, mn] = timeArgs(mtime);
  call((fs) => fs.utimensInode(fd, as, an, ms, mn));
}

/** Truncates the regular file `fd` refers to (an O_PATH handle is re-opened O_WRONLY for it). */
export function truncateInode(fd: number, size: number | bigint): void {
  call((fs) => fs.truncateInode(fd, size));
}

/**
 * One getdents64(2) of `budget` bytes (at most 1 MiB) from an open directory fd (openFile with
 * O_DIRECTORY): [] at the end. "." and ".." are listed as the kernel lists them; the ".." of the
 * share root names the parent's inode number, which no lookup can reach.
 */
export function readDir(dirfd: number, budget = 32768): DirEntry[] {
  return call((fs) => fs.readDir(dirfd, budget));
}

/** Moves an open directory fd to just after the entry whose `off` this is (0n: the start). */
export function seekDir(dirfd: number, cookie: bigint): void {
  call((fs) => fs.seekDir(dirfd, cookie));
}

/**
 * Extended attributes of a regular file or directory. An O_PATH handle is re-opened read-only
 * through /proc/self/fd (f*xattr answer EBADF on O_PATH, and Linux 6.1 has no *xattrat);
 * symlinks and special files are refused with EOPNOTSUPP (Linux refuses their user.* xattrs too).
 */
export function getXattr(fd: number, name: Uint8Array, maxSize: number): Uint8Array {
  if (maxSize === 0) throw new RangeError('getXattr: maxSize 0; use xattrSize for the length');
  return call((fs) => fs.getXattr(fd, name, maxSize)) as Uint8Array;
}

/** The length of an xattr's value (getxattr with size 0). */
export function xattrSize(fd: number, name: Uint8Array): number {
  return call((fs) => fs.getXattr(fd, name, 0)) as number;
}

/** fsetxattr(2); flags 0, XATTR_CREATE or XATTR_REPLACE. */
export function setXattr(fd: number, name: Uint8Array, value: Uint8Array, flags = 0): void {
  call((fs) => fs.setXattr(fd, name, value, flags));
}

/** The raw flistxattr(2) list (NUL-terminated names) in at most maxSize bytes (ERANGE if more). */
export function listXattr(fd: number, maxSize = 65536): Uint8Array {
  if (maxSize === 0) throw new RangeError('listXattr: maxSize 0; use listXattrSize for the length');
  return call((fs) => fs.listXattr(fd, maxSize)) as Uint8Array;
}

/** The length of the xattr name list (flistxattr with size 0). */
export function listXattrSize(fd: number): number {
  return call((fs) => fs.listXattr(fd, 0)) as number;
}

export function removeXattr(fd: number, name: Uint8Array): void {
  call((fs) => fs.removeXattr(fd, name));
}

/** lseek(2); whence SEEK_SET, SEEK_CUR (1), SEEK_END (2), SEEK_DATA or SEEK_HOLE. */
export function lseek(fd: number, offset: number | bigint, whence: number): bigint {
  return call((fs) => fs.lseek(fd, offset, whence));
}

/** copy_file_range(2) between explicit offsets; returns the bytes copied (may be short). */
export function copyFileRange(fdIn: number, offIn: number | bigint, fdOut: number, offOut: number | bigint, length: number): number {
  return call((fs) => fs.copyFileRange(fdIn, offIn, fdOut, offOut, length, 0));
}

/** fsync(2), or fdatasync(2) when dataOnly. */
export function fsync(fd: number, dataOnly = false): void {
  call((fs) => fs.fsync(fd, dataOnly));
}

/**
 * The first OFD lock that would conflict with (type, start, length) on `fd`, or undefined.
 * OFD locks belong to the open file description: the server opens one fd per FUSE lock owner.
 */
export function getLock(fd: number, type: number, start: number | bigint, length: number | bigint): LockConflict | undefined {
  return call((fs) => fs.getLock(fd, type, start, length)) ?? undefined;
}

/**
 * Takes (F_RDLCK/F_WRLCK) or releases (F_UNLCK) an OFD lock without waiting: false on a conflict.
 * There is no waiting form (F_OFD_SETLKW would block the thread): the server retries a SETLKW
 * later or answers that it cannot wait.
 */
export function setLock(fd: number, type: number, start: number | bigint, length: number | bigint): boolean {
  return call((fs) => fs.setLock(fd, type, start, length));
}

/** Owns one fd (an O_PATH handle or an open fd): dispose() closes it once. */
export class FdHandle {
  private value: number;

  constructor(fd: number) {
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`not an fd: ${fd}`);
    this.value = fd;
  }

  get fd(): number {
    if (this.value < 0) throw new DisposedError('FdHandle');
    return this.value;
  }

  get disposed(): boolean {
    return this.value < 0;
  }

  dispose(): void {
    if (this.value >= 0) addon().closeFd(this.value);
    this.value = -1;
  }
}
