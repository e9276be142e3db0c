// The virtio-fs passthrough server, op by op over a temporary share: INIT negotiation, each op's
// success path against what node:fs sees in the share, and its main errors (ENOENT, EEXIST,
// ENOTEMPTY, EISDIR, ENOTDIR, EROFS on a read-only share, ENOSYS for what is not served).
// The tests run as root, so the server is privileged unless a test says otherwise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import {
  FUSE_ASYNC_READ, FUSE_ATTR_OUT, FUSE_DO_READDIRPLUS, FUSE_ENTRY_OUT, FUSE_GETXATTR_OUT, FUSE_INIT_OUT,
  FUSE_KERNEL_MINOR_VERSION, FUSE_LSEEK_OUT, FUSE_MAP_ALIGNMENT, FUSE_MAX_PAGES, FUSE_POSIX_LOCKS, FUSE_STATFS_OUT,
  FUSE_WRITE_OUT, FUSE_WRITEBACK_CACHE, FATTR_ATIME, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_SIZE, FATTR_UID,
  readStruct, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT,
} from '../../src/devices/virtiofs/fuse/index.js';
import { utf8 } from '../helpers/fuse-requests.js';
import { parseDirents, parseDirentsPlus } from '../helpers/fuse-replies.js';
import { O_RDONLY, O_WRONLY, ServerRig } from '../helpers/fuse-server-rig.js';
import { MAX_WRITE } from '../../src/devices/virtiofs/server/index.js';

const E = { EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EROFS: 30, ENOSYS: 38, ENOTEMPTY: 39, ENODATA: 61, EPROTO: 71, EOPNOTSUPP: 95 };
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function withRig(body: (r: ServerRig) => Promise<void>, options: Parameters<typeof ServerRig.create>[0] = {}, prepare?: (share: string) => void): Promise<void> {
  const r = ServerRig.create(options, prepare);
  try {
    await r.init();
    await body(r);
  } finally {
    await r.dispose();
  }
}

test('INIT: minor min(guest, 38), the flags offered and no others, 1 MiB writes; old minors and majors refused; requests before INIT get EIO', async () => {
  const r = ServerRig.create();
  try {
    assert.is(await r.errno({ kind: 'getattr', getattrFlags: 0, fh: 0n }), E.EIO);
    assert.is((await r.init(30)).errno, E.EPROTO);
    assert.is(await r.errno({ kind: 'init', major: 6, minor: 38, maxReadahead: 0, flags: 0, flags2: 0 }), E.EPROTO);
    const newer = readStruct(FUSE_INIT_OUT, (await r.call({ kind: 'init', major: 8, minor: 0, maxReadahead: 0, flags: 0, flags2: 0 })).body);
    assert.is(newer.major, 7);
    const ok = await r.init(40);
    assert.is(ok.errno, 0);
    const out = readStruct(FUSE_INIT_OUT, ok.body);
    assert.is(out.major, 7);
    assert.is(out.minor, FUSE_KERNEL_MINOR_VERSION);
    assert.ok(out.flags & FUSE_ASYNC_READ && out.flags & FUSE_DO_READDIRPLUS && out.flags & FUSE_MAX_PAGES);
    assert.is(out.flags & (FUSE_WRITEBACK_CACHE | FUSE_POSIX_LOCKS | FUSE_MAP_ALIGNMENT), 0);
    assert.is(out.maxWrite, MAX_WRITE);
    assert.is(out.maxPages, 256);
    assert.is((await r.init(31)).errno, E.EIO, 'a second INIT');
    assert.is(await r.errno({ kind: 'destroy' }), 0);
    assert.is(await r.errno({ kind: 'statfs' }), E.EIO, 'after DESTROY');
    assert.is(readStruct(FUSE_INIT_OUT, (await r.init(31)).body).minor, 31);
  } finally {
    await r.dispose();
  }
});

test('LOOKUP/GETATTR: attributes as the host has them; the same inode keeps its node ID; ENOENT, ENOTDIR', () =>
  withRig(async (r) => {
    writeFileSync(r.path('f'), 'hello');
    mkdirSync(r.path('d'));
    const e = await r.lookup(1n, 'f');
    const st = lstatSync(r.path('f'), { bigint: true });
    assert.ok(e.nodeid > 1n);
    assert.is(e.attr.ino, st.ino);
    assert.is(e.attr.size, 5n);
    assert.is(e.attr.mode, Number(st.mode));
    assert.is(e.entryValid, 1n);
    assert.is((await r.lookup(1n, 'f')).nodeid, e.nodeid);
    assert.is((await r.getattr(e.nodeid)).attr.ino, st.ino);
    assert.is((await r.getattr(1n)).attr.ino, lstatSync(r.share, { bigint: true }).ino);
    assert.is(await r.errno({ kind: 'lookup', name: utf8('missing') }), E.ENOENT);
    assert.is(await r.errno({ kind: 'lookup', name: utf8('x') }, e.nodeid), E.ENOTDIR);
    assert.is(await r.errno({ kind: 'getattr', getattrFlags: 0, fh: 0n }, 999n), E.EBADF);
  }));

test('CREATE/WRITE/READ/RELEASE: data round-trips, READ lands after the header, short at EOF; O_APPEND; EEXIST with O_EXCL', () =>
  withRig(async (r) => {
    const c = await r.create(1n, 'f');
    const node = c.entry.nodeid;
    assert.is(await r.write(node, c.open.fh, 0n, utf8('hello world')), 11);
    assert.is(readFileSync(r.path('f'), 'utf8'), 'hello world');
    const rd = await r.read(node, c.open.fh, 6n, 100);
    assert.is(rd.errno, 0);
    assert.is(dec(rd.body), 'world');
    assert.is((await r.read(node, c.open.fh, 100n, 10)).body.byteLength, 0);
    assert.is(await r.release(node, c.open.fh), 0);
    assert.is(await r.release(node, c.open.fh), E.EBADF);
    const fh = await r.open(node, O_WRONLY | 0o2000);
    await r.write(node, fh, 0n, utf8('!'));
    assert.is(readFileSync(r.path('f'), 'utf8'), 'hello world!');
    assert.is((await r.read(node, fh, 0n, 4)).errno, E.EBADF, 'read on a write-only fd');
    const big = new Uint8Array(MAX_WRITE).map((_v, i) => i & 0xff);
    const rw = await r.open(node);
    assert.is(await r.write(node, rw, 0n, big), MAX_WRITE);
    const back = await r.read(node, await r.open(node, O_RDONLY), 0n, MAX_WRITE);
    assert.is(back.body.byteLength, big.byteLength);
    assert.ok(Buffer.from(back.body).equals(big), 'READ returns what WRITE wrote');
    assert.is(await r.errno({ kind: 'create', flags: 0o200 | 2, mode: 0o644, umask: 0, openFlags: 0, name: utf8('f') }), E.EEXIST);
    // Without O_EXCL an existing file is opened and keeps its mode.
    const again = await r.create(1n, 'f', 2, 0o600);
    assert.is(again.entry.nodeid, node);
    assert.is(statSync(r.path('f')).mode & 0o777, 0o644);
    assert.is(await r.errno({ kind: 'flush', fh: again.open.fh, lockOwner: 0n }, node), 0);
    assert.is(await r.errno({ kind: 'fsync', fh: again.open.fh, fsyncFlags: 1 }, node), 0);
    assert.is(await r.errno({ kind: 'fsync', fh: 777n, fsyncFlags: 0 }, node), E.EBADF);
  }));

test('CREATE/MKDIR/MKNOD: the exact mode asked (not the VMM umask), owned by the caller when privileged, set-ID bits dropped for others', () =>
  withRig(async (r) => {
    const f = await r.create(1n, 'f', 2, 0o664, { uid: 1234, gid: 4321 });
    let st = statSync(r.path('f'));
    assert.is(st.mode & 0o7777, 0o664);
    assert.is([st.uid, st.gid].join(), '1234,4321');
    assert.is(f.entry.attr.uid, 1234);
    await r.mkdir(1n, 'd', 0o2775, { uid: 1234, gid: 4321 });
    st = statSync(r.path('d'));
    assert.ok(st.isDirectory());
    assert.is(st.mode & 0o7777, 0o2775);
    // A set-group-ID directory's group is inherited, as on any Linux file system.
    await r.mkdir((await r.lookup(1n, 'd')).nodeid, 'sub', 0o755, { uid: 1234, gid: 999 });
    assert.is(statSync(r.path('d/sub')).gid, 4321);
    // uid 1234 asks for set-user-ID on a file it will own: kept; group 1 it is not in: dropped.
    await r.ok(FUSE_ENTRY_OUT, { kind: 'mknod', mode: 0o100000 | 0o6755, rdev: 0, umask: 0, name: utf8('suid') }, 1n, { uid: 1234, gid: 1234 });
    assert.is(statSync(r.path('suid')).mode & 0o7777, 0o6755);
    await r.ok(FUSE_ENTRY_OUT, { kind: 'mknod', mode: 0o010000 | 0o644, rdev: 0, umask: 0, name: utf8('fifo') }, 1n);
    assert.ok(lstatSync(r.path('fifo')).isFIFO());
    assert.is(await r.errno({ kind: 'mknod', mode: 0o020000 | 0o644, rdev: 0x0101, umask: 0, name: utf8('chr') }), E.EPERM);
    assert.is(await r.errno({ kind: 'mkdir', mode: 0o755, umask: 0, name: utf8('d') }), E.EEXIST);
  }));

test('unprivileged: new inodes stay the VMM\'s, and a non-root caller cannot leave set-user-ID on them', () =>
  withRig(
    async (r) => {
      await r.create(1n, 'f', 2, 0o4755, { uid: 1000, gid: 1000 });
      const st = statSync(r.path('f'));
      assert.is(st.uid, 0);
      assert.is(st.mode & 0o7777, 0o755);
      const node = (await r.lookup(1n, 'f')).nodeid;
      await r.ok(FUSE_ATTR_OUT, setattr({ valid: FATTR_MODE, mode: 0o4777 }), node, { uid: 1000, gid: 1000 });
      assert.is(statSync(r.path('f')).mode & 0o7777, 0o777);
      await r.ok(FUSE_ATTR_OUT, setattr({ valid: FATTR_MODE, mode: 0o4777 }), node, { uid: 0, gid: 0 });
      assert.is(statSync(r.path('f')).mode & 0o7777, 0o4777, 'guest root may');
    },
    { privileged: false },
  ));

function setattr(v: Partial<{ valid: number; fh: bigint; size: bigint; mode: number; uid: number; gid: number; atime: bigint; mtime: bigint; atimensec: number; mtimensec: number }>) {
  return { kind: 'setattr' as const, valid: 0, fh: 0n, size: 0n, lockOwner: 0n, atime: 0n, mtime: 0n, ctime: 0n, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: 0, uid: 0, gid: 0, ...v };
}

test('SETATTR: mode, owner, size (by path and by fh), times; attributes after all of them', () =>
  withRig(async (r) => {
    writeFileSync(r.path('f'), '0123456789');
    const node = (await r.lookup(1n, 'f')).nodeid;
    let a = await r.ok(FUSE_ATTR_OUT, setattr({ valid: FATTR_MODE | FATTR_UID | FATTR_GID, mode: 0o600, uid: 7, gid: 8 }), node);
    assert.is(a.attr.mode & 0o7777, 0o600);
    assert.is([a.attr.uid, a.attr.gid].join(), '7,8');
    a = await r.ok(FUSE_ATTR_OUT, setattr({ valid: FATTR_SIZE, size: 4n }), node);
    assert.is(a.attr.size, 4n);
    const fh = await r.open(node, 2);
    a = await r.ok(FUSE_ATTR_OUT, setattr({ valid: FATTR_SIZE | FATTR_FH, fh, size: 2n }), node);
    assert.is(readFileSync(r.path('f'), 'utf8'), '01');
    a = await r.ok(FUSE_ATTR_OUT, setattr({ valid: FATTR_ATIME | FATTR_MTIME, atime: 1000n, mtime: 2000n, mtimensec: 5 }), node);
    assert.is(a.attr.mtime, 2000n);
    assert.is(a.attr.mtimensec, 5);
    assert.is(statSync(r.path('f')).atimeMs, 1_000_000);
    assert.is(await r.errno(setattr({ valid: FATTR_SIZE | FATTR_FH, fh: 999n, size: 0n }), node), E.EBADF);
  }));

test('READDIR/READDIRPLUS: every name once across small buffers, offsets are cookies; READDIRPLUS counts lookups except . and ..', () =>
  withRig(async (r) => {
    const names = Array.from({ length: 40 }, (_v, i) => `file-with-a-longish-name-${i}`);
    for (const n of names) writeFileSync(r.path(n), n);
    const fh = await r.opendir(1n);
    const seen: string[] = [];
    let offset = 0n;
    for (;;) {
      const rep = await r.call({ kind: 'readdir', fh, offset, size: 512, readFlags: 0, lockOwner: 0n, flags: 0 });
      assert.is(rep.errno, 0);
      const ents = parseDirents(rep.body);
      if (ents.length === 0) break;
      seen.push(...ents.map((e) => dec(e.name)));
      offset = ents[ents.length - 1].off;
    }
    assert.equal(seen.sort(), ['.', '..', ...names].sort());
    const plus = parseDirentsPlus((await r.call({ kind: 'readdirplus', fh, offset: 0n, size: 65536, readFlags: 0, lockOwner: 0n, flags: 0 })).body);
    assert.is(plus.length, names.length + 2);
    for (const e of plus) {
      const n = dec(e.name);
      if (n === '.' || n === '..') assert.is(e.entry.nodeid, 0n);
      else assert.is(e.entry.attr.size, BigInt(n.length));
    }
    assert.is(r.server.metrics().inodes, names.length);
    // The counted lookups: LOOKUP returns the same nodes, and one FORGET each frees them.
    const one = plus.find((e) => dec(e.name) === names[0])!;
    assert.is((await r.lookup(1n, names[0])).nodeid, one.entry.nodeid);
    await r.forget(one.entry.nodeid, 2n);
    assert.is(r.server.metrics().inodes, names.length - 1);
    assert.is(await r.release(1n, fh, true), 0);
    assert.is(await r.errno({ kind: 'readdir', fh, offset: 0n, size: 512, readFlags: 0, lockOwner: 0n, flags: 0 }), E.EBADF);
    const ffh = (await r.create(1n, 'x')).open.fh;
    assert.is(await r.errno({ kind: 'readdir', fh: ffh, offset: 0n, size: 512, readFlags: 0, lockOwner: 0n, flags: 0 }), E.EBADF, 'a file handle is no directory handle');
    assert.is(await r.errno({ kind: 'fsyncdir', fh: await r.opendir(1n), fsyncFlags: 0 }), 0);
  }));

test('UNLINK/RMDIR/RENAME/RENAME2: ENOENT, EISDIR, ENOTDIR, ENOTEMPTY, NOREPLACE, EXCHANGE, WHITEOUT refused', () =>
  withRig(async (r) => {
    writeFileSync(r.path('a'), 'A');
    writeFileSync(r.path('b'), 'B');
    mkdirSync(r.path('d'));
    writeFileSync(r.path('d/in'), '');
    const d = (await r.lookup(1n, 'd')).nodeid;
    assert.is(await r.errno({ kind: 'unlink', name: utf8('missing') }), E.ENOENT);
    assert.is(await r.errno({ kind: 'unlink', name: utf8('d') }), E.EISDIR);
    assert.is(await r.errno({ kind: 'rmdir', name: utf8('a') }), E.ENOTDIR);
    assert.is(await r.errno({ kind: 'rmdir', name: utf8('d') }), E.ENOTEMPTY);
    const rn = (oldname: string, newname: string, flags = 0, newdir = 1n) => r.errno({ kind: 'rename2', newdir, flags, oldname: utf8(oldname), newname: utf8(newname) });
    assert.is(await rn('a', 'b', RENAME_NOREPLACE), E.EEXIST);
    assert.is(await rn('a', 'b', RENAME_EXCHANGE), 0);
    assert.is(readFileSync(r.path('a'), 'utf8'), 'B');
    assert.is(await rn('a', 'b', RENAME_WHITEOUT), E.EINVAL);
    assert.is(await r.errno({ kind: 'rename', newdir: d, oldname: utf8('a'), newname: utf8('moved') }), 0);
    assert.is(readFileSync(r.path('d/moved'), 'utf8'), 'B');
    assert.is(await rn('missing', 'x'), E.ENOENT);
    assert.is(await rn('b', 'x', 0, 4242n), E.EBADF);
    assert.is(await r.errno({ kind: 'unlink', name: utf8('in') }, d), 0);
    assert.is(await r.errno({ kind: 'unlink', name: utf8('moved') }, d), 0);
    assert.is(await r.errno({ kind: 'rmdir', name: utf8('d') }), 0);
    assert.not.ok(existsSync(r.path('d')));
  }));

test('SYMLINK/READLINK/LINK: the target is stored verbatim; a link returns the same node ID with nlink 2', () =>
  withRig(async (r) => {
    const s = await r.ok(FUSE_ENTRY_OUT, { kind: 'symlink', name: utf8('s'), target: utf8('../../etc/passwd') });
    assert.is(readlinkSync(r.path('s')), '../../etc/passwd');
    const rl = await r.call({ kind: 'readlink' }, s.nodeid);
    assert.is(dec(rl.body), '../../etc/passwd');
    const f = (await r.create(1n, 'f')).entry;
    const l = await r.ok(FUSE_ENTRY_OUT, { kind: 'link', oldnodeid: f.nodeid, newname: utf8('g') });
    assert.is(l.nodeid, f.nodeid);
    assert.is(l.attr.nlink, 2);
    assert.is(await r.errno({ kind: 'link', oldnodeid: f.nodeid, newname: utf8('g') }), E.EEXIST);
    assert.is(await r.errno({ kind: 'readlink' }, f.nodeid), E.EINVAL);
  }));

test('xattrs: size queries, values, lists, removal; only user.* may be set', () =>
  withRig(async (r) => {
    const f = (await r.create(1n, 'f')).entry.nodeid;
    const set = (name: string, value: string, flags = 0) => r.errno({ kind: 'setxattr', size: value.length, flags, setxattrFlags: 0, name: utf8(name), value: utf8(value) }, f);
    assert.is(await set('user.colour', 'blue'), 0);
    assert.is(await set('user.colour', 'red', 1), E.EEXIST, 'XATTR_CREATE');
    assert.is(await set('trusted.x', 'y'), E.EOPNOTSUPP);
    assert.is(await set('security.capability', 'y'), E.EOPNOTSUPP);
    assert.is((await r.ok(FUSE_GETXATTR_OUT, { kind: 'getxattr', size: 0, name: utf8('user.colour') }, f)).size, 4);
    assert.is(dec((await r.call({ kind: 'getxattr', size: 64, name: utf8('user.colour') }, f)).body), 'blue');
    assert.is(await r.errno({ kind: 'getxattr', size: 2, name: utf8('user.colour') }, f), 34, 'ERANGE');
    assert.is(await r.errno({ kind: 'getxattr', size: 64, name: utf8('user.none') }, f), E.ENODATA);
    assert.ok((await r.ok(FUSE_GETXATTR_OUT, { kind: 'listxattr', size: 0 }, f)).size >= 12);
    assert.ok(dec((await r.call({ kind: 'listxattr', size: 4096 }, f)).body).includes('user.colour\0'));
    assert.is(await r.errno({ kind: 'removexattr', name: utf8('user.colour') }, f), 0);
    assert.is(await r.errno({ kind: 'removexattr', name: utf8('user.colour') }, f), E.ENODATA);
  }));

test('STATFS, FALLOCATE, LSEEK (SEEK_DATA/SEEK_HOLE), COPY_FILE_RANGE', () =>
  withRig(async (r) => {
    const st = await r.ok(FUSE_STATFS_OUT, { kind: 'statfs' });
    assert.ok(st.st.bsize > 0 && st.st.namelen === 255);
    const c = await r.create(1n, 'f');
    const node = c.entry.nodeid;
    assert.is(await r.errno({ kind: 'fallocate', fh: c.open.fh, offset: 0n, length: 8192n, mode: 0 }, node), 0);
    assert.is(statSync(r.path('f')).size, 8192);
    await r.write(node, c.open.fh, 0n, utf8('data'));
    const data = await r.ok(FUSE_LSEEK_OUT, { kind: 'lseek', fh: c.open.fh, offset: 0n, whence: 3 }, node);
    assert.is(data.offset, 0n);
    const hole = await r.ok(FUSE_LSEEK_OUT, { kind: 'lseek', fh: c.open.fh, offset: 0n, whence: 4 }, node);
    assert.ok(hole.offset > 0n && hole.offset <= 8192n);
    const d = await r.create(1n, 'g');
    const w = await r.ok(FUSE_WRITE_OUT, { kind: 'copyFileRange', fhIn: c.open.fh, offIn: 0n, nodeidOut: d.entry.nodeid, fhOut: d.open.fh, offOut: 2n, len: 4n, flags: 0n }, node);
    assert.is(w.size, 4);
    assert.is(readFileSync(r.path('g'), 'latin1'), '\0\0data');
  }));

test('a read-only share answers EROFS to every mutating op and still serves reads', () =>
  withRig(
    async (r) => {
      const f = (await r.lookup(1n, 'f')).nodeid;
      const n = utf8('n');
      const mutating = [
        { kind: 'mkdir', mode: 0o755, umask: 0, name: n },
        { kind: 'mknod', mode: 0o100644, rdev: 0, umask: 0, name: n },
        { kind: 'create', flags: 2, mode: 0o644, umask: 0, openFlags: 0, name: n },
        { kind: 'symlink', name: n, target: n },
        { kind: 'link', oldnodeid: f, newname: n },
        { kind: 'unlink', name: utf8('f') },
        { kind: 'rmdir', name: utf8('f') },
        { kind: 'rename', newdir: 1n, oldname: utf8('f'), newname: n },
        { kind: 'open', flags: O_WRONLY, openFlags: 0 },
        { kind: 'open', flags: O_RDONLY | 0o1000, openFlags: 0 },
        setattr({ valid: FATTR_MODE, mode: 0o777 }),
        { kind: 'setxattr', size: 1, flags: 0, setxattrFlags: 0, name: utf8('user.a'), value: n },
        { kind: 'removexattr', name: utf8('user.a') },
      ] as const;
      for (const body of mutating) assert.is(await r.errno(body, body.kind === 'open' || body.kind === 'setattr' || body.kind.endsWith('xattr') ? f : 1n), E.EROFS, body.kind);
      const fh = await r.open(f, O_RDONLY);
      assert.is(dec((await r.read(f, fh, 0n, 10)).body), 'ro');
      for (const body of [
        { kind: 'write', fh, offset: 0n, size: 1, writeFlags: 0, lockOwner: 0n, flags: 0, data: [n] },
        { kind: 'fallocate', fh, offset: 0n, length: 1n, mode: 0 },
        { kind: 'copyFileRange', fhIn: fh, offIn: 0n, nodeidOut: f, fhOut: fh, offOut: 0n, len: 1n, flags: 0n },
      ] as const) assert.is(await r.errno(body, f), E.EROFS, body.kind);
      assert.is(readFileSync(r.path('f'), 'utf8'), 'ro');
    },
    { readOnly: true },
    (share) => writeFileSync(`${share}/f`, 'ro'),
  ));

test('ENOSYS: ACCESS, locks, DAX mappings, SYNCFS, TMPFILE and unknown opcodes; INTERRUPT is not answered', () =>
  withRig(async (r) => {
    const lk = { start: 0n, end: 10n, type: 1, pid: 1 };
    for (const body of [
      { kind: 'access', mask: 4 },
      { kind: 'getlk', fh: 1n, owner: 1n, lk, lkFlags: 0 },
      { kind: 'setlk', fh: 1n, owner: 1n, lk, lkFlags: 0 },
      { kind: 'setlkw', fh: 1n, owner: 1n, lk, lkFlags: 0 },
      { kind: 'setupmapping', fh: 1n, foffset: 0n, len: 4096n, flags: 1n, moffset: 0n },
      { kind: 'removemapping', mappings: [{ moffset: 0n, len: 4096n }] },
      { kind: 'syncfs' },
      { kind: 'tmpfile', flags: 2, mode: 0o600, umask: 0, openFlags: 0, name: utf8('/') },
      { kind: 'unknown', opcode: 37 },
      { kind: 'unknown', opcode: 4000 },
    ] as const) assert.is(await r.errno(body), E.ENOSYS, body.kind);
    assert.is((await r.call({ kind: 'interrupt', unique: 5n })).used, 0);
    const m = r.server.metrics();
    assert.is(m.requests_ACCESS, 1);
    assert.ok(Number(m.errors_ENOSYS) >= 10);
  }));

test.run();
