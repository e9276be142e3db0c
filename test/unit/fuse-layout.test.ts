// The fuse.h structs and constants of src/devices/virtiofs/fuse: the sizes the kernel checks,
// written out from fuse.h 7.38; then, where gcc and a 7.38 <linux/fuse.h> are installed, every
// struct size, member offset and constant compared with what the C compiler makes of the header
// itself, so a layout slip shared by decoder, encoder and test builder cannot hide.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as constants from '../../src/devices/virtiofs/fuse/constants.js';
import { FuseEncodeError } from '../../src/devices/virtiofs/fuse/errors.js';
import { defineStruct, pad, readStruct, writeStruct, type Layout } from '../../src/devices/virtiofs/fuse/layout.js';
import * as structs from '../../src/devices/virtiofs/fuse/structs.js';
import { thrown } from '../helpers/fuse-requests.js';
import { testUnless } from '../helpers/skip.js';

const {
  FUSE_ATTR, FUSE_ATTR_OUT, FUSE_COPY_FILE_RANGE_IN, FUSE_CREATE_IN, FUSE_CREATE_OUT, FUSE_DIRENT,
  FUSE_DIRENTPLUS, FUSE_ENTRY_OUT, FUSE_FILE_LOCK, FUSE_IN_HEADER, FUSE_INIT_IN, FUSE_INIT_OUT,
  FUSE_KSTATFS, FUSE_LK_IN, FUSE_OPEN_OUT, FUSE_OUT_HEADER, FUSE_READ_IN, FUSE_REMOVEMAPPING_IN,
  FUSE_REMOVEMAPPING_ONE, FUSE_SETATTR_IN, FUSE_SETUPMAPPING_IN, FUSE_SETXATTR_IN, FUSE_STATFS_OUT,
  FUSE_WRITE_IN,
} = structs;


test('struct sizes are those of fuse.h 7.38', () => {
  const sizes: [Layout<object>, number][] = [
    [FUSE_IN_HEADER, 40], [FUSE_OUT_HEADER, 16], [FUSE_ATTR, 88], [FUSE_ENTRY_OUT, 128],
    [FUSE_ATTR_OUT, 104], [FUSE_INIT_IN, 64], [FUSE_INIT_OUT, 64], [FUSE_OPEN_OUT, 16],
    [FUSE_KSTATFS, 80], [FUSE_STATFS_OUT, 80], [FUSE_FILE_LOCK, 24], [FUSE_LK_IN, 48],
    [FUSE_SETATTR_IN, 88], [FUSE_READ_IN, 40], [FUSE_WRITE_IN, 40], [FUSE_CREATE_IN, 16],
    [FUSE_SETXATTR_IN, 16], [FUSE_COPY_FILE_RANGE_IN, 56], [FUSE_SETUPMAPPING_IN, 40],
    [FUSE_REMOVEMAPPING_IN, 4], [FUSE_REMOVEMAPPING_ONE, 16], [FUSE_DIRENT, 24],
    [FUSE_DIRENTPLUS, 152], [FUSE_CREATE_OUT, 144],
  ];
  for (const [layout, size] of sizes) assert.is(layout.size, size, layout.name);
});

test('a few offsets fuse.h fixes: in_header.total_extlen, init_out.map_alignment/flags2, attr.flags', () => {
  const offset = (l: Layout<object>, key: string) => l.fields.find((f) => f.key === key)?.offset;
  assert.is(offset(FUSE_IN_HEADER, 'totalExtlen'), 36);
  assert.is(offset(FUSE_INIT_OUT, 'maxWrite'), 20);
  assert.is(offset(FUSE_INIT_OUT, 'maxPages'), 28);
  assert.is(offset(FUSE_INIT_OUT, 'mapAlignment'), 30);
  assert.is(offset(FUSE_INIT_OUT, 'flags2'), 32);
  assert.is(offset(FUSE_ATTR, 'flags'), 84);
  assert.is(offset(FUSE_ENTRY_OUT, 'attr'), 40);
  assert.is(offset(FUSE_SETATTR_IN, 'uid'), 76);
});

test('constants: opcodes, INIT flags and the flags2 split', () => {
  assert.is(constants.FUSE_LOOKUP, 1);
  assert.is(constants.FUSE_MKNOD, 8);
  assert.is(constants.FUSE_INIT, 26);
  assert.is(constants.FUSE_BATCH_FORGET, 42);
  assert.is(constants.FUSE_SETUPMAPPING, 48);
  assert.is(constants.FUSE_REMOVEMAPPING, 49);
  assert.is(constants.FUSE_SYNCFS, 50);
  assert.is(constants.FUSE_TMPFILE, 51);
  assert.is(constants.FUSE_MAP_ALIGNMENT, 0x0400_0000);
  assert.is(constants.FUSE_INIT_EXT, 0x4000_0000);
  assert.is(constants.FUSE_INIT_RESERVED, 0x8000_0000);
  assert.is(constants.initFlags2Bit(constants.FUSE_SECURITY_CTX), 1);
  assert.is(constants.initFlags2Bit(constants.FUSE_HAS_INODE_DAX), 2);
  assert.is(constants.initFlags2Bit(constants.FUSE_HAS_EXPIRE_ONLY), 8);
  assert.is(constants.opcodeName(constants.FUSE_COPY_FILE_RANGE), 'COPY_FILE_RANGE');
  assert.is(constants.opcodeName(7), 'opcode 7');
});

test('writeStruct zeroes padding, checks ranges and room; readStruct reads it back', () => {
  const layout = defineStruct('t', { a: 'u16', gap: pad(2), b: 'i32', c: 'u64' });
  assert.is(layout.size, 16);
  const buf = new Uint8Array(20).fill(0xee);
  assert.is(writeStruct(layout, buf, 2, { a: 0x1234, b: -2, c: 0x0102030405060708n }), 18);
  assert.equal([...buf], [0xee, 0xee, 0x34, 0x12, 0, 0, 0xfe, 0xff, 0xff, 0xff, 8, 7, 6, 5, 4, 3, 2, 1, 0xee, 0xee]);
  assert.equal(readStruct(layout, buf, 2), { a: 0x1234, b: -2, c: 0x0102030405060708n });
  const bad: [object, string][] = [
    [{ a: 0x10000, b: 0, c: 0n }, 'a'],
    [{ a: 1.5, b: 0, c: 0n }, 'a'],
    [{ a: 0, b: 2 ** 31, c: 0n }, 'b'],
    [{ a: 0, b: 0, c: -1n }, 'c'],
    [{ a: 0, b: 0, c: 1n << 64n }, 'c'],
    [{ a: 0, b: 0, c: 1 }, 'c'],
  ];
  for (const [value, field] of bad) {
    // The point is a value of the wrong shape: the cast stands for a caller outside the type system.
    const err = thrown(FuseEncodeError, () => writeStruct(layout, buf, 0, value as { a: number; b: number; c: bigint }));
    assert.is(err.reason, 'out-of-range');
    assert.match(err.message, `t.${field}`);
  }
  const tooSmall = thrown(FuseEncodeError, () => writeStruct(layout, new Uint8Array(15), 0, { a: 0, b: 0, c: 0n }));
  assert.is(tooSmall.reason, 'buffer-too-small');
});

/** Constants of constants.ts that are not in <linux/fuse.h> (or are checked from another header). */
const NOT_IN_FUSE_H = new Set(['FUSE_MIN_MINOR_VERSION', 'FUSE_COMPAT_INIT_IN_SIZE', 'FUSE_NAME_MAX', 'FUSE_MAX_REPLY_ERRNO', 'FUSE_ROOT_ID']);
const HEADER = '/usr/include/linux/fuse.h';

function cHeaderSkipReason(): string | undefined {
  if (!existsSync(HEADER)) return `${HEADER} is not installed (linux-libc-dev)`;
  const minor = /#define\s+FUSE_KERNEL_MINOR_VERSION\s+(\d+)/.exec(readFileSync(HEADER, 'utf8'))?.[1];
  if (minor !== String(constants.FUSE_KERNEL_MINOR_VERSION)) {
    return `${HEADER} is protocol 7.${minor}, the codec's structs are 7.${constants.FUSE_KERNEL_MINOR_VERSION}`;
  }
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'gcc is not installed';
  }
  return undefined;
}

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

testUnless(test, cHeaderSkipReason(), 'every struct offset and size and every constant match the C header', () => {
  const expected: string[] = [];
  const lines: string[] = [];
  const print = (label: string, expr: string, value: string) => {
    lines.push(`  printf("%s %llu\\n", "${label}", (unsigned long long)(${expr}));`);
    expected.push(`${label} ${value}`);
  };
  for (const layout of structs.FUSE_LAYOUTS) {
    if (layout.synthetic) continue;
    print(layout.name, `sizeof(struct ${layout.name})`, String(layout.size));
    for (const f of layout.fields) print(`${layout.name}.${f.key}`, `offsetof(struct ${layout.name}, ${snake(f.key)})`, String(f.offset));
  }
  for (const [name, value] of Object.entries(constants)) {
    if (typeof value === 'function' || NOT_IN_FUSE_H.has(name)) continue;
    // fuse.h writes bit 31 as (1 << 31), a negative int: compare 32-bit constants as uint32_t.
    print(name, typeof value === 'bigint' ? name : `(uint32_t)(${name})`, BigInt(value).toString());
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-fuse-h-'));
  try {
    const src = join(dir, 'layout.c');
    const exe = join(dir, 'layout');
    writeFileSync(src, ['#include <stdio.h>', '#include <stddef.h>', '#include <fcntl.h>', '#include <linux/fs.h>', '#include <linux/fuse.h>', 'int main(void) {', ...lines, '  return 0;', '}', ''].join('\n'));
    execFileSync('gcc', ['-o', exe, src], { stdio: ['ignore', 'ignore', 'pipe'] });
    const got = execFileSync(exe, { encoding: 'utf8' }).trimEnd().split('\n');
    assert.is(got.length, expected.length);
    const wrong = expected.flatMap((line, i) => (got[i] === line ? [] : [`ours: ${line}, fuse.h: ${got[i]}`]));
    assert.equal(wrong, []);
    assert.ok(expected.length > 300, `${expected.length} checks`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
