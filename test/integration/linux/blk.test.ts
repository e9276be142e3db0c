// virtio-blk in a real guest: the kernels/ guest reads and writes /dev/vda through tsvmm's
// virtio-mmio transport, split virtqueue and block device; the host checks the image file.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKernel } from '../../helpers/guest-kernel.js';
import { directDir } from '../../helpers/ext4-loop.js';
import { whereLabel } from '../../helpers/where.js';
import { testUnless } from '../../helpers/skip.js';
import { ioRingUnsupported } from '../../../src/vmm/io-ring.js';
import { FileBackend } from '../../../src/devices/virtio/block/backend.js';
import { diskMetrics, runTsvmm, tail, type TsvmmResult } from '../../helpers/tsvmm-process.js';
import { HOST_TOOL_ENV } from '../../helpers/host-env.js';

const test = suite(`virtio-blk [${whereLabel()}]`);
const kernel = guestKernel();
const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';

/** Boots with the given disks and types `script`, then `exit`, at the shell prompt. */
function shell(disks: string[], script: string, extra: string[] = []): Promise<TsvmmResult> {
  if (!kernel) throw new Error('no guest kernel');
  const args = ['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cmdline', CMDLINE, ...extra];
  for (const d of disks) args.push('--disk', d);
  // Typed ahead: the tty holds `exit` until the script's commands are done.
  return runTsvmm(args, [[/\/ # /, `${script}\nexit\n`]]);
}

function image(bytes: number, dir = mkdtempSync(join(tmpdir(), 'tsvmm-blk-'))): { path: string; data: Buffer } {
  const path = join(dir, 'disk.img');
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  return { path, data };
}

if (!kernel) {
  test('guest kernel present', () => {
    assert.unreachable('the kernels/ guest is not built: npm run kernel');
  });
} else {
  // Both I/O engines (backend.ts): io_uring where this host has it (said by name where not).
  const ringWhy = ioRingUnsupported();
  for (const engine of ['io_uring', 'threads'] as const) {
    testUnless(test, engine === 'io_uring' ? ringWhy : undefined, `aio=${engine}: the guest reads the whole disk with the host's checksum, and its writes reach the file`, async () => {
      const img = image(4 * 1024 * 1024);
      const md5 = createHash('md5').update(img.data).digest('hex');
      const r = await shell([`${img.path}:aio=${engine}`], [
        'cat /sys/block/vda/size',
        'md5sum /dev/vda',
        'echo tsvmm-was-here > /tmp/m; dd if=/tmp/m of=/dev/vda bs=512 seek=100 conv=notrunc,fsync 2>/dev/null; echo dd=$?',
      ].join('; '), ['--stats']);
      assert.is(diskMetrics(r.stderr, 'disk1')?.engine, engine, r.stderr.slice(-1500));
      assert.match(r.stdout, /\b8192\b/, `capacity in 512-byte sectors${tail(r)}`);
      assert.match(r.stdout, new RegExp(`${md5}\\s+/dev/vda`), tail(r));
      assert.match(r.stdout, /dd=0/);
      const after = readFileSync(img.path);
      assert.is(after.subarray(100 * 512, 100 * 512 + 15).toString(), 'tsvmm-was-here\n');
      assert.is(Buffer.compare(after.subarray(0, 100 * 512), img.data.subarray(0, 100 * 512)), 0, 'the rest is untouched');
      assert.is(r.code, 0);
    });
  }

  test('DISCARD from the guest (blkdiscard) punches a hole in the image: zeroes there, blocks freed, the rest untouched', async () => {
    const img = image(4 * 1024 * 1024);
    const probe = await FileBackend.open(img.path, false);
    const punches = probe.canDiscard;
    await probe.close();
    const blocksBefore = statSync(img.path).blocks;
    const r = await shell([img.path], 'cat /sys/block/vda/queue/discard_max_bytes; blkdiscard -o 1048576 -l 1048576 /dev/vda; echo bd=$?');
    assert.is(r.code, 0, tail(r));
    if (!punches) {
      // The host's file system punches no holes here: DISCARD is not offered, and the guest knows.
      assert.match(r.stdout, /^0\r?$/m, `discard_max_bytes 0${tail(r)}`);
      console.log(`  (${tmpdir()} punches no holes: checked that DISCARD is not offered)`);
      return;
    }
    assert.match(r.stdout, /^33554432\r?$/m, `discard_max_bytes: 32 MiB${tail(r)}`);
    assert.match(r.stdout, /bd=0/, tail(r));
    const after = readFileSync(img.path);
    assert.ok(after.subarray(1 << 20, 2 << 20).every((b) => b === 0), 'the discarded MiB reads as zeroes');
    assert.is(Buffer.compare(after.subarray(0, 1 << 20), img.data.subarray(0, 1 << 20)), 0, 'before it, untouched');
    assert.is(Buffer.compare(after.subarray(2 << 20), img.data.subarray(2 << 20)), 0, 'after it, untouched');
    const blocksAfter = statSync(img.path).blocks;
    assert.ok(blocksAfter <= blocksBefore - 2048, `1 MiB of blocks freed (${blocksBefore} -> ${blocksAfter} 512-byte blocks)`);
  });

  test('a read-only disk refuses writes and the file stays as it was', async () => {
    const img = image(1024 * 1024);
    const r = await shell([`${img.path}:ro`], 'cat /sys/block/vda/ro; dd if=/dev/zero of=/dev/vda bs=512 count=8 conv=fsync 2>/dev/null; echo dd=$?');
    assert.match(r.stdout, /^1\r?$/m, `the kernel sees a read-only disk${tail(r)}`);
    assert.match(r.stdout, /dd=1/);
    assert.is(Buffer.compare(readFileSync(img.path), img.data), 0);
    assert.is(r.code, 0);
  });

  test('tsvmm boot KERNEL ROOTFS: the ext4 image is the root, and what the guest writes there survives, fsck-clean', async () => {
    if (!kernel.rootfs) assert.unreachable('no rootfs image: kernels/build-rootfs.sh (scripts/test.mjs builds it)');
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-root-'));
    const root = join(dir, 'rootfs.ext4');
    copyFileSync(kernel.rootfs as string, root); // the cached image stays pristine
    const r = await runTsvmm(['boot', kernel.bzImage, root, '--cmdline', CMDLINE], [
      [/\/ # /, 'grep " / " /proc/mounts; echo persisted > /hello; sync\nexit\n'],
    ]);
    assert.match(r.stdout, /TSVMM-INIT-OK nproc=1/, tail(r));
    assert.match(r.stdout, /\/dev\/root \/ ext4 rw/, tail(r));
    assert.is(r.code, 0);
    const env = HOST_TOOL_ENV;
    const fsck = spawnSync('e2fsck', ['-fn', root], { encoding: 'utf8', env, timeout: 120_000 });
    assert.is(fsck.status, 0, `e2fsck -fn: ${fsck.stdout}${fsck.stderr}`);
    const cat = spawnSync('debugfs', ['-R', 'cat /hello', root], { encoding: 'utf8', env, timeout: 120_000 });
    assert.is(cat.stdout, 'persisted\n', cat.stderr);
  });

  test('a :direct disk (O_DIRECT on the host): the guest reads the host\'s data and its writes reach the file', async () => {
    const where = directDir();
    try {
      const img = image(4 * 1024 * 1024, where.dir);
      const md5 = createHash('md5').update(img.data).digest('hex');
      const r = await shell([`${img.path}:direct`], [
        'md5sum /dev/vda',
        'echo tsvmm-direct > /tmp/m; dd if=/tmp/m of=/dev/vda bs=512 seek=200 conv=notrunc,fsync 2>/dev/null; echo dd=$?',
      ].join('; '), ['--stats']);
      assert.match(r.stdout, new RegExp(`${md5}\\s+/dev/vda`), tail(r));
      assert.match(r.stdout, /dd=0/);
      assert.is(r.code, 0);
      // --stats shows the disk in direct mode (the counter exists only there).
      assert.match(r.stderr, /disk1: \{.*"bufferedFallbacks":\d+/, r.stderr.slice(-1500));
      const after = readFileSync(img.path);
      assert.is(after.subarray(200 * 512, 200 * 512 + 13).toString(), 'tsvmm-direct\n');
      assert.is(Buffer.compare(after.subarray(0, 200 * 512), img.data.subarray(0, 200 * 512)), 0, 'the rest is untouched');
    } finally {
      where.cleanup();
    }
  });

  test('the driver lets the disk go and takes it back (a device reset, then a new activation): same data, writes reach the file', async () => {
    const img = image(2 * 1024 * 1024);
    const md5 = createHash('md5').update(img.data).digest('hex');
    // Unbinding virtio_blk removes the disk and resets the device (Status = 0, held until tsvmm's
    // device has stopped); binding probes it again from scratch: reset, negotiation, DRIVER_OK.
    const drv = '/sys/bus/virtio/drivers/virtio_blk';
    const r = await shell([img.path], [
      'md5sum /dev/vda',
      `echo virtio0 > ${drv}/unbind; echo unbind=$?`,
      'ls /sys/block | grep -c vda',
      `echo virtio0 > ${drv}/bind; echo bind=$?`,
      'sleep 1; md5sum /dev/vda',
      'echo after-rebind > /tmp/m; dd if=/tmp/m of=/dev/vda bs=512 seek=300 conv=notrunc,fsync 2>/dev/null; echo dd=$?',
    ].join('; '));
    const sums = r.stdout.match(new RegExp(`${md5}\\s+/dev/vda`, 'g')) ?? [];
    assert.is(sums.length, 2, `the whole disk read the same before and after${tail(r)}`);
    assert.match(r.stdout, /unbind=0/, tail(r));
    assert.match(r.stdout, /^0\r?$/m, `no vda while unbound${tail(r)}`);
    assert.match(r.stdout, /bind=0/);
    assert.match(r.stdout, /dd=0/);
    assert.is(r.code, 0);
    assert.is(readFileSync(img.path).subarray(300 * 512, 300 * 512 + 13).toString(), 'after-rebind\n');
  });

  test('two disks appear as vda and vdb', async () => {
    const a = image(512 * 1024);
    const b = image(1024 * 1024);
    const r = await shell([a.path, `${b.path}:ro`], 'cat /sys/block/vda/size /sys/block/vdb/size');
    assert.match(r.stdout, /\b1024\b[\s\S]*\b2048\b/, tail(r));
  });
}

test.run();
