// FUSE node IDs and the O_PATH handles behind them. Node ID 1 (FUSE_ROOT_ID) is the share root,
// pinned for the session. Every other node ID stands for one host inode, keyed by (dev, ino,
// mntId), so a second LOOKUP of the same inode (another name, a hard link) returns the same node
// ID; node IDs are never reused within a server's life, so generation stays 0 (as virtiofsd).
// Each reply that hands the guest an entry adds one to the node's lookup count; FORGET and
// BATCH_FORGET subtract (fuse.h "Inode lookup counts"); at 0 the handle is closed.
//
// The table is bounded: each node holds one fd, and a guest that never forgets must not exhaust
// the VMM's RLIMIT_NOFILE. At the bound a new inode is refused with ENFILE (the guest's lookup,
// create or mkdir fails with "Too many open files in system"; inodes it already holds keep
// working, and its own inode cache eviction — FORGET — makes room again). virtiofsd has no bound.
// Unknown or forgotten node IDs answer EBADF, as virtiofsd does for an inode it does not hold.
import { readFileSync } from 'node:fs';
import { FdHandle, type InodeStat } from '../../../vmm/confined-fs.js';
import { FUSE_ROOT_ID } from '../fuse/index.js';
import { Errno, FsError } from './errors.js';

/** One inode the guest holds a lookup count on. */
export interface Inode {
  readonly nodeid: bigint;
  /** The O_PATH handle; valid while the node is in the table. */
  readonly fd: number;
  readonly key: string;
  lookups: bigint;
}

/** The default bound when RLIMIT_NOFILE cannot be read. */
export const DEFAULT_MAX_INODES = 65_536;
/** fds kept for everything else the VMM opens (open files, disks, sockets, eventfds). */
export const FD_RESERVE = 1_024;

/**
 * The default inode bound: RLIMIT_NOFILE's soft limit (from /proc/self/limits) minus FD_RESERVE,
 * capped at DEFAULT_MAX_INODES and at least 256.
 */
export function defaultMaxInodes(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s+/)[3]);
    if (Number.isInteger(soft) && soft > 0) return Math.max(256, Math.min(DEFAULT_MAX_INODES, soft - FD_RESERVE));
  } catch {
    // no /proc: fall back to the fixed bound
  }
  return DEFAULT_MAX_INODES;
}

function keyOf(stat: InodeStat): string {
  return `${stat.dev}:${stat.ino}:${stat.mntId}`;
}

export class InodeTable {
  private readonly byId = new Map<bigint, Inode>();
  private readonly byKey = new Map<string, Inode>();
  private readonly handles = new Map<bigint, FdHandle>();
  private nextId = FUSE_ROOT_ID + 1n;
  readonly root: Inode;

  constructor(
    rootFd: number,
    rootStat: InodeStat,
    /** The most inodes held besides the root. */
    readonly maxInodes: number,
  ) {
    this.root = this.insert(FUSE_ROOT_ID, rootFd, keyOf(rootStat));
  }

  private insert(nodeid: bigint, fd: number, key: string): Inode {
    const inode: Inode = { nodeid, fd, key, lookups: 0n };
    this.byId.set(nodeid, inode);
    this.byKey.set(key, inode);
    this.handles.set(nodeid, new FdHandle(fd));
    return inode;
  }

  /** Inodes held besides the root. */
  get size(): number {
    return this.byId.size - 1;
  }

  /** Whether one more inode may be added. */
  get hasRoom(): boolean {
    return this.size < this.maxInodes;
  }

  /** The node `nodeid` names; EBADF when the guest holds no such node. */
  get(nodeid: bigint): Inode {
    const inode = this.byId.get(nodeid);
    if (!inode) throw new FsError(Errno.EBADF, `node ID ${nodeid} is not held (never looked up, or forgotten)`);
    return inode;
  }

  /**
   * Counts one lookup of the inode `fd` refers to, taking ownership of `fd` (closed at once
   * when the inode is already held). ENFILE, with `fd` closed, when the table is full.
   */
  ref(fd: number, stat: InodeStat): Inode {
    const key = keyOf(stat);
    const held = this.byKey.get(key);
    if (held) {
      new FdHandle(fd).dispose();
      if (held !== this.root) held.lookups++;
      return held;
    }
    if (!this.hasRoom) {
      new FdHandle(fd).dispose();
      throw new FsError(Errno.ENFILE, `the share holds ${this.size} inodes, its bound: forget some first`);
    }
    const inode = this.insert(this.nextId++, fd, key);
    inode.lookups = 1n;
    return inode;
  }

  /** Drops `n` lookups of `nodeid`; closes its handle at 0. Unknown nodes and the root are ignored. */
  forget(nodeid: bigint, n: bigint): void {
    const inode = this.byId.get(nodeid);
    if (!inode || inode === this.root) return;
    inode.lookups -= n;
    if (inode.lookups <= 0n) this.drop(inode);
  }

  private drop(inode: Inode): void {
    this.byId.delete(inode.nodeid);
    this.byKey.delete(inode.key);
    this.handles.get(inode.nodeid)?.dispose();
    this.handles.delete(inode.nodeid);
  }

  /** Drops every inode except the root. */
  clear(): void {
    for (const inode of [...this.byId.values()]) if (inode !== this.root) this.drop(inode);
  }

  /** Drops every inode, the root too. */
  dispose(): void {
    this.clear();
    this.drop(this.root);
  }
}
