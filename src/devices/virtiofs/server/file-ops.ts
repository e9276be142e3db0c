// Ops on open files: OPEN, CREATE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK,
// COPY_FILE_RANGE. Data moves with fs.readv/fs.writev on the handle's fd (pread/pwrite on libuv's
// threadpool, off the event loop): READ reads straight into the reply descriptors after the out
// header, WRITE writes the request's data descriptors; neither copies in JavaScript.
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import * as cfs from '../../../vmm/confined-fs.js';
import { fallocate as fallocateAsync } from '../../../vmm/file-io.js';
import { SyscallError } from '../../../vmm/errors.js';
import { FUSE_CREATE_OUT, FUSE_FSYNC_FDATASYNC, FUSE_LSEEK_OUT, FUSE_OPEN_OUT, FUSE_WRITE_OUT } from '../fuse/index.js';
import { entryOut } from './attr.js';
import { mustWrite, offsetOf, OK, struct, type Body, type OpContext, type Reply } from './context.js';
import { hold, holdCreated, needRoom, parentOf, type Held } from './entry-ops.js';
import { Errno, FsError } from './errors.js';
import type { OpenHandle } from './handle-table.js';
import { ReplyTooSmall } from './reply-views.js';

const O_ACCMODE = 3;
const { O_RDONLY, O_APPEND, O_TRUNC, O_NONBLOCK, O_DSYNC, O_SYNC, O_CREAT, O_EXCL } = fs.constants;
/** The open flags passed on to the host; O_DIRECT and O_NOATIME are dropped, as virtiofsd does by default. */
const PASSED_FLAGS = O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_DSYNC | O_SYNC;
/** The most one COPY_FILE_RANGE copies: it runs on the event loop (a short count is valid; callers loop). */
const MAX_COPY = 16 << 20;

function readv(fd: number, views: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.readv(fd, views, position, (e, n) => (e ? reject(e) : resolve(n))));
}

function writev(fd: number, views: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.writev(fd, views, position, (e, n) => (e ? reject(e) : resolve(n))));
}
const fsyncFd = promisify(fs.fsync);
const fdatasync = promisify(fs.fdatasync);

function writes(flags: number): boolean {
  return (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0;
}

/** Runs `fn` with file handle `fh` held, so a RELEASE cannot close its fd meanwhile. */
export async function withHandle<T>(ctx: OpContext, fh: bigint, dir: boolean, fn: (h: OpenHandle) => Promise<T> | T): Promise<T> {
  const h = ctx.handles.acquire(fh, dir);
  try {
    return await fn(h);
  } finally {
    ctx.handles.done(h);
  }
}

export function open(ctx: OpContext, b: Body<'open'>): Reply {
  if (writes(b.flags)) mustWrite(ctx, 'OPEN for writing');
  const inode = ctx.inodes.get(ctx.header.nodeid);
  const fd = cfs.openFile(inode.fd, b.flags & PASSED_FLAGS);
  return struct(FUSE_OPEN_OUT, { fh: ctx.handles.open(fd, inode.nodeid, false), openFlags: 0 });
}

export function create(ctx: OpContext, b: Body<'create'>): Reply {
  mustWrite(ctx, 'CREATE');
  const parent = parentOf(ctx);
  needRoom(ctx);
  const flags = b.flags & PASSED_FLAGS;
  let made = true;
  let c: cfs.CreatedFile;
  try {
    c = cfs.createAt(parent.fd, b.name, flags | O_CREAT | O_EXCL, b.mode & 0o777);
  } catch (e) {
    // Without O_EXCL an existing file is opened, not made: it keeps its owner and mode.
    if ((b.flags & O_EXCL) !== 0 || !(e instanceof SyscallError) || e.errno !== Errno.EEXIST) throw e;
    made = false;
    c = cfs.createAt(parent.fd, b.name, flags | O_CREAT, 0);
  }
  const io = new cfs.FdHandle(c.ioFd);
  let held: Held;
  try {
    held = made ? holdCreated(ctx, parent, b.name, c, b.mode) : hold(ctx, c);
  } catch (e) {
    io.dispose();
    throw e;
  }
  const fh = ctx.handles.open(c.ioFd, held.inode.nodeid, false);
  return struct(FUSE_CREATE_OUT, { entry: entryOut(held.inode.nodeid, held.stat, ctx.timeoutSec), open: { fh, openFlags: 0 } });
}

export async function read(ctx: OpContext, b: Body<'read'>): Promise<Reply> {
  if (b.size > ctx.out.bodyCapacity) throw new ReplyTooSmall(`READ of ${b.size} bytes into ${ctx.out.bodyCapacity} bytes of reply descriptors`);
  const position = offsetOf(b.offset);
  return withHandle(ctx, b.fh, false, async (h) => {
    const views = ctx.out.bodyViews(b.size);
    const n = views.length === 0 ? 0 : await readv(h.fd, views, position);
    ctx.io.bytesRead += n;
    return { filled: n };
  });
}

export async function write(ctx: OpContext, b: Body<'write'>): Promise<Reply> {
  mustWrite(ctx, 'WRITE');
  const position = offsetOf(b.offset);
  return withHandle(ctx, b.fh, false, async (h) => {
    const n = b.data.length === 0 ? 0 : await writev(h.fd, b.data as Uint8Array[], position);
    ctx.io.bytesWritten += n;
    return struct(FUSE_WRITE_OUT, { size: n });
  });
}

export function flush(ctx: OpContext, b: Body<'flush'>): Promise<Reply> {
  // No remote POSIX locks are kept, so there is nothing to drop at close(): check the fh only.
  return withHandle(ctx, b.fh, false, () => OK);
}

export function release(ctx: OpContext, b: Body<'release' | 'releasedir'>): Reply {
  ctx.handles.release(b.fh, b.kind === 'releasedir');
  return OK;
}

export function fsync(ctx: OpContext, b: Body<'fsync' | 'fsyncdir'>): Promise<Reply> {
  const dataOnly = (b.fsyncFlags & FUSE_FSYNC_FDATASYNC) !== 0;
  return withHandle(ctx, b.fh, b.kind === 'fsyncdir', async (h) => {
    await (dataOnly ? fdatasync(h.fd) : fsyncFd(h.fd));
    return OK;
  });
}

export function fallocate(ctx: OpContext, b: Body<'fallocate'>): Promise<Reply> {
  mustWrite(ctx, 'FALLOCATE');
  return withHandle(ctx, b.fh, false, async (h) => {
    await fallocateAsync(h.fd, b.mode, offsetOf(b.offset), offsetOf(b.length));
    return OK;
  });
}

export function lseek(ctx: OpContext, b: Body<'lseek'>): Promise<Reply> {
  return withHandle(ctx, b.fh, false, (h) => struct(FUSE_LSEEK_OUT, { offset: BigInt.asUintN(64, cfs.lseek(h.fd, b.offset, b.whence)) }));
}

export function copyFileRange(ctx: OpContext, b: Body<'copyFileRange'>): Promise<Reply> {
  mustWrite(ctx, 'COPY_FILE_RANGE');
  if (b.flags !== 0n) throw new FsError(Errno.EINVAL, `COPY_FILE_RANGE flags ${b.flags}: none are defined`);
  ctx.inodes.get(b.nodeidOut);
  const length = Number(b.len > BigInt(MAX_COPY) ? BigInt(MAX_COPY) : b.len);
  return withHandle(ctx, b.fhIn, false, (src) =>
    withHandle(ctx, b.fhOut, false, (dst) => {
      const n = cfs.copyFileRange(src.fd, offsetOf(b.offIn), dst.fd, offsetOf(b.offOut), length);
      ctx.io.bytesWritten += n;
      return struct(FUSE_WRITE_OUT, { size: n });
    }),
  );
}
