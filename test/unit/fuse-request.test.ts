// FUSE request decoding (src/devices/virtiofs/fuse/request.ts): byte-exact fixtures written out
// by hand from fuse.h's struct layouts, every op through the kernel-style builder, descriptors
// gathered without copying WRITE data, and every malformed length per op (truncated header, len
// mismatch, struct cut short, missing NUL, empty names, sizes and counts claiming more than is
// there, extensions longer than the request).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FUSE_INIT_EXT, FUSE_MAP_ALIGNMENT, FUSE_SETXATTR_ACL_KILL_SGID, FuseDecodeError, decodeRequest,
  isSingleComponent, nameToString,
  type FuseDecodeErrorReason, type FuseRequestBody,
} from '../../src/devices/virtiofs/fuse/index.js';
import { buildRequest, concat, cstr, encodeRequest, hex, opcodeOf, requestArgs, thrown, utf8 } from '../helpers/fuse-requests.js';

const decodeError = (fn: () => unknown) => thrown(FuseDecodeError, fn);

function expectReason(bytes: Uint8Array | Uint8Array[], reason: FuseDecodeErrorReason, options = {}): FuseDecodeError {
  const err = decodeError(() => decodeRequest(bytes, options));
  assert.is(err.reason, reason, err.message);
  return err;
}

test('LOOKUP, by hand: a 40-byte fuse_in_header then "foo\\0"', () => {
  const bytes = hex(`
    2c000000 01000000          # len 44, opcode 1 (LOOKUP)
    0500000000000000           # unique 5
    0100000000000000           # nodeid 1 (FUSE_ROOT_ID)
    e8030000 e9030000          # uid 1000, gid 1001
    39300000 0000 0000         # pid 12345, total_extlen 0, padding
    666f6f00                   # "foo\\0"
  `);
  const r = decodeRequest(bytes);
  assert.equal(r.header, { len: 44, opcode: 1, unique: 5n, nodeid: 1n, uid: 1000, gid: 1001, pid: 12345, totalExtlen: 0 });
  assert.is(r.body.kind, 'lookup');
  if (r.body.kind === 'lookup') assert.equal([...r.body.name], [0x66, 0x6f, 0x6f]);
  assert.is(r.extensions.byteLength, 0);
});

test('WRITE, by hand: fuse_write_in then exactly size bytes of data', () => {
  const bytes = hex(`
    53000000 10000000 0900000000000000 0700000000000000 00000000 00000000 01000000 0000 0000
    2a00000000000000           # fh 42
    0010000000000000           # offset 4096
    03000000 02000000          # size 3, write_flags FUSE_WRITE_LOCKOWNER
    efbeadde00000000           # lock_owner 0xdeadbeef
    02800000 00000000          # flags O_RDWR|O_LARGEFILE, padding
    616263                     # "abc"
  `);
  const r = decodeRequest(bytes);
  assert.is(r.header.len, 83);
  assert.is(r.header.nodeid, 7n);
  assert.equal(r.body, { kind: 'write', fh: 42n, offset: 4096n, size: 3, writeFlags: 2, lockOwner: 0xdeadbeefn, flags: 0x8002, data: [utf8('abc')] });
});

test('RENAME2, by hand: fuse_rename2_in, old name, new name', () => {
  const bytes = hex(`
    3d000000 2d000000 0300000000000000 0a00000000000000 00000000 00000000 01000000 0000 0000
    0b00000000000000 01000000 00000000   # newdir 11, flags RENAME_NOREPLACE, padding
    6100 626300                          # "a\\0" "bc\\0"
  `);
  const r = decodeRequest(bytes);
  assert.equal(r.body, { kind: 'rename2', newdir: 11n, flags: 1, oldname: utf8('a'), newname: utf8('bc') });
});

test('REMOVEMAPPING, by hand: a 4-byte fuse_removemapping_in, so the entries start unaligned', () => {
  const bytes = hex(`
    4c000000 31000000 0400000000000000 0100000000000000 00000000 00000000 00000000 0000 0000
    02000000                                 # count 2
    0000200000000000 0000200000000000        # moffset 2 MiB, len 2 MiB
    0000400000000000 0000200000000000        # moffset 4 MiB, len 2 MiB
  `);
  const r = decodeRequest(bytes);
  assert.equal(r.body, {
    kind: 'removemapping',
    mappings: [
      { moffset: 0x200000n, len: 0x200000n },
      { moffset: 0x400000n, len: 0x200000n },
    ],
  });
});

test('INIT, by hand: Linux 6.1 sends the 64-byte fuse_init_in with FUSE_INIT_EXT and flags2', () => {
  const bytes = hex(`
    68000000 1a000000 0100000000000000 0000000000000000 00000000 00000000 00000000 0000 0000
    07000000 26000000 00000200   # major 7, minor 38, max_readahead 128 KiB
    00000044                     # flags FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT
    03000000                     # flags2: FUSE_SECURITY_CTX, FUSE_HAS_INODE_DAX
    ${'00'.repeat(44)}           # unused[11]
  `);
  const r = decodeRequest(bytes);
  assert.equal(r.body, { kind: 'init', major: 7, minor: 38, maxReadahead: 0x20000, flags: FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT, flags2: 3 });
});

test('INIT from a kernel before 7.36: 16 bytes, flags2 0; without FUSE_INIT_EXT flags2 is not read', () => {
  const compat = buildRequest(26, [hex('07000000 1f000000 00000200 01000000')]);
  assert.equal(decodeRequest(compat).body, { kind: 'init', major: 7, minor: 31, maxReadahead: 0x20000, flags: 1, flags2: 0 });
  const noExt = buildRequest(26, [hex(`07000000 26000000 00000200 01000000 ffffffff ${'00'.repeat(44)}`)]);
  assert.equal(decodeRequest(noExt).body, { kind: 'init', major: 7, minor: 38, maxReadahead: 0x20000, flags: 1, flags2: 0 });
  const longer = buildRequest(26, [hex(`07000000 29000000 00000000 00000040 01000000 ${'00'.repeat(44)} 0102030405060708`)]);
  assert.is(decodeRequest(longer).body.kind, 'init', 'a later kernel\'s longer fuse_init_in is accepted');
  expectReason(buildRequest(26, [hex('07000000 26000000 00000000 00000040 01000000')]), 'short-body');
  expectReason(buildRequest(26, [hex('07000000 26000000 00000000')]), 'short-body');
});

const name = (s: string) => utf8(s);

/** One body of every kind the decoder produces, with values that use each field's width. */
const SAMPLES: readonly FuseRequestBody[] = [
  { kind: 'init', major: 7, minor: 38, maxReadahead: 131072, flags: 0x7fff_ffff, flags2: 0xffff_ffff },
  { kind: 'destroy' },
  { kind: 'lookup', name: name('hello.txt') },
  { kind: 'forget', nlookup: 3n },
  { kind: 'batchForget', forgets: [{ nodeid: 5n, nlookup: 1n }, { nodeid: 0xffff_ffff_ffff_ffffn, nlookup: 2n }] },
  { kind: 'getattr', getattrFlags: 1, fh: 0x1234_5678_9abc_def0n },
  {
    kind: 'setattr', valid: 0xfff, fh: 1n, size: 1n << 40n, lockOwner: 2n, atime: 3n, mtime: 4n, ctime: 5n,
    atimensec: 999_999_999, mtimensec: 1, ctimensec: 2, mode: 0o100644, uid: 0xffff_fffe, gid: 7,
  },
  { kind: 'readlink' },
  { kind: 'symlink', name: name('link'), target: name('../target/path') },
  { kind: 'mknod', mode: 0o20644, rdev: 0x0501, umask: 0o022, name: name('tty') },
  { kind: 'mkdir', mode: 0o40755, umask: 0o022, name: name('dir') },
  { kind: 'unlink', name: name('f') },
  { kind: 'rmdir', name: name('d') },
  { kind: 'rename', newdir: 9n, oldname: name('old'), newname: name('new') },
  { kind: 'rename2', newdir: 9n, flags: 2, oldname: name('x'), newname: name('y') },
  { kind: 'link', oldnodeid: 12n, newname: name('hard') },
  { kind: 'open', flags: 0o100002, openFlags: 1 },
  { kind: 'read', fh: 3n, offset: 1n << 33n, size: 131072, readFlags: 2, lockOwner: 4n, flags: 0o100000 },
  { kind: 'write', fh: 3n, offset: 8n, size: 5, writeFlags: 4, lockOwner: 0n, flags: 2, data: [name('hello')] },
  { kind: 'statfs' },
  { kind: 'release', fh: 3n, flags: 2, releaseFlags: 3, lockOwner: 9n },
  { kind: 'fsync', fh: 3n, fsyncFlags: 1 },
  { kind: 'setxattr', size: 3, flags: 1, setxattrFlags: 0, name: name('user.a'), value: Uint8Array.of(0, 1, 0) },
  { kind: 'getxattr', size: 256, name: name('security.selinux') },
  { kind: 'listxattr', size: 0 },
  { kind: 'removexattr', name: name('user.a') },
  { kind: 'flush', fh: 3n, lockOwner: 0xabcn },
  { kind: 'opendir', flags: 0o200000, openFlags: 0 },
  { kind: 'readdir', fh: 4n, offset: 0n, size: 4096, readFlags: 0, lockOwner: 0n, flags: 0 },
  { kind: 'releasedir', fh: 4n, flags: 0, releaseFlags: 0, lockOwner: 0n },
  { kind: 'fsyncdir', fh: 4n, fsyncFlags: 0 },
  { kind: 'getlk', fh: 3n, owner: 77n, lk: { start: 0n, end: 0xffff_ffff_ffff_ffffn, type: 1, pid: 100 }, lkFlags: 0 },
  { kind: 'setlk', fh: 3n, owner: 77n, lk: { start: 10n, end: 20n, type: 0, pid: 100 }, lkFlags: 1 },
  { kind: 'setlkw', fh: 3n, owner: 77n, lk: { start: 10n, end: 20n, type: 2, pid: 100 }, lkFlags: 0 },
  { kind: 'access', mask: 7 },
  { kind: 'create', flags: 0o100101, mode: 0o100600, umask: 0o077, openFlags: 1, name: name('new.txt') },
  { kind: 'interrupt', unique: 44n },
  { kind: 'fallocate', fh: 3n, offset: 0n, length: 1n << 30n, mode: 3 },
  { kind: 'readdirplus', fh: 4n, offset: 7n, size: 8192, readFlags: 0, lockOwner: 0n, flags: 0 },
  { kind: 'lseek', fh: 3n, offset: 100n, whence: 3 },
  { kind: 'copyFileRange', fhIn: 1n, offIn: 2n, nodeidOut: 3n, fhOut: 4n, offOut: 5n, len: 6n, flags: 0n },
  { kind: 'setupmapping', fh: 3n, foffset: 0x200000n, len: 0x200000n, flags: 3n, moffset: 0x400000n },
  { kind: 'removemapping', mappings: [{ moffset: 0n, len: 0x200000n }] },
  { kind: 'syncfs' },
  { kind: 'tmpfile', flags: 0o20200002, mode: 0o100600, umask: 0o022, openFlags: 0, name: name('/') },
];

test('every op decodes from the bytes the kernel sends, header fields included', () => {
  const kinds = new Set<string>();
  for (const body of SAMPLES) {
    const bytes = encodeRequest(body, { unique: 0x8000_0000_0000_0001n, nodeid: 77n, uid: 1, gid: 2, pid: 3 });
    const r = decodeRequest(bytes);
    assert.equal(r.body, body, body.kind);
    assert.equal(r.header, { len: bytes.byteLength, opcode: opcodeOf(body), unique: 0x8000_0000_0000_0001n, nodeid: 77n, uid: 1, gid: 2, pid: 3, totalExtlen: 0 });
    kinds.add(body.kind);
  }
  assert.is(kinds.size, 45, 'every kind but unknown has a sample');
});

test('SETXATTR with FUSE_SETXATTR_EXT negotiated carries the 16-byte struct with setxattr_flags', () => {
  const body: FuseRequestBody = { kind: 'setxattr', size: 2, flags: 0, setxattrFlags: FUSE_SETXATTR_ACL_KILL_SGID, name: name('system.posix_acl_access'), value: name('ab') };
  const bytes = encodeRequest(body, {}, { setxattrExt: true });
  assert.is(bytes.byteLength, 40 + 16 + 24 + 2);
  assert.equal(decodeRequest(bytes, { setxattrExt: true }).body, body);
});

test('names are views of the input, not copies, and keep every byte (no UTF-8 decoding)', () => {
  const raw = Uint8Array.of(0xff, 0xfe, 0x80, 0x41);
  const bytes = encodeRequest({ kind: 'lookup', name: raw });
  const r = decodeRequest(bytes);
  assert.ok(r.body.kind === 'lookup' && r.body.name.buffer === bytes.buffer);
  if (r.body.kind === 'lookup') assert.equal([...r.body.name], [...raw]);
  assert.is(nameToString(raw), '\ufffd\ufffd\ufffdA');
});

test('isSingleComponent refuses empty, ".", "..", and names with "/"', () => {
  for (const ok of ['a', '...', '.hidden', '..x', 'a b']) assert.ok(isSingleComponent(utf8(ok)), ok);
  for (const bad of ['', '.', '..', 'a/b', '/', '/etc']) assert.not.ok(isSingleComponent(utf8(bad)), bad);
});

test('descriptors: fixed parts are gathered across them, WRITE data stays in the guest buffers', () => {
  const page1 = new Uint8Array(4096).fill(1);
  const page2 = new Uint8Array(100).fill(2);
  const full = encodeRequest({ kind: 'write', fh: 1n, offset: 0n, size: 4196, writeFlags: 0, lockOwner: 0n, flags: 0, data: [page1, page2] });
  const headerAndArgs = full.subarray(0, 80);
  // Split mid-header and mid-struct, as an unfriendly driver might.
  const r = decodeRequest([headerAndArgs.subarray(0, 13), headerAndArgs.subarray(13, 57), headerAndArgs.subarray(57), page1, page2]);
  assert.is(r.body.kind, 'write');
  if (r.body.kind !== 'write') return;
  assert.is(r.body.size, 4196);
  assert.is(r.body.data.length, 2);
  assert.ok(r.body.data[0].buffer === page1.buffer && r.body.data[1].buffer === page2.buffer, 'no copy');
  const lookup = encodeRequest({ kind: 'lookup', name: utf8('split-name') });
  assert.equal(decodeRequest([lookup.subarray(0, 45), lookup.subarray(45)]).body, decodeRequest(lookup).body);
  assert.equal(decodeRequest([lookup]).body, decodeRequest(lookup).body);
});

test('unknown opcodes decode to { kind: "unknown" } for an ENOSYS reply, whatever follows the header', () => {
  for (const opcode of [0, 7, 19, 37, 39, 40, 41, 52, 4096, 0xffff_ffff]) {
    const r = decodeRequest(buildRequest(opcode, [Uint8Array.of(1, 2, 3)], { unique: 9n }));
    assert.equal(r.body, { kind: 'unknown', opcode });
    assert.is(r.header.unique, 9n);
  }
});

test('extensions: total_extlen × 8 bytes at the end are split off; too many is an error', () => {
  const ext = Uint8Array.from({ length: 16 }, (_, i) => i);
  const r = decodeRequest(encodeRequest({ kind: 'mkdir', mode: 0o40755, umask: 0, name: utf8('d') }, { extensions: ext }));
  assert.equal(r.body, { kind: 'mkdir', mode: 0o40755, umask: 0, name: utf8('d') });
  assert.is(r.header.totalExtlen, 2);
  assert.equal([...r.extensions], [...ext]);
  expectReason(encodeRequest({ kind: 'statfs' }, { totalExtlen: 1 }), 'bad-extension-length');
  expectReason(encodeRequest({ kind: 'lookup', name: utf8('abcdefg') }, { totalExtlen: 2 }), 'bad-extension-length');
  // One 8-byte unit taken from "abcdefg\0" leaves no name: the args are then empty.
  expectReason(encodeRequest({ kind: 'lookup', name: utf8('abcdefg') }, { totalExtlen: 1 }), 'missing-nul');
});

test('a header shorter than 40 bytes is short-header, with no opcode or unique to blame', () => {
  for (const n of [0, 1, 39]) {
    const err = expectReason(encodeRequest({ kind: 'statfs' }).subarray(0, n), 'short-header');
    assert.is(err.opcode, undefined);
    assert.is(err.unique, undefined);
  }
  expectReason([new Uint8Array(20), new Uint8Array(19)], 'short-header');
});

test('len must equal the bytes given, and the error names opcode and unique', () => {
  for (const body of SAMPLES) {
    const bytes = encodeRequest(body, { unique: 31n });
    for (const len of [bytes.byteLength - 1, bytes.byteLength + 1, 0, 0xffff_ffff]) {
      const err = expectReason(encodeRequest(body, { unique: 31n, len }), 'length-mismatch');
      assert.is(err.opcode, opcodeOf(body));
      assert.is(err.unique, 31n);
    }
    // Bytes cut off the end with len left alone: the request is shorter than it says.
    expectReason(bytes.subarray(0, bytes.byteLength - 1), bytes.byteLength > 40 ? 'length-mismatch' : 'short-header');
  }
});

const NAMED_END = new Set(['lookup', 'unlink', 'rmdir', 'removexattr', 'symlink', 'mknod', 'mkdir', 'rename', 'rename2', 'link', 'getxattr', 'create', 'tmpfile']);
const CUT_REASONS = new Set<FuseDecodeErrorReason>(['short-body', 'missing-nul', 'size-mismatch', 'count-mismatch', 'empty-name']);

test('every op: args cut short at any byte (len kept consistent) are refused', () => {
  for (const body of SAMPLES) {
    const args = concat(requestArgs(body));
    for (let n = 0; n < args.byteLength; n++) {
      const err = decodeError(() => decodeRequest(buildRequest(opcodeOf(body), [args.subarray(0, n)])));
      assert.ok(CUT_REASONS.has(err.reason), `${body.kind} cut to ${n}: ${err.reason}`);
    }
  }
});

test('every op: a byte after the last argument is refused (INIT alone may be longer)', () => {
  const expected: Partial<Record<string, FuseDecodeErrorReason>> = {
    write: 'size-mismatch', setxattr: 'size-mismatch', batchForget: 'count-mismatch', removemapping: 'count-mismatch',
  };
  for (const body of SAMPLES) {
    const bytes = buildRequest(opcodeOf(body), [...requestArgs(body), Uint8Array.of(0)]);
    if (body.kind === 'init') {
      assert.equal(decodeRequest(bytes).body, body);
      continue;
    }
    expectReason(bytes, expected[body.kind] ?? 'trailing-bytes');
  }
});

test('every op ending in a name: the last NUL replaced is missing-nul', () => {
  for (const body of SAMPLES.filter((b) => NAMED_END.has(b.kind))) {
    const args = concat(requestArgs(body));
    args[args.byteLength - 1] = 0x78;
    expectReason(buildRequest(opcodeOf(body), [args]), 'missing-nul');
  }
});

test('empty names, targets and xattr names are refused', () => {
  const empty = new Uint8Array(0);
  const cases: FuseRequestBody[] = [
    { kind: 'lookup', name: empty },
    { kind: 'unlink', name: empty },
    { kind: 'symlink', name: utf8('a'), target: empty },
    { kind: 'symlink', name: empty, target: utf8('a') },
    { kind: 'rename', newdir: 1n, oldname: utf8('a'), newname: empty },
    { kind: 'link', oldnodeid: 1n, newname: empty },
    { kind: 'create', flags: 0, mode: 0, umask: 0, openFlags: 0, name: empty },
    { kind: 'getxattr', size: 0, name: empty },
    { kind: 'setxattr', size: 0, flags: 0, setxattrFlags: 0, name: empty, value: empty },
  ];
  for (const body of cases) expectReason(encodeRequest(body), 'empty-name');
  expectReason(buildRequest(1, []), 'missing-nul');
  expectReason(buildRequest(6, [cstr('only-one-name')]), 'missing-nul');
});

test('sizes and counts that claim more (or less) than is there', () => {
  const write = (size: number, data: Uint8Array) => encodeRequest({ kind: 'write', fh: 0n, offset: 0n, size, writeFlags: 0, lockOwner: 0n, flags: 0, data: [data] });
  expectReason(write(4, utf8('abc')), 'size-mismatch');
  expectReason(write(0xffff_ffff, utf8('abc')), 'size-mismatch');
  expectReason(write(2, utf8('abc')), 'size-mismatch');
  assert.equal(decodeRequest(write(0, new Uint8Array(0))).body, { kind: 'write', fh: 0n, offset: 0n, size: 0, writeFlags: 0, lockOwner: 0n, flags: 0, data: [] });
  expectReason(buildRequest(16, [new Uint8Array(39)]), 'short-body');
  const setxattr = (size: number) => encodeRequest({ kind: 'setxattr', size, flags: 0, setxattrFlags: 0, name: utf8('user.x'), value: utf8('vv') });
  expectReason(setxattr(3), 'size-mismatch');
  expectReason(setxattr(0xffff_ffff), 'size-mismatch');
  const one = { nodeid: 1n, nlookup: 1n };
  const forget = (count: number, n: number) => buildRequest(42, [Uint8Array.of(count & 0xff, (count >>> 8) & 0xff, (count >>> 16) & 0xff, count >>> 24, 0, 0, 0, 0), ...requestArgs({ kind: 'batchForget', forgets: Array(n).fill(one) }).slice(1)]);
  assert.equal(decodeRequest(forget(3, 3)).body, { kind: 'batchForget', forgets: [one, one, one] });
  expectReason(forget(4, 3), 'count-mismatch');
  expectReason(forget(2, 3), 'count-mismatch');
  expectReason(forget(0xffff_ffff, 3), 'count-mismatch');
  const removemapping = buildRequest(49, [hex('ffffffff'), new Uint8Array(16)]);
  expectReason(removemapping, 'count-mismatch');
});

test('decode errors say which op and what', () => {
  const err = expectReason(buildRequest(35, [new Uint8Array(8)], { unique: 77n }), 'short-body');
  assert.is(err.name, 'FuseDecodeError');
  assert.ok(err instanceof Error);
  assert.match(err.message, 'FUSE CREATE (unique 77)');
  assert.match(err.message, 'fuse_create_in needs 16 bytes, 8 left');
});

test.run();
