// FUSE reply encoding (src/devices/virtiofs/fuse/reply.ts, dirent.ts): byte-exact replies written
// out by hand from fuse.h's layouts, the sizes the kernel expects for each reply, error replies,
// writing straight into separate descriptor views, and READDIR/READDIRPLUS packing: record
// layout and padding, truncation at the request's size, names the kernel would refuse.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DirentPacker, FUSE_ASYNC_READ, FUSE_ATTR_DAX, FUSE_ATTR_OUT, FUSE_BIG_WRITES, FUSE_CREATE_OUT,
  FUSE_ENTRY_OUT, FUSE_GETXATTR_OUT, FUSE_HAS_INODE_DAX, FUSE_INIT_EXT, FUSE_INIT_OUT, FUSE_LK_OUT,
  FUSE_LSEEK_OUT, FUSE_MAP_ALIGNMENT, FUSE_MAX_PAGES, FUSE_NAME_MAX, FUSE_OPEN_OUT, FUSE_OUT_HEADER_SIZE,
  FUSE_STATFS_OUT, FUSE_WRITE_OUT, FuseEncodeError, direntSize, direntType, direntplusSize,
  encodeErrorReply, encodeReply, initFlags2Bit, writeErrorReply, writeReply, writeReplyHeader, writeStruct,
  type FuseAttr, type FuseEntryOut, type Layout,
} from '../../src/devices/virtiofs/fuse/index.js';
import { parseDirents, parseDirentsPlus, parseOutHeader } from '../helpers/fuse-replies.js';
import { hex, thrown, utf8 } from '../helpers/fuse-requests.js';

const encodeError = (fn: () => unknown) => thrown(FuseEncodeError, fn);

const ATTR: FuseAttr = {
  ino: 2n, size: 4096n, blocks: 8n, atime: 0x5f5e1000n, mtime: 0x5f5e1000n, ctime: 0x5f5e1000n,
  atimensec: 1, mtimensec: 2, ctimensec: 3, mode: 0o40755, nlink: 2, uid: 1000, gid: 1000, rdev: 0,
  blksize: 4096, flags: FUSE_ATTR_DAX,
};
const ENTRY: FuseEntryOut = { nodeid: 2n, generation: 1n, entryValid: 1n, attrValid: 1n, entryValidNsec: 0, attrValidNsec: 500_000_000, attr: ATTR };

test('error reply, by hand: the 16-byte header alone with error = -errno', () => {
  assert.equal([...encodeErrorReply(5n, 2)], [...hex('10000000 feffffff 0500000000000000')]);
  const buf = new Uint8Array(20).fill(0xaa);
  assert.is(writeErrorReply(buf, 4, 0xffff_ffff_ffff_ffffn, 38), 20);
  assert.equal(parseOutHeader(buf.subarray(4)), { len: 16, error: -38, unique: 0xffff_ffff_ffff_ffffn });
  for (const errno of [0, -2, 512, 1.5, Number.NaN]) assert.is(encodeError(() => encodeErrorReply(1n, errno)).reason, 'out-of-range', String(errno));
  assert.is(encodeErrorReply(1n, 511).byteLength, 16);
});

test('LOOKUP reply, by hand: fuse_out_header + fuse_entry_out (128 bytes, fuse_attr at 40)', () => {
  const expected = hex(`
    90000000 00000000 0700000000000000   # len 144, error 0, unique 7
    0200000000000000 0100000000000000    # nodeid 2, generation 1
    0100000000000000 0100000000000000    # entry_valid 1, attr_valid 1
    00000000 0065cd1d                    # entry_valid_nsec 0, attr_valid_nsec 500000000
    0200000000000000 0010000000000000 0800000000000000   # ino 2, size 4096, blocks 8
    00105e5f00000000 00105e5f00000000 00105e5f00000000   # atime, mtime, ctime
    01000000 02000000 03000000           # atimensec, mtimensec, ctimensec
    ed410000 02000000 e8030000 e8030000  # mode 040755, nlink 2, uid, gid 1000
    00000000 00100000 02000000           # rdev 0, blksize 4096, flags FUSE_ATTR_DAX
  `);
  assert.is(expected.byteLength, 144);
  assert.equal([...encodeReply(7n, FUSE_ENTRY_OUT, ENTRY)], [...expected]);
});

test('INIT reply, by hand: fuse_init_out is 64 bytes with max_pages, map_alignment and flags2', () => {
  const init = {
    major: 7, minor: 38, maxReadahead: 0x20000,
    flags: FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT,
    maxBackground: 16, congestionThreshold: 12, maxWrite: 0x100000, timeGran: 1, maxPages: 256,
    mapAlignment: 21, flags2: initFlags2Bit(FUSE_HAS_INODE_DAX),
  };
  const expected = hex(`
    50000000 00000000 0100000000000000   # len 80, error 0, unique 1
    07000000 26000000 00000200 21004044  # major 7, minor 38, max_readahead 128 KiB, flags
    1000 0c00 00001000 01000000          # max_background 16, congestion_threshold 12, max_write 1 MiB, time_gran 1
    0001 1500 02000000                   # max_pages 256, map_alignment 21 (2 MiB), flags2 FUSE_HAS_INODE_DAX
    ${'00'.repeat(28)}                   # unused[7]
  `);
  assert.equal([...encodeReply(1n, FUSE_INIT_OUT, init)], [...expected]);
});

test('every reply body has the size the kernel reads', () => {
  const sizes: [Layout<object>, number][] = [
    [FUSE_ENTRY_OUT, 128], [FUSE_ATTR_OUT, 104], [FUSE_INIT_OUT, 64], [FUSE_OPEN_OUT, 16],
    [FUSE_WRITE_OUT, 8], [FUSE_STATFS_OUT, 80], [FUSE_GETXATTR_OUT, 8], [FUSE_LK_OUT, 24],
    [FUSE_LSEEK_OUT, 8], [FUSE_CREATE_OUT, 144],
  ];
  for (const [layout, size] of sizes) assert.is(layout.size, size, layout.name);
  assert.is(FUSE_OUT_HEADER_SIZE, 16);
  const open = encodeReply(3n, FUSE_OPEN_OUT, { fh: 0x1122334455667788n, openFlags: 1 });
  assert.equal([...open], [...hex('20000000 00000000 0300000000000000 8877665544332211 01000000 00000000')]);
  const lk = encodeReply(3n, FUSE_LK_OUT, { lk: { start: 1n, end: 2n, type: 1, pid: 9 } });
  assert.equal([...lk.subarray(16)], [...hex('0100000000000000 0200000000000000 01000000 09000000')]);
  const statfs = encodeReply(3n, FUSE_STATFS_OUT, { st: { blocks: 1n, bfree: 2n, bavail: 3n, files: 4n, ffree: 5n, bsize: 4096, namelen: 255, frsize: 4096 } });
  assert.is(parseOutHeader(statfs).len, 96);
  assert.equal([...statfs.subarray(56, 72)], [...hex('00100000 ff000000 00100000 00000000')]);
  const create = encodeReply(3n, FUSE_CREATE_OUT, { entry: ENTRY, open: { fh: 5n, openFlags: 0 } });
  assert.is(parseOutHeader(create).len, 160);
  assert.equal([...create.subarray(144, 152)], [5, 0, 0, 0, 0, 0, 0, 0]);
  assert.is(parseOutHeader(encodeReply(3n, FUSE_ATTR_OUT, { attrValid: 1n, attrValidNsec: 0, attr: ATTR })).len, 120);
});

test('header and body can go into separate descriptors, as Linux virtio_fs lays them out', () => {
  const memory = new Uint8Array(256).fill(0xcc);
  const headerDesc = memory.subarray(0, 16);
  const argsDesc = memory.subarray(100, 108);
  assert.is(writeReplyHeader(headerDesc, 0, 9n, FUSE_WRITE_OUT.size), 16);
  assert.is(writeStruct(FUSE_WRITE_OUT, argsDesc, 0, { size: 4096 }), 8);
  assert.equal(parseOutHeader(memory), { len: 24, error: 0, unique: 9n });
  assert.equal([...memory.subarray(100, 108)], [0, 0x10, 0, 0, 0, 0, 0, 0], 'padding zeroed');
  assert.is(memory[99], 0xcc);
  assert.is(memory[108], 0xcc);
  const readReply = new Uint8Array(16);
  writeReplyHeader(readReply, 0, 4n, 3000);
  assert.equal(parseOutHeader(readReply), { len: 3016, error: 0, unique: 4n });
});

test('a reply that does not fit writes nothing', () => {
  const buf = new Uint8Array(FUSE_OUT_HEADER_SIZE + FUSE_ENTRY_OUT.size - 1).fill(0xee);
  assert.is(encodeError(() => writeReply(buf, 0, 1n, FUSE_ENTRY_OUT, ENTRY)).reason, 'buffer-too-small');
  assert.ok(buf.every((b) => b === 0xee));
  assert.is(encodeError(() => writeErrorReply(new Uint8Array(15), 0, 1n, 2)).reason, 'buffer-too-small');
  assert.is(encodeError(() => encodeReply(1n, FUSE_ENTRY_OUT, { ...ENTRY, nodeid: -1n })).reason, 'out-of-range');
});

test('READDIR record, by hand: 24-byte fuse_dirent, name, zero padding to 8', () => {
  const buf = new Uint8Array(64).fill(0xee);
  const p = DirentPacker.readdir(buf);
  assert.ok(p.add({ ino: 5n, off: 1n, type: 4, name: utf8('ab') }));
  assert.equal([...p.body()], [...hex('0500000000000000 0100000000000000 02000000 04000000 6162 000000000000')]);
  assert.is(p.size, 32);
  assert.is(p.count, 1);
  assert.is(direntSize(2), 32);
  assert.is(direntSize(8), 32);
  assert.is(direntSize(9), 40);
  assert.is(direntplusSize(1), 160);
  assert.is(direntType(0o40755), 4);
  assert.is(direntType(0o100644), 8);
  assert.is(direntType(0o120777), 10);
});

test('READDIR packing stops at the size limit with whole records only', () => {
  const names = ['.', '..', 'file-with-a-longer-name', 'x'];
  const entries = names.map((n, i) => ({ ino: BigInt(i + 1), off: BigInt(i + 1), type: 8, name: utf8(n) }));
  // 32 + 32 + 48 = 112 bytes for the first three; a limit of 120 leaves 8, too few for 'x' (32).
  const p = DirentPacker.readdir(new Uint8Array(4096), 120);
  const added = entries.map((e) => p.add(e));
  assert.equal(added, [true, true, true, false]);
  assert.is(p.size, 112);
  assert.is(p.count, 3);
  assert.equal(parseDirents(p.body()), entries.slice(0, 3));
  const small = DirentPacker.readdir(new Uint8Array(31));
  assert.not.ok(small.add(entries[0]));
  assert.is(small.size, 0);
  assert.is(DirentPacker.readdir(new Uint8Array(16), 1000).limit, 16, 'the buffer bounds the limit too');
});

test('READDIRPLUS records: fuse_entry_out then fuse_dirent, the name at 152', () => {
  const buf = new Uint8Array(400).fill(0xee);
  const p = DirentPacker.readdirplus(buf, 400);
  const e = { ino: 2n, off: 1n, type: 4, name: utf8('sub'), entry: ENTRY };
  assert.ok(p.add(e));
  assert.ok(p.add({ ...e, name: utf8('sub2'), off: 2n }));
  assert.not.ok(p.add({ ...e, name: utf8('sub3'), off: 3n }), '3 × 160 > 400');
  assert.is(p.size, 320);
  assert.equal([...buf.subarray(152, 160)], [0x73, 0x75, 0x62, 0, 0, 0, 0, 0]);
  assert.equal([...buf.subarray(128, 136)], [2, 0, 0, 0, 0, 0, 0, 0], 'dirent.ino after the entry_out');
  assert.equal(parseDirentsPlus(p.body()), [e, { ...e, name: utf8('sub2'), off: 2n }]);
});

test('dirent names the kernel refuses are refused: empty, longer than FUSE_NAME_MAX, with "/"', () => {
  const p = DirentPacker.readdir(new Uint8Array(4096));
  for (const name of [new Uint8Array(0), utf8('a/b'), new Uint8Array(FUSE_NAME_MAX + 1).fill(0x61)]) {
    assert.is(encodeError(() => p.add({ ino: 1n, off: 1n, type: 8, name })).reason, 'bad-name');
  }
  assert.ok(p.add({ ino: 1n, off: 1n, type: 8, name: new Uint8Array(FUSE_NAME_MAX).fill(0x61) }));
  assert.is(p.count, 1);
  assert.is(encodeError(() => DirentPacker.readdir(new Uint8Array(8), -1)).reason, 'out-of-range');
});

test.run();
