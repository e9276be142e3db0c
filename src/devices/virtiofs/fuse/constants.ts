// Constants of the FUSE wire protocol as the Linux 6.1 guest speaks it (include/uapi/linux/fuse.h,
// protocol 7.38), the protocol virtio-fs carries (virtio 1.2 §5.11). Names and values are those of
// fuse.h; the test fuse-layout.test.ts compares them with the header itself where one is installed.

/** fuse.h FUSE_KERNEL_VERSION: the major version this codec speaks. */
export const FUSE_KERNEL_VERSION = 7;
/** fuse.h FUSE_KERNEL_MINOR_VERSION of Linux 6.1: the newest minor whose structs this codec knows. */
export const FUSE_KERNEL_MINOR_VERSION = 38;
/** The oldest minor the codec's structs serve: 7.31 added FUSE_SETUPMAPPING and map_alignment (DAX). */
export const FUSE_MIN_MINOR_VERSION = 31;
/** fuse.h FUSE_ROOT_ID: the node ID of the root inode. */
export const FUSE_ROOT_ID = 1n;

/** enum fuse_opcode (fuse.h). */
export const FUSE_LOOKUP = 1;
export const FUSE_FORGET = 2;
export const FUSE_GETATTR = 3;
export const FUSE_SETATTR = 4;
export const FUSE_READLINK = 5;
export const FUSE_SYMLINK = 6;
export const FUSE_MKNOD = 8;
export const FUSE_MKDIR = 9;
export const FUSE_UNLINK = 10;
export const FUSE_RMDIR = 11;
export const FUSE_RENAME = 12;
export const FUSE_LINK = 13;
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_WRITE = 16;
export const FUSE_STATFS = 17;
export const FUSE_RELEASE = 18;
export const FUSE_FSYNC = 20;
export const FUSE_SETXATTR = 21;
export const FUSE_GETXATTR = 22;
export const FUSE_LISTXATTR = 23;
export const FUSE_REMOVEXATTR = 24;
export const FUSE_FLUSH = 25;
export const FUSE_INIT = 26;
export const FUSE_OPENDIR = 27;
export const FUSE_READDIR = 28;
export const FUSE_RELEASEDIR = 29;
export const FUSE_FSYNCDIR = 30;
export const FUSE_GETLK = 31;
export const FUSE_SETLK = 32;
export const FUSE_SETLKW = 33;
export const FUSE_ACCESS = 34;
export const FUSE_CREATE = 35;
export const FUSE_INTERRUPT = 36;
export const FUSE_BMAP = 37;
export const FUSE_DESTROY = 38;
export const FUSE_IOCTL = 39;
export const FUSE_POLL = 40;
export const FUSE_NOTIFY_REPLY = 41;
export const FUSE_BATCH_FORGET = 42;
export const FUSE_FALLOCATE = 43;
export const FUSE_READDIRPLUS = 44;
export const FUSE_RENAME2 = 45;
export const FUSE_LSEEK = 46;
export const FUSE_COPY_FILE_RANGE = 47;
export const FUSE_SETUPMAPPING = 48;
export const FUSE_REMOVEMAPPING = 49;
export const FUSE_SYNCFS = 50;
export const FUSE_TMPFILE = 51;

const OPCODE_NAMES: Readonly<Record<number, string>> = {
  [FUSE_LOOKUP]: 'LOOKUP',
  [FUSE_FORGET]: 'FORGET',
  [FUSE_GETATTR]: 'GETATTR',
  [FUSE_SETATTR]: 'SETATTR',
  [FUSE_READLINK]: 'READLINK',
  [FUSE_SYMLINK]: 'SYMLINK',
  [FUSE_MKNOD]: 'MKNOD',
  [FUSE_MKDIR]: 'MKDIR',
  [FUSE_UNLINK]: 'UNLINK',
  [FUSE_RMDIR]: 'RMDIR',
  [FUSE_RENAME]: 'RENAME',
  [FUSE_LINK]: 'LINK',
  [FUSE_OPEN]: 'OPEN',
  [FUSE_READ]: 'READ',
  [FUSE_WRITE]: 'WRITE',
  [FUSE_STATFS]: 'STATFS',
  [FUSE_RELEASE]: 'RELEASE',
  [FUSE_FSYNC]: 'FSYNC',
  [FUSE_SETXATTR]: 'SETXATTR',
  [FUSE_GETXATTR]: 'GETXATTR',
  [FUSE_LISTXATTR]: 'LISTXATTR',
  [FUSE_REMOVEXATTR]: 'REMOVEXATTR',
  [FUSE_FLUSH]: 'FLUSH',
  [FUSE_INIT]: 'INIT',
  [FUSE_OPENDIR]: 'OPENDIR',
  [FUSE_READDIR]: 'READDIR',
  [FUSE_RELEASEDIR]: 'RELEASEDIR',
  [FUSE_FSYNCDIR]: 'FSYNCDIR',
  [FUSE_GETLK]: 'GETLK',
  [FUSE_SETLK]: 'SETLK',
  [FUSE_SETLKW]: 'SETLKW',
  [FUSE_ACCESS]: 'ACCESS',
  [FUSE_CREATE]: 'CREATE',
  [FUSE_INTERRUPT]: 'INTERRUPT',
  [FUSE_BMAP]: 'BMAP',
  [FUSE_DESTROY]: 'DESTROY',
  [FUSE_IOCTL]: 'IOCTL',
  [FUSE_POLL]: 'POLL',
  [FUSE_NOTIFY_REPLY]: 'NOTIFY_REPLY',
  [FUSE_BATCH_FORGET]: 'BATCH_FORGET',
  [FUSE_FALLOCATE]: 'FALLOCATE',
  [FUSE_READDIRPLUS]: 'READDIRPLUS',
  [FUSE_RENAME2]: 'RENAME2',
  [FUSE_LSEEK]: 'LSEEK',
  [FUSE_COPY_FILE_RANGE]: 'COPY_FILE_RANGE',
  [FUSE_SETUPMAPPING]: 'SETUPMAPPING',
  [FUSE_REMOVEMAPPING]: 'REMOVEMAPPING',
  [FUSE_SYNCFS]: 'SYNCFS',
  [FUSE_TMPFILE]: 'TMPFILE',
};

/** The opcode's fuse.h name without the FUSE_ prefix, for messages ('LOOKUP', 'opcode 7' when unknown). */
export function opcodeName(opcode: number): string {
  return OPCODE_NAMES[opcode] ?? `opcode ${opcode}`;
}

/**
 * INIT flags, bits 0..31: fuse_init_in.flags / fuse_init_out.flags (fuse.h "INIT request/reply
 * flags"). Bit 31 is written 2 ** 31 so that the constant stays a positive number.
 */
export const FUSE_ASYNC_READ = 1 << 0;
export const FUSE_POSIX_LOCKS = 1 << 1;
export const FUSE_FILE_OPS = 1 << 2;
export const FUSE_ATOMIC_O_TRUNC = 1 << 3;
export const FUSE_EXPORT_SUPPORT = 1 << 4;
export const FUSE_BIG_WRITES = 1 << 5;
export const FUSE_DONT_MASK = 1 << 6;
export const FUSE_SPLICE_WRITE = 1 << 7;
export const FUSE_SPLICE_MOVE = 1 << 8;
export const FUSE_SPLICE_READ = 1 << 9;
export const FUSE_FLOCK_LOCKS = 1 << 10;
export const FUSE_HAS_IOCTL_DIR = 1 << 11;
export const FUSE_AUTO_INVAL_DATA = 1 << 12;
export const FUSE_DO_READDIRPLUS = 1 << 13;
export const FUSE_READDIRPLUS_AUTO = 1 << 14;
export const FUSE_ASYNC_DIO = 1 << 15;
export const FUSE_WRITEBACK_CACHE = 1 << 16;
export const FUSE_NO_OPEN_SUPPORT = 1 << 17;
export const FUSE_PARALLEL_DIROPS = 1 << 18;
export const FUSE_HANDLE_KILLPRIV = 1 << 19;
export const FUSE_POSIX_ACL = 1 << 20;
export const FUSE_ABORT_ERROR = 1 << 21;
export const FUSE_MAX_PAGES = 1 << 22;
export const FUSE_CACHE_SYMLINKS = 1 << 23;
export const FUSE_NO_OPENDIR_SUPPORT = 1 << 24;
export const FUSE_EXPLICIT_INVAL_DATA = 1 << 25;
export const FUSE_MAP_ALIGNMENT = 1 << 26;
export const FUSE_SUBMOUNTS = 1 << 27;
export const FUSE_HANDLE_KILLPRIV_V2 = 1 << 28;
export const FUSE_SETXATTR_EXT = 1 << 29;
/** fuse_init_in is the 64-byte 7.36 struct and flags2 carries bits 32..63. */
export const FUSE_INIT_EXT = 1 << 30;
export const FUSE_INIT_RESERVED = 2 ** 31;

/**
 * INIT flags, bits 32..63: fuse.h defines them as 64-bit values and sends them "shifted down 32
 * bits into the flags2 field". They are bigints here to keep fuse.h's values; initFlags2Bit()
 * gives the bit within flags2.
 */
export const FUSE_SECURITY_CTX = 1n << 32n;
export const FUSE_HAS_INODE_DAX = 1n << 33n;
export const FUSE_HAS_EXPIRE_ONLY = 1n << 35n;

/** The bit of a 64-bit INIT flag (FUSE_SECURITY_CTX, ...) within fuse_init_in/out.flags2. */
export function initFlags2Bit(flag: bigint): number {
  return Number(BigInt.asUintN(64, flag) >> 32n);
}

/** fuse_setattr_in.valid bits (fuse.h "Bitmasks for fuse_setattr_in.valid"). */
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

/** fuse_open_out.open_flags (fuse.h "Flags returned by the OPEN request"). */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;

/** fuse_open_in.open_flags / fuse_create_in.open_flags (fuse.h "Open flags"). */
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;

/** fuse_release_in.release_flags. */
export const FUSE_RELEASE_FLUSH = 1 << 0;
export const FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1;

/** fuse_getattr_in.getattr_flags: fh is valid. */
export const FUSE_GETATTR_FH = 1 << 0;

/** fuse_lk_in.lk_flags: a BSD flock() rather than a POSIX lock. */
export const FUSE_LK_FLOCK = 1 << 0;

/** fuse_write_in.write_flags. FUSE_WRITE_KILL_PRIV is fuse.h's obsolete alias of KILL_SUIDGID. */
export const FUSE_WRITE_CACHE = 1 << 0;
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
export const FUSE_WRITE_KILL_PRIV = FUSE_WRITE_KILL_SUIDGID;

/** fuse_read_in.read_flags: lock_owner is valid. */
export const FUSE_READ_LOCKOWNER = 1 << 1;

/** fuse_fsync_in.fsync_flags: data only (fdatasync). */
export const FUSE_FSYNC_FDATASYNC = 1 << 0;

/** fuse_attr.flags. */
export const FUSE_ATTR_SUBMOUNT = 1 << 0;
export const FUSE_ATTR_DAX = 1 << 1;

/** fuse_setxattr_in.setxattr_flags (only with FUSE_SETXATTR_EXT). */
export const FUSE_SETXATTR_ACL_KILL_SGID = 1 << 0;

/** fuse_setupmapping_in.flags (a u64 field, hence bigints). */
export const FUSE_SETUPMAPPING_FLAG_WRITE = 1n << 0n;
export const FUSE_SETUPMAPPING_FLAG_READ = 1n << 1n;

/** fuse_rename2_in.flags: the renameat2() flags of linux/fs.h. */
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;
export const RENAME_WHITEOUT = 1 << 2;

/** fuse_file_lock.type: the fcntl() lock types of asm-generic/fcntl.h (x86 uses these values). */
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;

/** Struct sizes older kernels send or accept (fuse.h FUSE_COMPAT_*). */
export const FUSE_COMPAT_ENTRY_OUT_SIZE = 120;
export const FUSE_COMPAT_ATTR_OUT_SIZE = 96;
export const FUSE_COMPAT_MKNOD_IN_SIZE = 8;
export const FUSE_COMPAT_WRITE_IN_SIZE = 24;
export const FUSE_COMPAT_STATFS_SIZE = 48;
/** fuse_setxattr_in as sent unless the server set FUSE_SETXATTR_EXT: size and flags only. */
export const FUSE_COMPAT_SETXATTR_IN_SIZE = 8;
export const FUSE_COMPAT_INIT_OUT_SIZE = 8;
export const FUSE_COMPAT_22_INIT_OUT_SIZE = 24;
/** fuse_init_in before 7.36 (FUSE_INIT_EXT): major, minor, max_readahead, flags. Not in fuse.h. */
export const FUSE_COMPAT_INIT_IN_SIZE = 16;

/** fuse.h FUSE_MIN_READ_BUFFER: the smallest read buffer a /dev/fuse server may use. */
export const FUSE_MIN_READ_BUFFER = 8192;
/**
 * The longest name the kernel accepts in a dirent (FUSE_NAME_MAX of fs/fuse/fuse_i.h, not in the
 * uapi header): parse_dirfile() fails the whole READDIR with EIO on a longer one.
 */
export const FUSE_NAME_MAX = 1024;
/**
 * The largest errno a reply may carry: fs/fuse/dev.c rejects a reply whose error is
 * <= -ERESTARTSYS (512) or > 0.
 */
export const FUSE_MAX_REPLY_ERRNO = 511;
