// fuse_attr, fuse_attr_out and fuse_entry_out from a host statx, as virtiofsd fills them: the
// host's inode number, sizes, times and ids unchanged (ownership is the share's own, see
// server.ts), rdev truncated to fuse_attr's u32 (the kernel decodes it with new_decode_dev).
import type { InodeStat } from '../../../vmm/confined-fs.js';
import type { FuseAttr, FuseAttrOut, FuseEntryOut } from '../fuse/index.js';

export function fuseAttr(st: InodeStat): FuseAttr {
  return {
    ino: st.ino,
    size: st.size,
    blocks: st.blocks,
    atime: BigInt.asUintN(64, st.atimeSec),
    mtime: BigInt.asUintN(64, st.mtimeSec),
    ctime: BigInt.asUintN(64, st.ctimeSec),
    atimensec: st.atimeNsec,
    mtimensec: st.mtimeNsec,
    ctimensec: st.ctimeNsec,
    mode: st.mode,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    rdev: Number(BigInt.asUintN(32, st.rdev)),
    blksize: st.blksize,
    flags: 0,
  };
}

export function attrOut(st: InodeStat, timeoutSec: number): FuseAttrOut {
  return { attrValid: BigInt(timeoutSec), attrValidNsec: 0, attr: fuseAttr(st) };
}

export function entryOut(nodeid: bigint, st: InodeStat, timeoutSec: number): FuseEntryOut {
  const t = BigInt(timeoutSec);
  return { nodeid, generation: 0n, entryValid: t, attrValid: t, entryValidNsec: 0, attrValidNsec: 0, attr: fuseAttr(st) };
}

/** A READDIRPLUS entry the guest takes no lookup on (fs/fuse/readdir.c skips nodeid 0). */
export function noEntry(st: InodeStat | undefined, ino: bigint, type: number): FuseEntryOut {
  const attr = st ? fuseAttr(st) : { ...fuseAttr(ZERO_STAT), ino, mode: type << 12 };
  return { nodeid: 0n, generation: 0n, entryValid: 0n, attrValid: 0n, entryValidNsec: 0, attrValidNsec: 0, attr };
}

const ZERO_STAT: InodeStat = {
  ino: 0n, dev: 0n, mntId: 0n, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0n, size: 0n, blocks: 0n, blksize: 0,
  atimeSec: 0n, atimeNsec: 0, mtimeSec: 0n, mtimeNsec: 0, ctimeSec: 0n, ctimeNsec: 0,
};
