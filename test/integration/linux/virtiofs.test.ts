// virtio-fs in a real guest: Linux's virtio_fs driver mounts a host directory that tsvmm's device
// and its in-process passthrough server share (`--share DIR:TAG[:ro]`). First steps of issue 22's
// suite: the host sees what the guest wrote and the reverse, a read-only share refuses changes,
// and a symlink the host left pointing outside the share leads nowhere on the host.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKernel } from '../../helpers/guest-kernel.js';
import { whereLabel } from '../../helpers/where.js';
import { runTsvmm, tail, type TsvmmResult } from '../../helpers/tsvmm-process.js';

const test = suite(`virtio-fs [${whereLabel()}]`);
const kernel = guestKernel();
const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';
const base = mkdtempSync(join(tmpdir(), 'tsvmm-virtiofs-'));

/** Boots with `shares` (each `DIR:TAG[:ro]`), types `script` at the prompt, then exit. */
function boot(shares: string[], script: string): Promise<TsvmmResult> {
  if (!kernel) throw new Error('no guest kernel');
  const args = ['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cmdline', CMDLINE, '--stats', ...shares.flatMap((s) => ['--share', s])];
  return runTsvmm(args, [[/\/ # /, `${script}\nexit\n`]]);
}

if (!kernel) {
  test('guest kernel present', () => {
    assert.unreachable('missing: the kernels/ guest (npm run kernel)');
  });
} else {
  test('guest and host see each other\'s files: create, write, read, mkdir, rename, unlink, append, truncate, chmod, symlink, hard link', async () => {
    const dir = join(base, 'rw');
    mkdirSync(dir);
    writeFileSync(join(dir, 'from-host'), 'made on the host\n');
    mkdirSync(join(dir, 'gone'));
    writeFileSync(join(dir, 'gone', 'x'), 'x');
    const script = [
      'mkdir -p /mnt/s && mount -t virtiofs share /mnt/s && echo MOUNTED',
      'cat /mnt/s/from-host',
      'echo "written in the guest" > /mnt/s/g1 && echo more >> /mnt/s/g1',
      'mkdir -p /mnt/s/d/e && mv /mnt/s/g1 /mnt/s/d/e/g2',
      'head -c 100000 /dev/zero | tr "\\0" "z" > /mnt/s/big && truncate -s 1000 /mnt/s/big',
      'chmod 640 /mnt/s/d/e/g2 && ln -s e/g2 /mnt/s/d/sym && ln /mnt/s/d/e/g2 /mnt/s/d/hard',
      'rm -r /mnt/s/gone',
      'ls -l /mnt/s/d/e/g2 /mnt/s/d/sym | sed "s/^/LS /"',
      'cat /mnt/s/d/sym | sed "s/^/SYM /"',
      'sync; umount /mnt/s && echo UNMOUNTED',
    ].join('; ');
    const r = await boot([`${dir}:share`], script);
    assert.match(r.stdout, /MOUNTED/, tail(r));
    assert.match(r.stdout, /made on the host/, `the guest reads the host's file${tail(r)}`);
    assert.match(r.stdout, /SYM written in the guest/, tail(r));
    assert.match(r.stdout, /UNMOUNTED/, tail(r));
    assert.is(r.code, 0, tail(r));
    assert.is(readFileSync(join(dir, 'd', 'e', 'g2'), 'utf8'), 'written in the guest\nmore\n');
    assert.is(statSync(join(dir, 'd', 'e', 'g2')).mode & 0o777, 0o640);
    assert.is(statSync(join(dir, 'd', 'e', 'g2')).nlink, 2, 'the hard link is a link on the host');
    assert.is(statSync(join(dir, 'big')).size, 1000);
    assert.not.ok(existsSync(join(dir, 'g1')), 'renamed away');
    assert.not.ok(existsSync(join(dir, 'gone')), 'removed');
    assert.match(r.stderr, /share0: \{[^}]*"requests":\d+/, `the device's metrics under --stats${tail(r)}`);
  });

  test('a read-only share: reads work, every change fails with EROFS, the host directory stays as it was', async () => {
    const dir = join(base, 'ro');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep'), 'keep me\n');
    const script = [
      'mkdir -p /mnt/s && mount -t virtiofs rotag /mnt/s',
      'cat /mnt/s/keep',
      'for op in "touch /mnt/s/new" "rm /mnt/s/keep" "mkdir /mnt/s/dd" "mv /mnt/s/keep /mnt/s/k2" "chmod 600 /mnt/s/keep"; do $op 2>/dev/null && echo "CHANGED $op" || echo "REFUSED $op"; done',
      'umount /mnt/s',
    ].join('; ');
    const r = await boot([`${dir}:rotag:ro`], script);
    assert.match(r.stdout, /keep me/, tail(r));
    // The typed line holds the words too: count only the expanded ones.
    assert.is((r.stdout.match(/REFUSED [a-z]/g) ?? []).length, 5, tail(r));
    assert.not.match(r.stdout, /CHANGED [a-z]/, tail(r));
    assert.is(readFileSync(join(dir, 'keep'), 'utf8'), 'keep me\n');
    assert.is(statSync(join(dir, 'keep')).mode & 0o777, 0o644);
  });

  test('a host symlink pointing outside the share resolves in the guest\'s namespace, never the host\'s', async () => {
    const dir = join(base, 'esc');
    const outside = join(base, 'outside');
    mkdirSync(dir);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'host secret\n');
    symlinkSync(join(outside, 'secret'), join(dir, 'abs'));
    symlinkSync('../outside/secret', join(dir, 'rel'));
    const script = [
      'mkdir -p /mnt/s && mount -t virtiofs esc /mnt/s',
      'cat /mnt/s/abs /mnt/s/rel 2>&1 | sed "s/^/READ /"',
      'echo overwritten > /mnt/s/rel 2>/dev/null; echo overwritten > /mnt/s/abs 2>/dev/null',
      'ls /mnt/s/.. >/dev/null && echo DOTDOT-IS-GUEST',
      'umount /mnt/s',
    ].join('; ');
    const r = await boot([`${dir}:esc`], script);
    assert.not.match(r.stdout, /host secret/, `the guest read the host file outside the share${tail(r)}`);
    assert.match(r.stdout, /DOTDOT-IS-GUEST/, tail(r));
    assert.is(readFileSync(join(outside, 'secret'), 'utf8'), 'host secret\n', 'the host file outside is untouched');
  });
}

test.after(() => rmSync(base, { recursive: true, force: true }));

test.run();
