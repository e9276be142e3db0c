// vmm/confined-fs.ts: the fd-relative file-system calls of the coming virtio-fs server, over a
// temporary directory: each call works, and an escape suite shows that no name, symlink, swap,
// rename or magic link reaches outside the share. Every test runs in a bed (base/share shared,
// base/outside beside it holding a secret) that checks afterwards that no fd leaked (error paths
// included) and that nothing outside the share was created, changed or read (the secret's atime
// is older than its mtime, so a read would move it under relatime as well as strictatime).
//
// The tests run as root: permission checks (EACCES) never refuse anything here, so every refusal
// seen comes from the resolution flags and the checks in addon/fs_at.cc.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  closeSync,
  constants as C,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
  openSync,
  linkSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cfs from '../../src/vmm/confined-fs.js';
import { native as addon } from '../../src/vmm/native.js';
import { SyscallError } from '../../src/vmm/errors.js';
import { testUnless } from '../helpers/skip.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const openFds = (): number => readdirSync('/proc/self/fd').length;
const O_PATH = 0o10000000;
const O_TMPFILE = 0o20200000;
const SECRET = 'the secret outside the share';

interface Bed {
  base: string;
  share: string;
  outside: string;
  secret: string;
  root: number;
  /** Records an fd the test was handed; the bed closes it before counting. */
  keep(fd: number): number;
  /** An O_PATH handle on `name` in the share root, kept. */
  look(name: string): cfs.Entry;
  /** Keeps both fds of what createAt returned. */
  created(c: cfs.CreatedFile): cfs.CreatedFile;
}

/** What outside the share a test could touch: base's entries and all of base/outside, by lstat. */
function snapshotOutside(base: string): string {
  const lines: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (dir === base && name === 'share') continue;
      const p = join(dir, name);
      const s = lstatSync(p, { bigint: true });
      // A directory's atime moves with this very listing; a file's only when it is read.
      const atime = s.isDirectory() ? '' : ` a${s.atimeNs}`;
      lines.push(`${rel}${name} ${s.mode} ${s.uid}:${s.gid} ${s.size} ${s.nlink}${atime} m${s.mtimeNs} c${s.ctimeNs}`);
      if (s.isDirectory()) walk(p, `${rel}${name}/`);
    }
  };
  walk(base, '');
  return lines.join('\n');
}

interface BedOptions {
  /** The test moves things outside on purpose and checks them itself. */
  changesOutside?: boolean;
}

/** Runs body in a fresh bed; afterwards closes what it kept and checks fds and the outside. */
function withBed(body: (b: Bed) => void, opts: BedOptions = {}): void {
  const base = mkdtempSync(join(tmpdir(), 'tsvmm-confined-'));
  const share = join(base, 'share');
  const outside = join(base, 'outside');
  const secret = join(outside, 'secret');
  mkdirSync(share);
  mkdirSync(join(outside, 'dir'), { recursive: true });
  writeFileSync(secret, SECRET);
  // atime older than mtime: any read of the secret now moves its atime.
  utimesSync(secret, new Date(Date.UTC(2001, 0, 1)), new Date(Date.UTC(2002, 0, 1)));
  const kept: number[] = [];
  const before = openFds();
  const snap = snapshotOutside(base);
  try {
    const root = cfs.openRoot(share);
    kept.push(root);
    const keep = (fd: number): number => {
      kept.push(fd);
      return fd;
    };
    const look = (name: string): cfs.Entry => {
      const e = cfs.lookupAt(root, enc(name));
      keep(e.fd);
      return e;
    };
    const created = (c: cfs.CreatedFile): cfs.CreatedFile => {
      keep(c.fd);
      keep(c.ioFd);
      return c;
    };
    body({ base, share, outside, secret, root, keep, look, created });
    for (const fd of kept.splice(0)) closeSync(fd);
    assert.is(openFds(), before, 'open fds after the test (and its error paths) as before');
    if (!opts.changesOutside) {
      assert.is(snapshotOutside(base), snap, 'nothing outside the share was created, changed or read');
      assert.is(readFileSync(secret, 'utf8'), SECRET);
    }
  } finally {
    for (const fd of kept) closeSync(fd);
    rmSync(base, { recursive: true, force: true });
  }
}

/** Asserts fn throws a SyscallError with `code` (an UnsafeNameError when `unsafeName`). */
function refused(fn: () => unknown, code: string, unsafeName = false): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof SyscallError, `expected a SyscallError ${code}, got ${String(thrown)}`);
  assert.is(thrown.code, code, thrown.message);
  if (unsafeName) assert.instance(thrown, cfs.UnsafeNameError);
}

const typeOf = (s: cfs.InodeStat): number => s.mode & C.S_IFMT;

// The one /proc/self/fd fd the addon keeps for the process, opened before any count is taken.
closeSync(cfs.openRoot(tmpdir()));

// ---------------------------------------------------------------------------------------------
// The primitives

test('openRoot, statAt, statfsFd: the root is a directory; stat agrees with lstat', () =>
  withBed((b) => {
    const st = cfs.statAt(b.root);
    const ref = lstatSync(b.share, { bigint: true });
    assert.is(typeOf(st), C.S_IFDIR);
    assert.is(st.ino, ref.ino);
    assert.is(st.dev, ref.dev);
    assert.ok(st.mntId > 0n);
    const fs = cfs.statfsFd(b.root);
    assert.ok(fs.bsize > 0 && fs.namelen === 255 && fs.blocks > 0n);
    refused(() => cfs.openRoot(join(b.base, 'missing')), 'ENOENT');
    refused(() => cfs.openRoot(b.secret), 'ENOTDIR');
  }));

test('lookupAt: an O_PATH handle and a stat equal to lstat (times to the nanosecond)', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), 'hello');
    const e = b.look('f');
    const ref = lstatSync(join(b.share, 'f'), { bigint: true });
    assert.is(e.stat.ino, ref.ino);
    assert.is(e.stat.size, 5n);
    assert.is(e.stat.mode, Number(ref.mode));
    assert.is(e.stat.nlink, 1);
    assert.is(e.stat.mtimeSec * 1_000_000_000n + BigInt(e.stat.mtimeNsec), ref.mtimeNs);
    assert.is(e.stat.ctimeSec * 1_000_000_000n + BigInt(e.stat.ctimeNsec), ref.ctimeNs);
    assert.is(cfs.statAt(e.fd).ino, ref.ino);
    refused(() => cfs.lookupAt(b.root, enc('missing')), 'ENOENT');
    refused(() => cfs.lookupAt(e.fd, enc('x')), 'ENOTDIR');
    // A name that is not valid UTF-8 is just bytes.
    const raw = Uint8Array.of(0xff, 0xfe, 0x41);
    b.created(cfs.createAt(b.root, raw, C.O_RDWR, 0o600));
    const rawPath = Buffer.concat([Buffer.from(`${b.share}/`), raw]);
    assert.is(cfs.statAt(b.keep(cfs.lookupAt(b.root, raw).fd)).ino, lstatSync(rawPath, { bigint: true }).ino);
  }));

test('openFile: reads, writes, O_APPEND and O_TRUNC on the inode a handle holds; directories with O_DIRECTORY', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), 'abc');
    const e = b.look('f');
    const r = b.keep(cfs.openFile(e.fd, C.O_RDONLY));
    const buf = Buffer.alloc(8);
    assert.is(readSync(r, buf, 0, 8, 0), 3);
    assert.is(buf.subarray(0, 3).toString(), 'abc');
    const a = b.keep(cfs.openFile(e.fd, C.O_WRONLY | C.O_APPEND));
    writeSync(a, 'de');
    assert.is(readFileSync(join(b.share, 'f'), 'utf8'), 'abcde');
    b.keep(cfs.openFile(e.fd, C.O_RDWR | C.O_TRUNC));
    assert.is(statSync(join(b.share, 'f')).size, 0);
    const d = b.keep(cfs.openFile(b.root, C.O_RDONLY | C.O_DIRECTORY));
    assert.ok(cfs.readDir(d).length >= 2);
    refused(() => cfs.openFile(b.root, C.O_WRONLY), 'EISDIR');
    refused(() => cfs.openFile(e.fd, C.O_RDONLY | C.O_DIRECTORY), 'ENOTDIR');
  }));

test('createAt: creates with mode, O_EXCL refuses an existing name, without O_EXCL opens (and truncates) it', () =>
  withBed((b) => {
    const c = b.created(cfs.createAt(b.root, enc('n'), C.O_RDWR | C.O_EXCL, 0o640));
    assert.is(typeOf(c.stat), C.S_IFREG);
    assert.is(c.stat.mode, statSync(join(b.share, 'n')).mode);
    writeSync(c.ioFd, 'data');
    assert.is(cfs.statAt(c.fd).size, 4n, 'the O_PATH handle is the same inode');
    assert.is(cfs.statAt(c.fd).ino, c.stat.ino);
    refused(() => cfs.createAt(b.root, enc('n'), C.O_RDWR | C.O_EXCL, 0o640), 'EEXIST');
    const again = b.created(cfs.createAt(b.root, enc('n'), C.O_RDWR | C.O_TRUNC, 0o640));
    assert.is(again.stat.ino, c.stat.ino);
    assert.is(again.stat.size, 0n);
    mkdirSync(join(b.share, 'd'));
    refused(() => cfs.createAt(b.root, enc('d'), C.O_RDWR, 0o600), 'EISDIR');
    refused(() => cfs.createAt(b.root, enc('x'), C.O_RDWR | C.O_DIRECTORY, 0o600), 'EINVAL');
  }));

test('mkdirAt, mknodAt (file, FIFO, socket), symlinkAt, readlinkAt: entries of the right type', () =>
  withBed((b) => {
    const d = cfs.mkdirAt(b.root, enc('d'), 0o755);
    b.keep(d.fd);
    assert.is(typeOf(d.stat), C.S_IFDIR);
    b.keep(cfs.mkdirAt(d.fd, enc('inner'), 0o700).fd);
    assert.ok(statSync(join(b.share, 'd', 'inner')).isDirectory());
    refused(() => cfs.mkdirAt(b.root, enc('d'), 0o755), 'EEXIST');
    for (const [name, type] of [['reg', C.S_IFREG], ['fifo', C.S_IFIFO], ['sock', C.S_IFSOCK]] as const) {
      const e = cfs.mknodAt(b.root, enc(name), type | 0o644);
      b.keep(e.fd);
      assert.is(typeOf(e.stat), type, name);
    }
    const target = Uint8Array.of(0x2e, 0x2e, 0x2f, 0xff, 0x2f, 0x61); // "../\xff/a": stored, not resolved
    const l = cfs.symlinkAt(target, b.root, enc('l'));
    b.keep(l.fd);
    assert.is(typeOf(l.stat), C.S_IFLNK);
    assert.equal([...cfs.readlinkAt(l.fd)], [...target]);
    assert.equal([...readlinkSync(join(b.share, 'l'), { encoding: 'buffer' })], [...target]);
    refused(() => cfs.readlinkAt(d.fd), 'ENOENT');
  }));

test('linkAt, unlinkAt, renameAt2 (plain, NOREPLACE, EXCHANGE)', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'a'), 'A');
    writeFileSync(join(b.share, 'b'), 'B');
    const a = b.look('a');
    const h = cfs.linkAt(a.fd, b.root, enc('a2'));
    b.keep(h.fd);
    assert.is(h.stat.ino, a.stat.ino);
    assert.is(h.stat.nlink, 2);
    refused(() => cfs.linkAt(b.root, b.root, enc('dirlink')), 'EPERM');
    cfs.renameAt2(b.root, enc('a2'), b.root, enc('c'));
    assert.is(readFileSync(join(b.share, 'c'), 'utf8'), 'A');
    refused(() => cfs.renameAt2(b.root, enc('c'), b.root, enc('b'), cfs.RENAME_NOREPLACE), 'EEXIST');
    cfs.renameAt2(b.root, enc('c'), b.root, enc('b'), cfs.RENAME_EXCHANGE);
    assert.is(readFileSync(join(b.share, 'b'), 'utf8'), 'A');
    assert.is(readFileSync(join(b.share, 'c'), 'utf8'), 'B');
    refused(() => cfs.renameAt2(b.root, enc('b'), b.root, enc('c'), 4 /* RENAME_WHITEOUT */), 'EINVAL');
    cfs.unlinkAt(b.root, enc('c'));
    mkdirSync(join(b.share, 'd'));
    refused(() => cfs.unlinkAt(b.root, enc('d')), 'EISDIR');
    cfs.unlinkAt(b.root, enc('d'), { dir: true });
    assert.equal(readdirSync(b.share).sort(), ['a', 'b']);
  }));

test('chmodInode, chownInode, utimensInode, truncateInode: on O_PATH handles and on open fds', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), '0123456789');
    const e = b.look('f');
    const p = join(b.share, 'f');
    cfs.chmodInode(e.fd, 0o604);
    assert.is(statSync(p).mode & 0o7777, 0o604);
    const io = b.keep(cfs.openFile(e.fd, C.O_RDWR));
    cfs.chmodInode(io, 0o640);
    assert.is(statSync(p).mode & 0o7777, 0o640);
    cfs.chownInode(e.fd, 1234, 5678);
    assert.is(statSync(p).uid, 1234);
    assert.is(statSync(p).gid, 5678);
    cfs.chownInode(e.fd, cfs.ID_UNCHANGED, 0);
    assert.is(statSync(p).uid, 1234);
    assert.is(statSync(p).gid, 0);
    cfs.utimensInode(e.fd, { sec: 1000n, nsec: 5 }, { sec: -2n, nsec: 999_999_999 });
    const s = cfs.statAt(e.fd);
    assert.is([s.atimeSec, s.atimeNsec, s.mtimeSec, s.mtimeNsec].join(), '1000,5,-2,999999999');
    cfs.utimensInode(e.fd, 'omit', 'now');
    assert.is(cfs.statAt(e.fd).atimeSec, 1000n);
    assert.ok(cfs.statAt(e.fd).mtimeSec > 1_600_000_000n);
    cfs.truncateInode(e.fd, 4);
    assert.is(statSync(p).size, 4);
    cfs.truncateInode(io, 2n);
    assert.is(statSync(p).size, 2);
    refused(() => cfs.truncateInode(b.root, 0), 'EISDIR');
  }));

test('readDir and seekDir: every entry once with a small budget, and resuming at a cookie', () =>
  withBed((b) => {
    const names = Array.from({ length: 300 }, (_, i) => `entry-${i}-${'x'.repeat(i % 40)}`);
    for (const n of names) writeFileSync(join(b.share, n), '');
    const d = b.keep(cfs.openFile(b.root, C.O_RDONLY | C.O_DIRECTORY));
    const all: cfs.DirEntry[] = [];
    for (let chunk = cfs.readDir(d, 1024); chunk.length > 0; chunk = cfs.readDir(d, 1024)) {
      assert.ok(chunk.length < 30, 'a 1 KiB budget returns a few entries a call');
      all.push(...chunk);
    }
    assert.equal(all.map((e) => dec(e.name)).sort(), ['.', '..', ...names].sort());
    const f = all.find((e) => dec(e.name) === names[7]);
    assert.ok(f && f.type === 8 /* DT_REG */ && f.ino === lstatSync(join(b.share, names[7]), { bigint: true }).ino);
    const mid = all[150];
    cfs.seekDir(d, mid.off);
    const rest: string[] = [];
    for (let chunk = cfs.readDir(d, 4096); chunk.length > 0; chunk = cfs.readDir(d, 4096)) rest.push(...chunk.map((e) => dec(e.name)));
    assert.equal(rest, all.slice(151).map((e) => dec(e.name)));
    cfs.seekDir(d, 0n);
    refused(() => cfs.readDir(d, 8), 'EINVAL');
    assert.is(cfs.readDir(d, 1 << 20).length, all.length);
  }));

test('xattrs: set, get, size, list, remove on a file and a directory through O_PATH handles', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), '');
    mkdirSync(join(b.share, 'd'));
    for (const h of [b.look('f').fd, b.look('d').fd]) {
      cfs.setXattr(h, enc('user.one'), enc('value-1'));
      cfs.setXattr(h, enc('user.two'), new Uint8Array(0));
      refused(() => cfs.setXattr(h, enc('user.one'), enc('v'), cfs.XATTR_CREATE), 'EEXIST');
      refused(() => cfs.setXattr(h, enc('user.none'), enc('v'), cfs.XATTR_REPLACE), 'ENODATA');
      assert.is(cfs.xattrSize(h, enc('user.one')), 7);
      assert.is(dec(cfs.getXattr(h, enc('user.one'), 64)), 'value-1');
      assert.is(cfs.getXattr(h, enc('user.two'), 64).length, 0);
      refused(() => cfs.getXattr(h, enc('user.one'), 3), 'ERANGE');
      const list = dec(cfs.listXattr(h)).split('\0').filter((s) => s.startsWith('user.'));
      assert.equal(list.sort(), ['user.one', 'user.two']);
      assert.ok(cfs.listXattrSize(h) >= 18);
      cfs.removeXattr(h, enc('user.one'));
      refused(() => cfs.getXattr(h, enc('user.one'), 64), 'ENODATA');
    }
    const io = b.keep(cfs.openFile(b.look('f').fd, C.O_RDONLY));
    assert.is(cfs.getXattr(io, enc('user.two'), 8).length, 0, 'an open fd is used as it is');
    refused(() => cfs.getXattr(io, new Uint8Array(0), 8), 'EINVAL', true);
  }));

test('lseek SEEK_DATA/SEEK_HOLE, copyFileRange, fsync', () =>
  withBed((b) => {
    const c = b.created(cfs.createAt(b.root, enc('f'), C.O_RDWR, 0o600));
    // A sparse file: a hole, 4 KiB of data at 512 KiB, then a hole up to 1 MiB.
    ftruncateSync(c.ioFd, 1 << 20);
    assert.is(cfs.statAt(c.fd).size, 1n << 20n);
    writeSync(c.ioFd, Buffer.alloc(4096, 7), 0, 4096, 512 * 1024);
    assert.is(cfs.lseek(c.ioFd, 0, cfs.SEEK_DATA), 512n * 1024n);
    assert.is(cfs.lseek(c.ioFd, 0, cfs.SEEK_HOLE), 0n);
    refused(() => cfs.lseek(c.ioFd, 2 << 20, cfs.SEEK_DATA), 'ENXIO');
    const out = b.created(cfs.createAt(b.root, enc('g'), C.O_RDWR, 0o600));
    assert.is(cfs.copyFileRange(c.ioFd, 512 * 1024, out.ioFd, 100, 4096), 4096);
    const buf = Buffer.alloc(4096);
    assert.is(readSync(out.ioFd, buf, 0, 4096, 100), 4096);
    assert.ok(buf.every((x) => x === 7));
    cfs.fsync(out.ioFd);
    cfs.fsync(out.ioFd, true);
    refused(() => cfs.fsync(out.fd), 'EBADF');
  }));

test('OFD locks: a conflict is reported without waiting, and released locks can be taken', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), 'x'.repeat(100));
    const h = b.look('f');
    const one = b.keep(cfs.openFile(h.fd, C.O_RDWR));
    const two = b.keep(cfs.openFile(h.fd, C.O_RDWR));
    assert.ok(cfs.setLock(one, cfs.F_WRLCK, 0, 10));
    assert.not.ok(cfs.setLock(two, cfs.F_RDLCK, 5, 1), 'a conflicting lock is refused at once');
    const conflict = cfs.getLock(two, cfs.F_RDLCK, 0, 0);
    assert.equal(conflict, { type: cfs.F_WRLCK, start: 0n, length: 10n, pid: -1 });
    assert.ok(cfs.setLock(two, cfs.F_RDLCK, 10, 5), 'a range beside it is free');
    assert.ok(cfs.setLock(one, cfs.F_UNLCK, 0, 10));
    assert.is(cfs.getLock(two, cfs.F_WRLCK, 0, 10), undefined);
    assert.ok(cfs.setLock(two, cfs.F_WRLCK, 0, 10));
  }));

test('FdHandle: owns one fd; dispose() closes it once; use after dispose throws', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), '');
    const h = new cfs.FdHandle(cfs.lookupAt(b.root, enc('f')).fd);
    assert.ok(h.fd >= 0 && !h.disposed);
    h.dispose();
    h.dispose();
    assert.ok(h.disposed);
    assert.throws(() => h.fd, /used after dispose/);
    assert.throws(() => new cfs.FdHandle(-1), RangeError);
  }));

// ---------------------------------------------------------------------------------------------
// The escape suite: each case is refused (or stays inside), and the bed checks the outside.

const BAD_NAMES: [string, Uint8Array, string][] = [
  ['..', enc('..'), 'EINVAL'],
  ['.', enc('.'), 'EINVAL'],
  ['a/b', enc('a/b'), 'EINVAL'],
  ['/etc', enc('/etc'), 'EINVAL'],
  ['empty', new Uint8Array(0), 'EINVAL'],
  ['NUL inside', enc('secret\0x'), 'EINVAL'],
  ['../outside/secret', enc('../outside/secret'), 'EINVAL'],
  ['256 bytes', enc('n'.repeat(256)), 'ENAMETOOLONG'],
];

for (const [label, name, code] of BAD_NAMES) {
  test(`escape: the name '${label}' is refused by every call that takes a name, before any syscall`, () =>
    withBed((b) => {
      mkdirSync(join(b.share, 'a'));
      writeFileSync(join(b.share, 'a', 'b'), 'inside');
      const f = b.look('a').fd;
      refused(() => cfs.lookupAt(b.root, name), code, true);
      refused(() => cfs.createAt(b.root, name, C.O_RDWR, 0o600), code, true);
      refused(() => cfs.mkdirAt(b.root, name, 0o700), code, true);
      refused(() => cfs.mknodAt(b.root, name, C.S_IFREG | 0o600), code, true);
      refused(() => cfs.symlinkAt(enc('x'), b.root, name), code, true);
      refused(() => cfs.linkAt(f, b.root, name), code, true);
      refused(() => cfs.unlinkAt(b.root, name), code, true);
      refused(() => cfs.renameAt2(b.root, enc('a'), b.root, name), code, true);
      refused(() => cfs.renameAt2(b.root, name, b.root, enc('z')), code, true);
      assert.equal(readdirSync(b.share), ['a']);
      assert.equal(readdirSync(join(b.share, 'a')), ['b']);
    }));
}

test('escape: with the TypeScript check bypassed, the addon refuses the same names itself (checkName)', () =>
  withBed((b) => {
    const fs = addon().fsAt;
    for (const [label, name, code] of BAD_NAMES) {
      for (const fn of [() => fs.lookupAt(b.root, name, false), () => fs.createAt(b.root, name, C.O_RDWR, 0o600), () => fs.mkdirAt(b.root, name, 0o700), () => fs.unlinkAt(b.root, name, false)]) {
        try {
          fn();
          assert.unreachable(`${label} was accepted`);
        } catch (e) {
          const err = e as { code?: string; syscall?: string };
          assert.is(err.code, code, label);
          assert.is(err.syscall, 'checkName', label);
        }
      }
    }
  }));

test('escape: a symlink to / is looked up as the symlink itself, and cannot be opened or walked through', () =>
  withBed((b) => {
    symlinkSync('/', join(b.share, 'root'));
    const l = b.look('root');
    assert.is(typeOf(l.stat), C.S_IFLNK);
    assert.is.not(l.stat.ino, lstatSync('/').ino);
    assert.is(dec(cfs.readlinkAt(l.fd)), '/');
    refused(() => cfs.openFile(l.fd, C.O_RDONLY), 'ELOOP');
    refused(() => cfs.openFile(l.fd, C.O_RDONLY | C.O_DIRECTORY), 'ELOOP');
    refused(() => cfs.lookupAt(l.fd, enc('etc')), 'ENOTDIR');
  }));

test('escape: a relative symlink to ../outside comes back as the link; lookups and creations through it fail', () =>
  withBed((b) => {
    symlinkSync('../outside', join(b.share, 'up'));
    const l = b.look('up');
    assert.is(typeOf(l.stat), C.S_IFLNK);
    assert.is.not(l.stat.ino, lstatSync(b.outside).ino);
    refused(() => cfs.lookupAt(l.fd, enc('secret')), 'ENOTDIR');
    refused(() => cfs.createAt(l.fd, enc('planted'), C.O_RDWR, 0o600), 'ENOTDIR');
    refused(() => cfs.mkdirAt(l.fd, enc('planted'), 0o700), 'ENOTDIR');
    refused(() => cfs.openFile(l.fd, C.O_RDONLY | C.O_DIRECTORY), 'ELOOP');
  }));

test('escape: an absolute symlink to the secret is never opened, truncated, chmod-ed or read through', () =>
  withBed((b) => {
    symlinkSync(b.secret, join(b.share, 'abs'));
    const l = b.look('abs');
    assert.is(typeOf(l.stat), C.S_IFLNK);
    assert.is(l.stat.size, BigInt(Buffer.byteLength(b.secret)), 'the link, not the secret');
    refused(() => cfs.openFile(l.fd, C.O_RDONLY), 'ELOOP');
    refused(() => cfs.openFile(l.fd, C.O_RDWR | C.O_TRUNC), 'ELOOP');
    refused(() => cfs.truncateInode(l.fd, 0), 'ELOOP');
    refused(() => cfs.chmodInode(l.fd, 0o777), 'EOPNOTSUPP');
    refused(() => cfs.getXattr(l.fd, enc('user.x'), 8), 'EOPNOTSUPP');
    refused(() => cfs.setXattr(l.fd, enc('user.x'), enc('v')), 'EOPNOTSUPP');
    refused(() => cfs.listXattr(l.fd), 'EOPNOTSUPP');
  }));

test('escape: createAt on a symlink name never follows it (O_EXCL: EEXIST; without: ELOOP), dangling or not', () =>
  withBed((b) => {
    symlinkSync(join(b.outside, 'planted'), join(b.share, 'dangling'));
    symlinkSync(b.secret, join(b.share, 'live'));
    for (const name of ['dangling', 'live']) {
      refused(() => cfs.createAt(b.root, enc(name), C.O_RDWR | C.O_EXCL, 0o600), 'EEXIST');
      refused(() => cfs.createAt(b.root, enc(name), C.O_RDWR | C.O_TRUNC, 0o600), 'ELOOP');
      refused(() => cfs.createAt(b.root, enc(name), C.O_WRONLY | C.O_APPEND, 0o600), 'ELOOP');
    }
  }));

test('escape: a symlink to /proc/self/root (a magic link) is the link itself and opens nothing', () =>
  withBed((b) => {
    symlinkSync('/proc/self/root', join(b.share, 'proc'));
    const l = b.look('proc');
    assert.is(typeOf(l.stat), C.S_IFLNK);
    refused(() => cfs.openFile(l.fd, C.O_RDONLY | C.O_DIRECTORY), 'ELOOP');
    refused(() => cfs.lookupAt(l.fd, enc('etc')), 'ENOTDIR');
  }));

test('escape: a symlink to /proc/self/fd/N (N an fd on the outside dir held by this process) opens nothing', () =>
  withBed((b) => {
    const outsideFd = b.keep(openSync(b.outside, C.O_RDONLY | C.O_DIRECTORY));
    symlinkSync(`/proc/self/fd/${outsideFd}`, join(b.share, 'magic'));
    const l = b.look('magic');
    assert.is(typeOf(l.stat), C.S_IFLNK);
    refused(() => cfs.openFile(l.fd, C.O_RDONLY | C.O_DIRECTORY), 'ELOOP');
    refused(() => cfs.lookupAt(l.fd, enc('secret')), 'ENOTDIR');
    refused(() => cfs.createAt(l.fd, enc('planted'), C.O_RDWR, 0o600), 'ENOTDIR');
  }));

test('escape: a directory swapped for a symlink to outside after lookup: creations through the old handle stay inside', () =>
  withBed((b) => {
    mkdirSync(join(b.share, 'd'));
    const d = b.look('d');
    renameSync(join(b.share, 'd'), join(b.share, 'd-moved'));
    symlinkSync(b.outside, join(b.share, 'd'));
    const c = b.created(cfs.createAt(d.fd, enc('new'), C.O_RDWR, 0o600));
    writeSync(c.ioFd, 'written');
    assert.is(readFileSync(join(b.share, 'd-moved', 'new'), 'utf8'), 'written');
    b.keep(cfs.mkdirAt(d.fd, enc('sub'), 0o700).fd);
    assert.ok(statSync(join(b.share, 'd-moved', 'sub')).isDirectory());
    refused(() => cfs.lookupAt(d.fd, enc('secret')), 'ENOENT');
    // A fresh lookup of the name now meets the symlink, as itself.
    assert.is(typeOf(b.look('d').stat), C.S_IFLNK);
  }));

test('escape: a file swapped for a symlink to the secret after lookup: openFile opens the held inode, not the secret', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), 'original');
    const f = b.look('f');
    unlinkSync(join(b.share, 'f'));
    symlinkSync(b.secret, join(b.share, 'f'));
    const io = b.keep(cfs.openFile(f.fd, C.O_RDWR | C.O_TRUNC));
    writeSync(io, 'overwrite');
    assert.is(cfs.statAt(io).ino, f.stat.ino);
    assert.is(cfs.statAt(io).nlink, 0, 'the unlinked original');
  }));

test('escape: a held directory renamed inside the share keeps its handle; lookups through it find its own entries only', () =>
  withBed((b) => {
    mkdirSync(join(b.share, 'a', 'x'), { recursive: true });
    mkdirSync(join(b.share, 'b'));
    writeFileSync(join(b.share, 'a', 'x', 'f'), 'f');
    const x = cfs.lookupAt(b.look('a').fd, enc('x'));
    b.keep(x.fd);
    cfs.renameAt2(b.look('a').fd, enc('x'), b.look('b').fd, enc('y'));
    assert.is(b.keep(cfs.lookupAt(x.fd, enc('f')).fd) >= 0, true);
    b.created(cfs.createAt(x.fd, enc('g'), C.O_RDWR, 0o600));
    b.keep(cfs.lookupAt(x.fd, enc('g')).fd);
    assert.equal(readdirSync(join(b.share, 'b', 'y')).sort(), ['f', 'g']);
    refused(() => cfs.lookupAt(x.fd, enc('..')), 'EINVAL', true);
  }));

test('escape: a held directory the HOST moves outside the share: reachable beneath it, never above it', () =>
  withBed(
    (b) => {
      // What happens: the handle follows the directory (an O_PATH fd holds the inode, not a path).
      // Everything stays beneath the moved directory, which the guest could already reach; its new
      // parent and siblings (the secret) stay out of reach. The server may notice by comparing mount
      // ids or by re-validating; the primitives cannot know that a host rename happened.
      mkdirSync(join(b.share, 'held'));
      writeFileSync(join(b.share, 'held', 'mine'), 'mine');
      symlinkSync('../secret', join(b.share, 'held', 'up'));
      const held = b.look('held');
      renameSync(join(b.share, 'held'), join(b.outside, 'held'));
      const mine = cfs.lookupAt(held.fd, enc('mine'));
      b.keep(mine.fd);
      assert.is(typeOf(mine.stat), C.S_IFREG);
      refused(() => cfs.lookupAt(held.fd, enc('..')), 'EINVAL', true);
      refused(() => cfs.lookupAt(held.fd, enc('secret')), 'ENOENT');
      const up = cfs.lookupAt(held.fd, enc('up'));
      b.keep(up.fd);
      assert.is(typeOf(up.stat), C.S_IFLNK);
      refused(() => cfs.openFile(up.fd, C.O_RDONLY), 'ELOOP');
      const s = lstatSync(b.secret, { bigint: true });
      assert.is(readFileSync(b.secret, 'utf8'), SECRET);
      assert.ok(s.atimeNs < s.mtimeNs, 'the secret was not read');
      assert.equal(readdirSync(b.outside).sort(), ['dir', 'held', 'secret']);
      assert.equal(readdirSync(join(b.outside, 'held')).sort(), ['mine', 'up']);
    },
    { changesOutside: true },
  ));

test('escape: linkAt of a symlink handle that points at the secret links the symlink, not the secret', () =>
  withBed((b) => {
    symlinkSync(b.secret, join(b.share, 'abs'));
    const l = b.look('abs');
    const h = cfs.linkAt(l.fd, b.root, enc('abs2'));
    b.keep(h.fd);
    assert.is(typeOf(h.stat), C.S_IFLNK);
    assert.is(h.stat.ino, l.stat.ino);
    assert.is(h.stat.nlink, 2);
    assert.is(lstatSync(b.secret).nlink, 1);
  }));

test('escape: linkAt only links inodes held through the share; the names it creates are confined', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), 'f');
    const f = b.look('f');
    mkdirSync(join(b.share, 'd'));
    const d = b.look('d');
    b.keep(cfs.linkAt(f.fd, d.fd, enc('f2')).fd);
    assert.is(lstatSync(join(b.share, 'd', 'f2')).ino, lstatSync(join(b.share, 'f')).ino);
    refused(() => cfs.linkAt(d.fd, b.root, enc('d2')), 'EPERM');
    refused(() => cfs.linkAt(f.fd, b.root, enc('../outside/f3')), 'EINVAL', true);
    refused(() => cfs.linkAt(f.fd, f.fd, enc('x')), 'ENOTDIR');
  }));

test('escape: mknodAt refuses character and block devices (EPERM, even as root) and unknown mode bits', () =>
  withBed((b) => {
    refused(() => cfs.mknodAt(b.root, enc('null'), C.S_IFCHR | 0o666), 'EPERM');
    refused(() => cfs.mknodAt(b.root, enc('disk'), C.S_IFBLK | 0o666), 'EPERM');
    refused(() => cfs.mknodAt(b.root, enc('dir'), C.S_IFDIR | 0o755), 'EPERM');
    refused(() => cfs.mknodAt(b.root, enc('lnk'), C.S_IFLNK | 0o777), 'EPERM');
    assert.equal(readdirSync(b.share), []);
  }));

test('escape: openFile refuses O_CREAT, O_EXCL, O_PATH, O_NOFOLLOW, O_TMPFILE, O_NOCTTY and access mode 3', () =>
  withBed((b) => {
    writeFileSync(join(b.share, 'f'), 'f');
    const f = b.look('f');
    for (const flags of [C.O_CREAT, C.O_EXCL, O_PATH, C.O_NOFOLLOW, O_TMPFILE | C.O_RDWR, C.O_NOCTTY, C.O_RDWR | C.O_WRONLY]) {
      refused(() => cfs.openFile(f.fd, flags), 'EINVAL');
      refused(() => cfs.openFile(b.root, flags), 'EINVAL');
    }
    assert.equal(readdirSync(b.share), ['f']);
  }));

test('escape: openFile of a FIFO, socket or device in the share is refused without opening (it could block)', () =>
  withBed((b) => {
    const fifo = cfs.mknodAt(b.root, enc('fifo'), C.S_IFIFO | 0o666);
    const sock = cfs.mknodAt(b.root, enc('sock'), C.S_IFSOCK | 0o666);
    b.keep(fifo.fd);
    b.keep(sock.fd);
    refused(() => cfs.openFile(fifo.fd, C.O_RDONLY), 'ENXIO');
    refused(() => cfs.openFile(fifo.fd, C.O_WRONLY), 'ENXIO');
    refused(() => cfs.openFile(sock.fd, C.O_RDONLY), 'ENXIO');
    refused(() => cfs.createAt(b.root, enc('fifo'), C.O_RDONLY, 0o600), 'ENXIO');
    refused(() => cfs.truncateInode(fifo.fd, 0), 'ENXIO');
  }));

test('escape: chown and utimens on a symlink to the secret change the link, never the secret', () =>
  withBed((b) => {
    symlinkSync(b.secret, join(b.share, 'abs'));
    const l = b.look('abs');
    cfs.chownInode(l.fd, 4321, 4321);
    cfs.utimensInode(l.fd, { sec: 7n, nsec: 0 }, { sec: 8n, nsec: 0 });
    const ls = lstatSync(join(b.share, 'abs'));
    assert.is(ls.uid, 4321);
    assert.is(ls.mtimeMs, 8000);
  }));

test('escape: unlinkAt and renameAt2 cannot name anything outside; rename into a symlinked dir name fails', () =>
  withBed((b) => {
    symlinkSync(b.outside, join(b.share, 'out'));
    writeFileSync(join(b.share, 'f'), 'f');
    refused(() => cfs.unlinkAt(b.root, enc('../outside/secret')), 'EINVAL', true);
    const out = b.look('out');
    refused(() => cfs.unlinkAt(out.fd, enc('secret')), 'ENOTDIR');
    refused(() => cfs.renameAt2(b.root, enc('f'), out.fd, enc('f')), 'ENOTDIR');
    refused(() => cfs.renameAt2(out.fd, enc('secret'), b.root, enc('stolen')), 'ENOTDIR');
    // Renaming over the symlink replaces the link itself, inside the share.
    cfs.renameAt2(b.root, enc('f'), b.root, enc('out'));
    assert.is(readFileSync(join(b.share, 'out'), 'utf8'), 'f');
  }));

test('escape: a hard link the host made to the secret is the secret (shared content): documented, not refused', () =>
  withBed(
    (b) => {
      linkSync(b.secret, join(b.share, 'hl'));
      const h = b.look('hl');
      assert.is(h.stat.ino, lstatSync(b.secret, { bigint: true }).ino);
      unlinkSync(join(b.share, 'hl'));
    },
    { changesOutside: true },
  ));

const canMount = ((): string | undefined => {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a tmpfs inside the share';
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-mountprobe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', 'probe', dir], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) return `mount -t tmpfs fails here: ${(r.stderr || r.error?.message || '').trim()}`;
    spawnSync('umount', [dir], { timeout: 10_000 });
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();

testUnless(test, canMount, 'lookupAt: a mount inside the share is crossed (other mntId) unless sameMount (EXDEV)', () =>
  withBed((b) => {
    const mnt = join(b.share, 'mnt');
    mkdirSync(mnt);
    assert.is(spawnSync('mount', ['-t', 'tmpfs', 'tsvmm-test', mnt], { timeout: 10_000 }).status, 0);
    try {
      const e = cfs.lookupAt(b.root, enc('mnt'));
      const root = cfs.statAt(b.root);
      closeSync(e.fd);
      assert.is.not(e.stat.mntId, root.mntId);
      assert.is.not(e.stat.dev, root.dev);
      refused(() => cfs.lookupAt(b.root, enc('mnt'), { sameMount: true }), 'EXDEV');
    } finally {
      assert.is(spawnSync('umount', [mnt], { timeout: 10_000 }).status, 0);
    }
  }));

test.run();
