// OPENDIR, READDIR and READDIRPLUS (RELEASEDIR and FSYNCDIR share file-ops' code). A directory
// handle is an fd opened O_DIRECTORY; each READDIR seeks to the request's offset, which is the
// d_off cookie of the last entry the guest saw (0 at the start), and reads one getdents64 batch,
// so the guest may rewind or read the same handle from several places. READDIRPLUS looks each
// entry up and counts a lookup for it, except '.' and '..' (nodeid 0: the kernel makes no entry).
import * as fs from 'node:fs';
import * as cfs from '../../../vmm/confined-fs.js';
import { direntplusSize, DirentPacker, FUSE_OPEN_OUT } from '../fuse/index.js';
import { entryOut, noEntry } from './attr.js';
import { struct, type Body, type OpContext, type Reply } from './context.js';
import { hold } from './entry-ops.js';
import { Errno, FsError } from './errors.js';
import { withHandle } from './file-ops.js';
import { ReplyTooSmall } from './reply-views.js';

const MAX_BATCH = 1 << 20;
const MIN_BATCH = 4096;

export function opendir(ctx: OpContext): Reply {
  const inode = ctx.inodes.get(ctx.header.nodeid);
  const fd = cfs.openFile(inode.fd, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  return struct(FUSE_OPEN_OUT, { fh: ctx.handles.open(fd, inode.nodeid, true), openFlags: 0 });
}

function isDotOrDotDot(name: Uint8Array): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}

/** One getdents64 batch from `cookie` on; the buffer is the request's size, within getdents' limits. */
function batch(fd: number, cookie: bigint, size: number): cfs.DirEntry[] {
  cfs.seekDir(fd, cookie);
  return cfs.readDir(fd, Math.min(Math.max(size, MIN_BATCH), MAX_BATCH));
}

/** An empty body means the end of the directory, so a first entry that does not fit is an error. */
function finish(packer: { count: number; body(): Uint8Array }, entries: number): Reply {
  if (packer.count === 0 && entries > 0) throw new FsError(Errno.EINVAL, 'READDIR buffer too small for one entry');
  return { body: packer.body() };
}

export function readdir(ctx: OpContext, b: Body<'readdir'>): Promise<Reply> {
  if (b.size > ctx.out.bodyCapacity) throw new ReplyTooSmall(`READDIR of ${b.size} bytes into ${ctx.out.bodyCapacity}`);
  return withHandle(ctx, b.fh, true, (h) => {
    const entries = batch(h.fd, b.offset, b.size);
    const packer = DirentPacker.readdir(new Uint8Array(b.size));
    for (const e of entries) if (!packer.add(e)) break;
    return finish(packer, entries.length);
  });
}

export function readdirplus(ctx: OpContext, b: Body<'readdirplus'>): Promise<Reply> {
  if (b.size > ctx.out.bodyCapacity) throw new ReplyTooSmall(`READDIRPLUS of ${b.size} bytes into ${ctx.out.bodyCapacity}`);
  return withHandle(ctx, b.fh, true, (h) => {
    const dir = ctx.inodes.get(h.nodeid);
    const entries = batch(h.fd, b.offset, b.size);
    const packer = DirentPacker.readdirplus(new Uint8Array(b.size));
    for (const e of entries) {
      // Check the fit first: a lookup counted for an entry the guest never sees would leak.
      if (packer.size + direntplusSize(e.name.byteLength) > packer.limit) break;
      let entry = noEntry(undefined, e.ino, e.type);
      if (!isDotOrDotDot(e.name)) {
        try {
          const held = hold(ctx, cfs.lookupAt(dir.fd, e.name));
          entry = entryOut(held.inode.nodeid, held.stat, ctx.timeoutSec);
        } catch {
          // Gone since getdents, or the inode bound reached: the name without an entry.
        }
      }
      packer.add({ ...e, entry });
    }
    return finish(packer, entries.length);
  });
}
