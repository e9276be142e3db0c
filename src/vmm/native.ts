// The one module that loads the C++ addon. Everything else in src/vmm wraps what it exports;
// devices and boot code never import it (enforced by the lint rule in eslint.config.js).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';

export interface NativeGuestMapping {
  readonly buffer: ArrayBuffer;
  readonly size: number;
  readonly id: number;
  close(): void;
}

export interface NativeRunResult {
  elapsedNs: number;
  exits: number;
  reason: number;
  checksum: number;
}

export interface NativeVcpu {
  readonly fd: number;
  readonly id: number;
  readonly index: number;
  readonly runArea: ArrayBuffer;
  run(): number;
  runNative(maxExits: number, stopPort?: number): NativeRunResult;
  kick(): void;
  clearKick(): void;
  close(): void;
}

/** The event bits of FdWatcher (addon/fd_watcher.cc): UV_READABLE, UV_WRITABLE, UV_DISCONNECT. */
export const FD_READABLE = 1;
export const FD_WRITABLE = 2;
export const FD_DISCONNECT = 4;

export interface NativeFdWatcher {
  /** Replaces the watched events (a mask of FD_*); 0 pauses without closing. */
  setEvents(events: number): void;
  /** Idempotent, and safe inside the callback. Never closes the fd. */
  close(): void;
  /** Whether a watching FdWatcher holds the event loop open (it does at first). */
  ref(): void;
  unref(): void;
}

export interface NativeIoRing {
  readv(fd: number, buffers: readonly Uint8Array[], position: number, tag: number): void;
  writev(fd: number, buffers: readonly Uint8Array[], position: number, tag: number): void;
  fdatasync(fd: number, tag: number): void;
  close(): void;
}

export interface NativeVcpuThread {
  stop(): void;
}

/**
 * The stat of an inode as addon/fs_at.cc reports it (statx(2), never following a symlink).
 * 64-bit values that can pass 2^53 are bigint; times are seconds (signed) and nanoseconds.
 */
export interface NativeInodeStat {
  /** Inode number: with `dev`, what keys an inode (a hard link has the same pair). */
  ino: bigint;
  /** The file system's device, makedev(major, minor). */
  dev: bigint;
  /** The mount's id (STATX_MNT_ID; 0n where the kernel does not say): tells submounts apart. */
  mntId: bigint;
  /** File type and permission bits (S_IFMT | 07777). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** The device a character or block device node stands for, makedev(major, minor). */
  rdev: bigint;
  size: bigint;
  /** 512-byte blocks allocated. */
  blocks: bigint;
  blksize: number;
  atimeSec: bigint;
  atimeNsec: number;
  mtimeSec: bigint;
  mtimeNsec: number;
  ctimeSec: bigint;
  ctimeNsec: number;
}

/** addon/fs_at.cc, wrapped (and documented) by confined-fs.ts. */
export interface NativeFsAt {
  openRoot(path: string): number;
  lookupAt(dirfd: number, name: Uint8Array, sameMount: boolean): { fd: number; stat: NativeInodeStat };
  statAt(fd: number): NativeInodeStat;
  statfsFd(fd: number): {
    type: bigint;
    bsize: number;
    frsize: number;
    blocks: bigint;
    bfree: bigint;
    bavail: bigint;
    files: bigint;
    ffree: bigint;
    namelen: number;
    flags: number;
  };
  openFile(fd: number, flags: number): number;
  createAt(dirfd: number, name: Uint8Array, flags: number, mode: number): { fd: number; ioFd: number; stat: NativeInodeStat };
  mkdirAt(dirfd: number, name: Uint8Array, mode: number): { fd: number; stat: NativeInodeStat };
  mknodAt(dirfd: number, name: Uint8Array, mode: number, rdev: number): { fd: number; stat: NativeInodeStat };
  symlinkAt(target: Uint8Array, dirfd: number, name: Uint8Array): { fd: number; stat: NativeInodeStat };
  linkAt(fd: number, newdirfd: number, newname: Uint8Array): { fd: number; stat: NativeInodeStat };
  unlinkAt(dirfd: number, name: Uint8Array, isDir: boolean): void;
  renameAt2(olddirfd: number, oldname: Uint8Array, newdirfd: number, newname: Uint8Array, flags: number): void;
  readlinkAt(fd: number): Uint8Array;
  chmodInode(fd: number, mode: number): void;
  chownInode(fd: number, uid: number, gid: number): void;
  utimensInode(fd: number, atimeSec: bigint, atimeNsec: number, mtimeSec: bigint, mtimeNsec: number): void;
  truncateInode(fd: number, size: number | bigint): void;
  readDir(dirfd: number, budget: number): { ino: bigint; off: bigint; type: number; name: Uint8Array }[];
  seekDir(dirfd: number, cookie: bigint): void;
  getXattr(fd: number, name: Uint8Array, size: number): Uint8Array | number;
  setXattr(fd: number, name: Uint8Array, value: Uint8Array, flags: number): void;
  listXattr(fd: number, size: number): Uint8Array | number;
  removeXattr(fd: number, name: Uint8Array): void;
  lseek(fd: number, offset: number | bigint, whence: number): bigint;
  copyFileRange(fdIn: number, offIn: number | bigint, fdOut: number, offOut: number | bigint, length: number, flags: number): number;
  fsync(fd: number, dataOnly: boolean): void;
  getLock(fd: number, type: number, start: number | bigint, length: number | bigint): { type: number; start: bigint; length: bigint; pid: number } | null;
  setLock(fd: number, type: number, start: number | bigint, length: number | bigint): boolean;
}

export interface NativeAddon {
  ioctl(fd: number, name: string, arg?: number | Uint8Array): number;
  structSizes(): Record<string, number>;
  constants: Record<string, number>;
  openDevice(path: string): number;
  closeFd(fd: number): void;
  setUserMemoryRegion(
    vmFd: number,
    slot: number,
    flags: number,
    guestPhysAddr: bigint,
    mapping: NativeGuestMapping,
    offset: number,
    size: number,
  ): void;
  GuestMapping: { new (size: number): NativeGuestMapping; attach(id: number): NativeGuestMapping };
  Vcpu: { create(vmFd: number, index: number, mmapSize: number): NativeVcpu; attach(id: number): NativeVcpu };
  eventfdCreate(nonBlocking?: boolean): number;
  eventfdRead(fd: number): bigint;
  eventfdWrite(fd: number, value?: number | bigint): void;
  /**
   * Watches fd on this thread's event loop for `events` (FD_* mask; 0 starts paused). With
   * drainEventfd, fd is a non-blocking eventfd watched for FD_READABLE only: the addon drains it
   * and calls back (undefined, count), never with 0. Without, it calls back (undefined, ready),
   * ready being the FD_* events fd is ready for. A libuv error calls back (err), and watching stops.
   */
  FdWatcher: new (fd: number, events: number, callback: (err?: Error, value?: number) => void, drainEventfd: boolean) => NativeFdWatcher;
  preadNoWait(fd: number, buffers: readonly Uint8Array[], position: number): number;
  fallocateAsync(fd: number, mode: number, offset: number, length: number, callback: (err?: Error) => void): void;
  dioAlignment(fd: number): { memory: number; offset: number } | null;
  /** null when an IoRing can be made on this host and build, else why not. */
  ioRingSupport(): string | null;
  /** Absent when the addon was built without liburing. */
  IoRing?: new (entries: number, completions: Int32Array, onComplete: (err?: Error, count?: number) => void) => NativeIoRing;
  fsAt: NativeFsAt;
  VcpuThread: new (vcpu: NativeVcpu, onExit: (reason: number, errno?: number) => boolean | void) => NativeVcpuThread;
}

/** Raised when the addon was never built (npm ci runs node-gyp; a failed build lands here). */
export class AddonNotBuiltError extends Error {
  constructor(readonly searched: string[]) {
    super(`the tsvmm addon is not built (looked for ${searched.join(', ')}); run \`npm ci\` or \`npm run install\``);
    this.name = 'AddonNotBuiltError';
  }
}

let cached: NativeAddon | undefined;

/** Loads the addon once per thread (each worker_thread gets its own instance). */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = [join(root, 'build', 'Release', 'tsvmm.node'), join(root, 'build', 'Debug', 'tsvmm.node')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new AddonNotBuiltError(candidates);
  const require = createRequire(import.meta.url);
  cached = require(found) as NativeAddon;
  return cached;
}
