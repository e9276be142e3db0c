// GETATTR, SETATTR, STATFS and ACCESS. Attributes are read from the inode's O_PATH handle
// (statx, never following); SETATTR applies mode, owner, size and times in that order, as
// virtiofsd does, and answers the attributes after all of them.
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import * as cfs from '../../../vmm/confined-fs.js';
import {
  FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID,
  FUSE_ATTR_OUT, FUSE_STATFS_OUT,
} from '../fuse/index.js';
import { attrOut } from './attr.js';
import { mustWrite, offsetOf, struct, type Body, type OpContext, type Reply } from './context.js';
import { S_IFDIR, S_IFMT, safeMode } from './credentials.js';
import { Errno } from './errors.js';

const ftruncate = promisify(fs.ftruncate);

export function getattr(ctx: OpContext): Reply {
  const st = cfs.statAt(ctx.inodes.get(ctx.header.nodeid).fd);
  return struct(FUSE_ATTR_OUT, attrOut(st, ctx.timeoutSec));
}

function timeOf(valid: number, set: number, now: number, sec: bigint, nsec: number): cfs.TimeSpec {
  if (valid & now) return 'now';
  if (valid & set) return { sec: BigInt.asIntN(64, sec), nsec };
  return 'omit';
}

export async function setattr(ctx: OpContext, b: Body<'setattr'>): Promise<Reply> {
  mustWrite(ctx, 'SETATTR');
  const inode = ctx.inodes.get(ctx.header.nodeid);
  const v = b.valid;
  if (v & FATTR_MODE) {
    const st = cfs.statAt(inode.fd);
    cfs.chmodInode(inode.fd, safeMode(b.mode, (st.mode & S_IFMT) === S_IFDIR, ctx.header, st));
  }
  if (v & (FATTR_UID | FATTR_GID)) {
    cfs.chownInode(inode.fd, v & FATTR_UID ? b.uid : cfs.ID_UNCHANGED, v & FATTR_GID ? b.gid : cfs.ID_UNCHANGED);
  }
  if (v & FATTR_SIZE) {
    if (v & FATTR_FH) {
      // ftruncate on the guest's open file: works where the caller opened for writing even if
      // the mode no longer allows it (open(O_CREAT, 0444) then ftruncate), as on a local file.
      const h = ctx.handles.acquire(b.fh, false);
      try {
        await ftruncate(h.fd, offsetOf(b.size));
      } finally {
        ctx.handles.done(h);
      }
    } else cfs.truncateInode(inode.fd, b.size);
  }
  if (v & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
    cfs.utimensInode(
      inode.fd,
      timeOf(v, FATTR_ATIME, FATTR_ATIME_NOW, b.atime, b.atimensec),
      timeOf(v, FATTR_MTIME, FATTR_MTIME_NOW, b.mtime, b.mtimensec),
    );
  }
  return struct(FUSE_ATTR_OUT, attrOut(cfs.statAt(inode.fd), ctx.timeoutSec));
}

export function statfs(ctx: OpContext): Reply {
  const s = cfs.statfsFd(ctx.inodes.get(ctx.header.nodeid).fd);
  return struct(FUSE_STATFS_OUT, {
    st: { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: s.namelen, frsize: s.frsize },
  });
}

/**
 * ACCESS answers ENOSYS, as virtiofsd does without its own permission checks: virtio_fs mounts
 * with default_permissions, so the guest kernel checks mode bits itself and, on ENOSYS, stops
 * asking (fc->no_access) and treats access() as allowed by the server.
 */
export function access(): Reply {
  return { errno: Errno.ENOSYS };
}
