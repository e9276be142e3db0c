// Who owns what the guest creates, and which mode bits it may set (the policy is explained in
// server.ts). The guest kernel checks permissions itself (virtio_fs mounts with
// default_permissions), so these rules are about what lands on the host, not about access.
import { chmodInode, chownInode, ID_UNCHANGED, statAt, type InodeStat } from '../../../vmm/confined-fs.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;

export interface Caller {
  readonly uid: number;
  readonly gid: number;
}

/**
 * The permission bits (07777) to set on an inode owned by `owner` when `caller` asks for `mode`:
 * a caller other than root never leaves a set-user-ID bit on a file it does not own on the host,
 * nor set-group-ID on a non-directory whose host group is not its own — otherwise the guest
 * could leave a program on the host that runs as someone else (as the VMM's user, or root).
 */
export function safeMode(mode: number, isDir: boolean, caller: Caller, owner: Caller): number {
  let bits = mode & 0o7777;
  if (caller.uid === 0) return bits;
  if (owner.uid !== caller.uid) bits &= ~S_ISUID;
  if (!isDir && owner.gid !== caller.gid) bits &= ~S_ISGID;
  return bits;
}

/**
 * Makes a freshly created inode the caller's: with a privileged VMM, chown to the caller's uid
 * (and gid, unless the parent directory is set-group-ID, whose group the new inode inherited as
 * on any Linux file system); then the exact mode asked for (the VMM's umask may have masked it;
 * the guest kernel applied the caller's). Returns the inode's stat afterwards.
 */
export function adopt(fd: number, st: InodeStat, mode: number | undefined, caller: Caller, privileged: boolean, parentFd: number): InodeStat {
  if (privileged && (st.uid !== caller.uid || st.gid !== caller.gid)) {
    const inherit = (statAt(parentFd).mode & S_ISGID) !== 0;
    chownInode(fd, caller.uid, inherit ? ID_UNCHANGED : caller.gid);
    st = statAt(fd);
  }
  if (mode === undefined) return st;
  const isDir = (st.mode & S_IFMT) === S_IFDIR;
  const target = safeMode(mode, isDir, caller, st) | (isDir ? st.mode & S_ISGID : 0);
  if ((st.mode & 0o7777) !== target) {
    chmodInode(fd, target);
    st = statAt(fd);
  }
  return st;
}
