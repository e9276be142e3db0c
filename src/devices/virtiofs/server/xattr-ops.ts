// GETXATTR, LISTXATTR, SETXATTR, REMOVEXATTR on the inode's handle. A size of 0 asks for the
// value's (or list's) length alone (fuse_getxattr_out); a larger one gets the bytes, or ERANGE
// from the host when they do not fit. The guest may set and remove only user.* attributes:
// security.capability or trusted.* written by a root VMM would mean something to the HOST
// (file capabilities, overlayfs metadata), which the guest must never control; other namespaces
// answer EOPNOTSUPP, as a file system without them would. Reads are not filtered.
import * as cfs from '../../../vmm/confined-fs.js';
import { FUSE_GETXATTR_OUT } from '../fuse/index.js';
import { mustWrite, OK, struct, type Body, type OpContext, type Reply } from './context.js';
import { Errno, FsError } from './errors.js';

const USER_PREFIX = new TextEncoder().encode('user.');
const XATTR_FLAGS = cfs.XATTR_CREATE | cfs.XATTR_REPLACE;

function settable(name: Uint8Array): void {
  const ok = name.byteLength > USER_PREFIX.byteLength && USER_PREFIX.every((c, i) => name[i] === c);
  if (!ok) throw new FsError(Errno.EOPNOTSUPP, 'only user.* extended attributes may be set or removed');
}

function inodeFd(ctx: OpContext): number {
  return ctx.inodes.get(ctx.header.nodeid).fd;
}

export function getxattr(ctx: OpContext, b: Body<'getxattr'>): Reply {
  const fd = inodeFd(ctx);
  if (b.size === 0) return struct(FUSE_GETXATTR_OUT, { size: cfs.xattrSize(fd, b.name) });
  return { body: cfs.getXattr(fd, b.name, b.size) };
}

export function listxattr(ctx: OpContext, b: Body<'listxattr'>): Reply {
  const fd = inodeFd(ctx);
  if (b.size === 0) return struct(FUSE_GETXATTR_OUT, { size: cfs.listXattrSize(fd) });
  return { body: cfs.listXattr(fd, b.size) };
}

export function setxattr(ctx: OpContext, b: Body<'setxattr'>): Reply {
  mustWrite(ctx, 'SETXATTR');
  settable(b.name);
  if ((b.flags & ~XATTR_FLAGS) !== 0) throw new FsError(Errno.EINVAL, `SETXATTR flags 0x${b.flags.toString(16)}`);
  cfs.setXattr(inodeFd(ctx), b.name, b.value, b.flags);
  return OK;
}

export function removexattr(ctx: OpContext, b: Body<'removexattr'>): Reply {
  mustWrite(ctx, 'REMOVEXATTR');
  settable(b.name);
  cfs.removeXattr(inodeFd(ctx), b.name);
  return OK;
}
