// Ops on names and lookup counts: LOOKUP, FORGET, BATCH_FORGET, MKNOD, MKDIR, SYMLINK, LINK,
// UNLINK, RMDIR, RENAME, RENAME2, READLINK. Names go to confined-fs, which refuses '.', '..',
// '/' and NUL (EINVAL) before any system call and resolves beneath the parent's handle only.
import * as cfs from '../../../vmm/confined-fs.js';
import { FUSE_ENTRY_OUT, RENAME_EXCHANGE, RENAME_NOREPLACE } from '../fuse/index.js';
import { entryOut } from './attr.js';
import { struct, mustWrite, OK, type Body, type OpContext, type Reply } from './context.js';
import { adopt } from './credentials.js';
import { Errno, FsError } from './errors.js';
import type { Inode } from './inode-table.js';

const S_IFREG = 0o100000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFLNK = 0o120000;

/** The request's node (the parent directory for name ops). */
export function parentOf(ctx: OpContext): Inode {
  return ctx.inodes.get(ctx.header.nodeid);
}

/** An inode the guest now holds one more lookup on, with the stat its reply carries. */
export interface Held {
  readonly inode: Inode;
  readonly stat: cfs.InodeStat;
}

/** Counts a lookup of `e` (taking its fd). */
export function hold(ctx: OpContext, e: cfs.Entry): Held {
  return { inode: ctx.inodes.ref(e.fd, e.stat), stat: e.stat };
}

export function entryReply(ctx: OpContext, h: Held): Reply {
  return struct(FUSE_ENTRY_OUT, entryOut(h.inode.nodeid, h.stat, ctx.timeoutSec));
}

export function lookup(ctx: OpContext, b: Body<'lookup'>): Reply {
  return entryReply(ctx, hold(ctx, cfs.lookupAt(parentOf(ctx).fd, b.name)));
}

export function forget(ctx: OpContext, b: Body<'forget'>): Reply {
  ctx.inodes.forget(ctx.header.nodeid, b.nlookup);
  return 'none';
}

export function batchForget(ctx: OpContext, b: Body<'batchForget'>): Reply {
  for (const f of b.forgets) ctx.inodes.forget(f.nodeid, f.nlookup);
  return 'none';
}

/** ENFILE before creating anything when the inode table is full (nothing is left half made). */
export function needRoom(ctx: OpContext): void {
  if (!ctx.inodes.hasRoom) throw new FsError(Errno.ENFILE, `the share holds ${ctx.inodes.size} inodes, its bound`);
}

/**
 * Finishes a creation: ownership and mode for the caller, then a lookup count. When that fails
 * the new name is removed again, so a failed request leaves nothing behind.
 */
export function holdCreated(ctx: OpContext, parent: Inode, name: Uint8Array, e: cfs.Entry, mode: number | undefined, dir = false): Held {
  let st: cfs.InodeStat;
  try {
    st = adopt(e.fd, e.stat, mode, ctx.header, ctx.privileged, parent.fd);
  } catch (err) {
    new cfs.FdHandle(e.fd).dispose();
    cfs.unlinkAt(parent.fd, name, { dir });
    throw err;
  }
  return hold(ctx, { fd: e.fd, stat: st });
}

export function mknod(ctx: OpContext, b: Body<'mknod'>): Reply {
  mustWrite(ctx, 'MKNOD');
  const parent = parentOf(ctx);
  const type = b.mode & 0o170000;
  if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK) throw new FsError(Errno.EPERM, `MKNOD of type 0o${type.toString(8)}: only regular files, FIFOs and sockets`);
  needRoom(ctx);
  return entryReply(ctx, holdCreated(ctx, parent, b.name, cfs.mknodAt(parent.fd, b.name, type | (b.mode & 0o777)), b.mode));
}

export function mkdir(ctx: OpContext, b: Body<'mkdir'>): Reply {
  mustWrite(ctx, 'MKDIR');
  const parent = parentOf(ctx);
  needRoom(ctx);
  return entryReply(ctx, holdCreated(ctx, parent, b.name, cfs.mkdirAt(parent.fd, b.name, b.mode & 0o777), b.mode, true));
}

export function symlink(ctx: OpContext, b: Body<'symlink'>): Reply {
  mustWrite(ctx, 'SYMLINK');
  const parent = parentOf(ctx);
  needRoom(ctx);
  return entryReply(ctx, holdCreated(ctx, parent, b.name, cfs.symlinkAt(b.target, parent.fd, b.name), undefined));
}

export function link(ctx: OpContext, b: Body<'link'>): Reply {
  mustWrite(ctx, 'LINK');
  const target = ctx.inodes.get(b.oldnodeid);
  const parent = parentOf(ctx);
  return entryReply(ctx, hold(ctx, cfs.linkAt(target.fd, parent.fd, b.newname)));
}

export function unlink(ctx: OpContext, b: Body<'unlink'>): Reply {
  mustWrite(ctx, 'UNLINK');
  cfs.unlinkAt(parentOf(ctx).fd, b.name);
  return OK;
}

export function rmdir(ctx: OpContext, b: Body<'rmdir'>): Reply {
  mustWrite(ctx, 'RMDIR');
  cfs.unlinkAt(parentOf(ctx).fd, b.name, { dir: true });
  return OK;
}

export function rename(ctx: OpContext, b: Body<'rename' | 'rename2'>): Reply {
  mustWrite(ctx, 'RENAME');
  const flags = b.kind === 'rename2' ? b.flags : 0;
  // RENAME_WHITEOUT needs CAP_MKNOD and exists for overlayfs on the host; the guest gets EINVAL.
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) throw new FsError(Errno.EINVAL, `RENAME2 flags 0x${flags.toString(16)}: only NOREPLACE and EXCHANGE`);
  const from = parentOf(ctx);
  const to = ctx.inodes.get(b.newdir);
  cfs.renameAt2(from.fd, b.oldname, to.fd, b.newname, flags);
  return OK;
}

/** READLINK; on anything but a symlink EINVAL, as readlink(2) says (readlinkat(fd, "") says ENOENT). */
export function readlink(ctx: OpContext): Reply {
  const fd = parentOf(ctx).fd;
  if ((cfs.statAt(fd).mode & 0o170000) !== S_IFLNK) throw new FsError(Errno.EINVAL, 'READLINK of a node that is not a symlink');
  return { body: cfs.readlinkAt(fd) };
}
