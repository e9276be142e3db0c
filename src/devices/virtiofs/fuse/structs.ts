// The structs of include/uapi/linux/fuse.h (protocol 7.38, Linux 6.1) that virtio-fs requests and
// replies carry, member for member in fuse.h's order. Keys are the C member names in camelCase;
// padding members keep their C names. test/unit/fuse-layout.test.ts checks every offset and size
// here against the C header when one is installed.

import { defineStruct, pad, type ValueOfLayout } from './layout.js';

/** struct fuse_in_header (40 bytes): the start of every request. total_extlen is 7.38's. */
export const FUSE_IN_HEADER = defineStruct('fuse_in_header', {
  len: 'u32',
  opcode: 'u32',
  unique: 'u64',
  nodeid: 'u64',
  uid: 'u32',
  gid: 'u32',
  pid: 'u32',
  totalExtlen: 'u16',
  padding: pad(2),
});

/** struct fuse_out_header (16 bytes): error is 0 or a negative errno. */
export const FUSE_OUT_HEADER = defineStruct('fuse_out_header', { len: 'u32', error: 'i32', unique: 'u64' });

/** struct fuse_attr (88 bytes); flags (FUSE_ATTR_*) since 7.32. */
export const FUSE_ATTR = defineStruct('fuse_attr', {
  ino: 'u64',
  size: 'u64',
  blocks: 'u64',
  atime: 'u64',
  mtime: 'u64',
  ctime: 'u64',
  atimensec: 'u32',
  mtimensec: 'u32',
  ctimensec: 'u32',
  mode: 'u32',
  nlink: 'u32',
  uid: 'u32',
  gid: 'u32',
  rdev: 'u32',
  blksize: 'u32',
  flags: 'u32',
});

/** struct fuse_kstatfs (80 bytes), the whole of struct fuse_statfs_out. */
export const FUSE_KSTATFS = defineStruct('fuse_kstatfs', {
  blocks: 'u64',
  bfree: 'u64',
  bavail: 'u64',
  files: 'u64',
  ffree: 'u64',
  bsize: 'u32',
  namelen: 'u32',
  frsize: 'u32',
  padding: pad(4),
  spare: pad(24),
});

/** struct fuse_file_lock (24 bytes). */
export const FUSE_FILE_LOCK = defineStruct('fuse_file_lock', { start: 'u64', end: 'u64', type: 'u32', pid: 'u32' });

/** struct fuse_entry_out (128 bytes): LOOKUP, MKNOD, MKDIR, SYMLINK, LINK replies. */
export const FUSE_ENTRY_OUT = defineStruct('fuse_entry_out', {
  nodeid: 'u64',
  generation: 'u64',
  entryValid: 'u64',
  attrValid: 'u64',
  entryValidNsec: 'u32',
  attrValidNsec: 'u32',
  attr: FUSE_ATTR,
});

export const FUSE_FORGET_IN = defineStruct('fuse_forget_in', { nlookup: 'u64' });
export const FUSE_FORGET_ONE = defineStruct('fuse_forget_one', { nodeid: 'u64', nlookup: 'u64' });
export const FUSE_BATCH_FORGET_IN = defineStruct('fuse_batch_forget_in', { count: 'u32', dummy: pad(4) });
export const FUSE_GETATTR_IN = defineStruct('fuse_getattr_in', { getattrFlags: 'u32', dummy: pad(4), fh: 'u64' });

/** struct fuse_attr_out (104 bytes): GETATTR, SETATTR replies. */
export const FUSE_ATTR_OUT = defineStruct('fuse_attr_out', {
  attrValid: 'u64',
  attrValidNsec: 'u32',
  dummy: pad(4),
  attr: FUSE_ATTR,
});

export const FUSE_MKNOD_IN = defineStruct('fuse_mknod_in', { mode: 'u32', rdev: 'u32', umask: 'u32', padding: pad(4) });
export const FUSE_MKDIR_IN = defineStruct('fuse_mkdir_in', { mode: 'u32', umask: 'u32' });
export const FUSE_RENAME_IN = defineStruct('fuse_rename_in', { newdir: 'u64' });
export const FUSE_RENAME2_IN = defineStruct('fuse_rename2_in', { newdir: 'u64', flags: 'u32', padding: pad(4) });
export const FUSE_LINK_IN = defineStruct('fuse_link_in', { oldnodeid: 'u64' });

/** struct fuse_setattr_in (88 bytes). */
export const FUSE_SETATTR_IN = defineStruct('fuse_setattr_in', {
  valid: 'u32',
  padding: pad(4),
  fh: 'u64',
  size: 'u64',
  lockOwner: 'u64',
  atime: 'u64',
  mtime: 'u64',
  ctime: 'u64',
  atimensec: 'u32',
  mtimensec: 'u32',
  ctimensec: 'u32',
  mode: 'u32',
  unused4: pad(4),
  uid: 'u32',
  gid: 'u32',
  unused5: pad(4),
});

export const FUSE_OPEN_IN = defineStruct('fuse_open_in', { flags: 'u32', openFlags: 'u32' });
export const FUSE_CREATE_IN = defineStruct('fuse_create_in', { flags: 'u32', mode: 'u32', umask: 'u32', openFlags: 'u32' });
export const FUSE_OPEN_OUT = defineStruct('fuse_open_out', { fh: 'u64', openFlags: 'u32', padding: pad(4) });
export const FUSE_RELEASE_IN = defineStruct('fuse_release_in', { fh: 'u64', flags: 'u32', releaseFlags: 'u32', lockOwner: 'u64' });
export const FUSE_FLUSH_IN = defineStruct('fuse_flush_in', { fh: 'u64', unused: pad(4), padding: pad(4), lockOwner: 'u64' });

/** struct fuse_read_in (40 bytes): READ, READDIR, READDIRPLUS. */
export const FUSE_READ_IN = defineStruct('fuse_read_in', {
  fh: 'u64',
  offset: 'u64',
  size: 'u32',
  readFlags: 'u32',
  lockOwner: 'u64',
  flags: 'u32',
  padding: pad(4),
});

/** struct fuse_write_in (40 bytes), followed by `size` bytes of data. */
export const FUSE_WRITE_IN = defineStruct('fuse_write_in', {
  fh: 'u64',
  offset: 'u64',
  size: 'u32',
  writeFlags: 'u32',
  lockOwner: 'u64',
  flags: 'u32',
  padding: pad(4),
});

export const FUSE_WRITE_OUT = defineStruct('fuse_write_out', { size: 'u32', padding: pad(4) });
/** struct fuse_statfs_out: one struct fuse_kstatfs. */
export const FUSE_STATFS_OUT = defineStruct('fuse_statfs_out', { st: FUSE_KSTATFS });
export const FUSE_FSYNC_IN = defineStruct('fuse_fsync_in', { fh: 'u64', fsyncFlags: 'u32', padding: pad(4) });

/** struct fuse_setxattr_in (16 bytes): sent whole only when the server set FUSE_SETXATTR_EXT. */
export const FUSE_SETXATTR_IN = defineStruct('fuse_setxattr_in', { size: 'u32', flags: 'u32', setxattrFlags: 'u32', padding: pad(4) });
/** The first FUSE_COMPAT_SETXATTR_IN_SIZE (8) bytes of fuse_setxattr_in: what is sent otherwise. */
export const FUSE_SETXATTR_IN_COMPAT = defineStruct('fuse_setxattr_in', { size: 'u32', flags: 'u32' }, { synthetic: true });

export const FUSE_GETXATTR_IN = defineStruct('fuse_getxattr_in', { size: 'u32', padding: pad(4) });
export const FUSE_GETXATTR_OUT = defineStruct('fuse_getxattr_out', { size: 'u32', padding: pad(4) });

/** struct fuse_lk_in (48 bytes): GETLK, SETLK, SETLKW. */
export const FUSE_LK_IN = defineStruct('fuse_lk_in', { fh: 'u64', owner: 'u64', lk: FUSE_FILE_LOCK, lkFlags: 'u32', padding: pad(4) });
export const FUSE_LK_OUT = defineStruct('fuse_lk_out', { lk: FUSE_FILE_LOCK });
export const FUSE_ACCESS_IN = defineStruct('fuse_access_in', { mask: 'u32', padding: pad(4) });

/** The first 16 bytes of fuse_init_in: all a kernel before 7.36 sends, and what is read without FUSE_INIT_EXT. */
export const FUSE_INIT_IN_COMPAT = defineStruct(
  'fuse_init_in',
  { major: 'u32', minor: 'u32', maxReadahead: 'u32', flags: 'u32' },
  { synthetic: true },
);
/** struct fuse_init_in (64 bytes since 7.36). */
export const FUSE_INIT_IN = defineStruct('fuse_init_in', {
  major: 'u32',
  minor: 'u32',
  maxReadahead: 'u32',
  flags: 'u32',
  flags2: 'u32',
  unused: pad(44),
});

/** struct fuse_init_out (64 bytes). */
export const FUSE_INIT_OUT = defineStruct('fuse_init_out', {
  major: 'u32',
  minor: 'u32',
  maxReadahead: 'u32',
  flags: 'u32',
  maxBackground: 'u16',
  congestionThreshold: 'u16',
  maxWrite: 'u32',
  timeGran: 'u32',
  maxPages: 'u16',
  mapAlignment: 'u16',
  flags2: 'u32',
  unused: pad(28),
});

export const FUSE_INTERRUPT_IN = defineStruct('fuse_interrupt_in', { unique: 'u64' });
export const FUSE_FALLOCATE_IN = defineStruct('fuse_fallocate_in', { fh: 'u64', offset: 'u64', length: 'u64', mode: 'u32', padding: pad(4) });

/** struct fuse_dirent without its name: 24 bytes (FUSE_NAME_OFFSET), then namelen bytes, padded to 8. */
export const FUSE_DIRENT = defineStruct('fuse_dirent', { ino: 'u64', off: 'u64', namelen: 'u32', type: 'u32' });
/** struct fuse_direntplus without the dirent's name: 152 bytes (FUSE_NAME_OFFSET_DIRENTPLUS). */
export const FUSE_DIRENTPLUS = defineStruct('fuse_direntplus', { entryOut: FUSE_ENTRY_OUT, dirent: FUSE_DIRENT });

export const FUSE_LSEEK_IN = defineStruct('fuse_lseek_in', { fh: 'u64', offset: 'u64', whence: 'u32', padding: pad(4) });
export const FUSE_LSEEK_OUT = defineStruct('fuse_lseek_out', { offset: 'u64' });

/** struct fuse_copy_file_range_in (56 bytes); the reply is a fuse_write_out. */
export const FUSE_COPY_FILE_RANGE_IN = defineStruct('fuse_copy_file_range_in', {
  fhIn: 'u64',
  offIn: 'u64',
  nodeidOut: 'u64',
  fhOut: 'u64',
  offOut: 'u64',
  len: 'u64',
  flags: 'u64',
});

/** struct fuse_setupmapping_in (40 bytes): map [foffset, foffset+len) of fh at moffset of the DAX window. */
export const FUSE_SETUPMAPPING_IN = defineStruct('fuse_setupmapping_in', {
  fh: 'u64',
  foffset: 'u64',
  len: 'u64',
  flags: 'u64',
  moffset: 'u64',
});
/** struct fuse_removemapping_in: 4 bytes, so the fuse_removemapping_one array after it starts at offset 4. */
export const FUSE_REMOVEMAPPING_IN = defineStruct('fuse_removemapping_in', { count: 'u32' });
export const FUSE_REMOVEMAPPING_ONE = defineStruct('fuse_removemapping_one', { moffset: 'u64', len: 'u64' });
export const FUSE_SYNCFS_IN = defineStruct('fuse_syncfs_in', { padding: pad(8) });

/** A CREATE/TMPFILE reply: fuse_entry_out then fuse_open_out (fs/fuse/dir.c's two out args). */
export const FUSE_CREATE_OUT = defineStruct('fuse_create_out', { entry: FUSE_ENTRY_OUT, open: FUSE_OPEN_OUT }, { synthetic: true });

/** Every layout above, for the C-header check. */
export const FUSE_LAYOUTS = [
  FUSE_IN_HEADER, FUSE_OUT_HEADER, FUSE_ATTR, FUSE_KSTATFS, FUSE_FILE_LOCK, FUSE_ENTRY_OUT,
  FUSE_FORGET_IN, FUSE_FORGET_ONE, FUSE_BATCH_FORGET_IN, FUSE_GETATTR_IN, FUSE_ATTR_OUT,
  FUSE_MKNOD_IN, FUSE_MKDIR_IN, FUSE_RENAME_IN, FUSE_RENAME2_IN, FUSE_LINK_IN, FUSE_SETATTR_IN,
  FUSE_OPEN_IN, FUSE_CREATE_IN, FUSE_OPEN_OUT, FUSE_RELEASE_IN, FUSE_FLUSH_IN, FUSE_READ_IN,
  FUSE_WRITE_IN, FUSE_WRITE_OUT, FUSE_STATFS_OUT, FUSE_FSYNC_IN, FUSE_SETXATTR_IN,
  FUSE_SETXATTR_IN_COMPAT, FUSE_GETXATTR_IN, FUSE_GETXATTR_OUT, FUSE_LK_IN, FUSE_LK_OUT,
  FUSE_ACCESS_IN, FUSE_INIT_IN_COMPAT, FUSE_INIT_IN, FUSE_INIT_OUT, FUSE_INTERRUPT_IN,
  FUSE_FALLOCATE_IN, FUSE_DIRENT, FUSE_DIRENTPLUS, FUSE_LSEEK_IN, FUSE_LSEEK_OUT,
  FUSE_COPY_FILE_RANGE_IN, FUSE_SETUPMAPPING_IN, FUSE_REMOVEMAPPING_IN, FUSE_REMOVEMAPPING_ONE,
  FUSE_SYNCFS_IN, FUSE_CREATE_OUT,
] as const;

export type FuseInHeader = ValueOfLayout<typeof FUSE_IN_HEADER>;
export type FuseOutHeader = ValueOfLayout<typeof FUSE_OUT_HEADER>;
export type FuseAttr = ValueOfLayout<typeof FUSE_ATTR>;
export type FuseKstatfs = ValueOfLayout<typeof FUSE_KSTATFS>;
export type FuseFileLock = ValueOfLayout<typeof FUSE_FILE_LOCK>;
export type FuseEntryOut = ValueOfLayout<typeof FUSE_ENTRY_OUT>;
export type FuseAttrOut = ValueOfLayout<typeof FUSE_ATTR_OUT>;
export type FuseOpenOut = ValueOfLayout<typeof FUSE_OPEN_OUT>;
export type FuseCreateOut = ValueOfLayout<typeof FUSE_CREATE_OUT>;
export type FuseWriteOut = ValueOfLayout<typeof FUSE_WRITE_OUT>;
export type FuseStatfsOut = ValueOfLayout<typeof FUSE_STATFS_OUT>;
export type FuseGetxattrOut = ValueOfLayout<typeof FUSE_GETXATTR_OUT>;
export type FuseLkOut = ValueOfLayout<typeof FUSE_LK_OUT>;
export type FuseLseekOut = ValueOfLayout<typeof FUSE_LSEEK_OUT>;
export type FuseInitIn = ValueOfLayout<typeof FUSE_INIT_IN>;
export type FuseInitOut = ValueOfLayout<typeof FUSE_INIT_OUT>;
