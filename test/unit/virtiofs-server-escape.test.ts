// Escape attempts through the passthrough server: names that leave a directory, symlinks that
// point outside (LOOKUP, OPEN, CREATE, MKDIR through them), renames and links aimed outside, node
// IDs never handed out. Each is refused, and nothing beside the share is created, changed or read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lstatSync, readdirSync, readFileSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { FUSE_ENTRY_OUT } from '../../src/devices/virtiofs/fuse/index.js';
import { utf8 } from '../helpers/fuse-requests.js';
import { O_RDONLY, SECRET, ServerRig } from '../helpers/fuse-server-rig.js';

const ENOENT = 2;
const EBADF = 9;
const ENOTDIR = 20;
const EINVAL = 22;
const ELOOP = 40;

/** base's entries other than the share, and all of outside, by lstat (atime of files included). */
function snapshot(base: string): string {
  const lines: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (dir === base && name === 'share') continue;
      const s = lstatSync(join(dir, name), { bigint: true });
      lines.push(`${rel}${name} ${s.mode} ${s.size} ${s.nlink} ${s.isDirectory() ? '' : s.atimeNs} ${s.mtimeNs} ${s.ctimeNs}`);
      if (s.isDirectory()) walk(join(dir, name), `${rel}${name}/`);
    }
  };
  walk(base, '');
  return lines.join('\n');
}

test('names, symlinks, renames and links aimed outside the share are refused; nothing outside is touched', async () => {
  const r = ServerRig.create({}, (share) => {
    symlinkSync('../outside', join(share, 'dirlink'));
    symlinkSync('../outside/secret', join(share, 'filelink'));
    symlinkSync('/', join(share, 'rootlink'));
  });
  try {
    const secret = join(r.outside, 'secret');
    utimesSync(secret, new Date(Date.UTC(2001, 0, 1)), new Date(Date.UTC(2002, 0, 1)));
    const before = snapshot(r.base);
    await r.init();
    const n = utf8('x');
    for (const name of ['..', '.', '../outside', 'a/b', '/etc']) {
      assert.is(await r.errno({ kind: 'lookup', name: utf8(name) }), EINVAL, `LOOKUP ${name}`);
      assert.is(await r.errno({ kind: 'mkdir', mode: 0o755, umask: 0, name: utf8(name) }), EINVAL, `MKDIR ${name}`);
      assert.is(await r.errno({ kind: 'create', flags: 2, mode: 0o644, umask: 0, openFlags: 0, name: utf8(name) }), EINVAL, `CREATE ${name}`);
    }
    const dirlink = await r.lookup(1n, 'dirlink');
    const filelink = await r.lookup(1n, 'filelink');
    const rootlink = await r.lookup(1n, 'rootlink');
    assert.is(dirlink.attr.mode & 0o170000, 0o120000, 'a symlink comes back as itself');
    for (const link of [dirlink, rootlink]) {
      assert.is(await r.errno({ kind: 'lookup', name: utf8('secret') }, link.nodeid), ENOTDIR);
      assert.is(await r.errno({ kind: 'create', flags: 2, mode: 0o644, umask: 0, openFlags: 0, name: n }, link.nodeid), ENOTDIR);
      assert.is(await r.errno({ kind: 'mkdir', mode: 0o755, umask: 0, name: n }, link.nodeid), ENOTDIR);
      assert.is(await r.errno({ kind: 'opendir', flags: 0, openFlags: 0 }, link.nodeid), ELOOP);
    }
    assert.is(await r.errno({ kind: 'open', flags: O_RDONLY, openFlags: 0 }, filelink.nodeid), ELOOP);
    assert.is(await r.errno({ kind: 'open', flags: 2 | 0o1000, openFlags: 0 }, filelink.nodeid), ELOOP);
    assert.is(await r.errno({ kind: 'setattr', valid: 1 << 3, fh: 0n, size: 0n, lockOwner: 0n, atime: 0n, mtime: 0n, ctime: 0n, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: 0, uid: 0, gid: 0 }, filelink.nodeid) !== 0, true, 'truncate through a symlink');
    await r.create(1n, 'f');
    assert.is(await r.errno({ kind: 'rename', newdir: 1n, oldname: utf8('f'), newname: utf8('../outside/f') }), EINVAL);
    assert.is(await r.errno({ kind: 'rename', newdir: 1n, oldname: utf8('f'), newname: utf8('..') }), EINVAL);
    assert.is(await r.errno({ kind: 'rename', newdir: dirlink.nodeid, oldname: utf8('f'), newname: n }), ENOTDIR);
    assert.is(await r.errno({ kind: 'rename', newdir: 1n, oldname: utf8('../outside/secret'), newname: n }), EINVAL);
    // Node IDs the server never handed out (the host's inode numbers, guesses) name nothing.
    const outsideIno = lstatSync(secret, { bigint: true }).ino;
    for (const id of [outsideIno, 2n ** 63n, 0n, 12345n]) {
      assert.is(await r.errno({ kind: 'link', oldnodeid: id, newname: utf8('stolen') }), EBADF, `LINK ${id}`);
      assert.is(await r.errno({ kind: 'getattr', getattrFlags: 0, fh: 0n }, id), EBADF);
      assert.is(await r.errno({ kind: 'open', flags: O_RDONLY, openFlags: 0 }, id), EBADF);
    }
    assert.is(await r.errno({ kind: 'link', oldnodeid: filelink.nodeid, newname: utf8('l2') }), 0, 'linking the symlink itself, not its target');
    assert.is(lstatSync(r.path('l2')).isSymbolicLink(), true);
    const rl = await r.call({ kind: 'readlink' }, dirlink.nodeid);
    assert.is(new TextDecoder().decode(rl.body), '../outside', 'READLINK reports the target; the guest resolves it in its own namespace');
    assert.is(await r.errno({ kind: 'unlink', name: utf8('../outside/secret') }), EINVAL);
    assert.is(await r.errno({ kind: 'unlink', name: utf8('secret') }, dirlink.nodeid), ENOTDIR);
    assert.is(await r.errno({ kind: 'lookup', name: utf8('secret') }), ENOENT);
    // The same attempts by another node: a directory whose name is then changed under it.
    const d = await r.mkdir(1n, 'd');
    assert.is((await r.ok(FUSE_ENTRY_OUT, { kind: 'lookup', name: utf8('d') })).nodeid, d.nodeid);
    assert.is(await r.errno({ kind: 'lookup', name: utf8('..') }, d.nodeid), EINVAL);
    assert.is(snapshot(r.base), before, 'nothing outside the share was created, changed or read');
    assert.is(readFileSync(secret, 'utf8'), SECRET);
  } finally {
    await r.dispose();
  }
});

test.run();
