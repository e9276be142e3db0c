// virtio-blk in a real guest, in bulk: a 256 MiB file written through ext4 and read back after a
// remount, checksummed in the guest and on the host. In a file of its own, named to run last in
// its suite: it is the heaviest test on the test bed's emulated machine (two 256 MiB images in
// its tmpfs, one pass of 256 MiB through the nested guest each way).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKernel } from '../../helpers/guest-kernel.js';
import { whereLabel } from '../../helpers/where.js';
import { runTsvmm, tail } from '../../helpers/tsvmm-process.js';
import { HOST_TOOL_ENV } from '../../helpers/host-env.js';

const test = suite(`virtio-blk 256 MiB [${whereLabel()}]`);
const kernel = guestKernel();
const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';
const MiB = 1024 * 1024;
const SIZE_MIB = 256;
const HOST_ENV = HOST_TOOL_ENV;

/** Writes `mib` MiB of random bytes to `path`, 1 MiB at a time; returns their md5. */
function randomImage(path: string, mib: number): string {
  const h = createHash('md5');
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) {
      const chunk = randomBytes(MiB);
      h.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** md5 of a stream, and how many bytes it had. */
function md5Of(stream: NodeJS.ReadableStream): Promise<{ md5: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('md5');
    let bytes = 0;
    stream.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.byteLength;
    });
    stream.on('error', reject);
    stream.on('end', () => resolve({ md5: h.digest('hex'), bytes }));
  });
}

if (!kernel) {
  test('guest kernel present', () => {
    assert.unreachable('the kernels/ guest is not built: npm run kernel');
  });
} else {
  test('a 256 MiB file written through ext4 reads back with the same checksum in the guest and on the host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-big-'));
    try {
      // The source: 256 MiB of random bytes on a read-only raw disk (vda); the target: an empty
      // ext4 image (vdb). Guest memory (128 MiB) is smaller than the file, so the read-back after
      // the remount comes from the device, not from the page cache.
      const src = join(dir, 'src.img');
      const srcMd5 = randomImage(src, SIZE_MIB);
      assert.is((await md5Of(createReadStream(src))).md5, srcMd5);
      const fs = join(dir, 'fs.ext4');
      const mk = spawnSync('mkfs.ext4', ['-q', '-F', '-L', 'big', fs, '300M'], { encoding: 'utf8', env: HOST_ENV, timeout: 300_000 });
      assert.is(mk.status, 0, `mkfs.ext4: ${mk.stdout}${mk.stderr}`);
      const script = [
        'mkdir -p /mnt && mount -t ext4 /dev/vdb /mnt',
        `dd if=/dev/vda of=/mnt/big bs=1M count=${SIZE_MIB} conv=fsync 2>/dev/null; echo WRITE=$?`,
        'umount /mnt && mount -t ext4 /dev/vdb /mnt',
        'echo SUM=$(md5sum </mnt/big)',
        'umount /mnt; echo UMOUNT=$?',
      ].join('\n');
      const r = await runTsvmm(
        ['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cmdline', CMDLINE, '--memory', '128', '--disk', `${src}:ro`, '--disk', fs],
        [[/\/ # /, `${script}\nexit\n`]],
        300_000,
      );
      assert.not.ok(r.timedOut, `timed out${tail(r)}`);
      assert.match(r.stdout, /WRITE=0/, tail(r));
      const sum = /SUM=([0-9a-f]{32})/.exec(r.stdout);
      assert.ok(sum, `no checksum from the guest${tail(r)}`);
      assert.is(sum[1], srcMd5, 'the guest read back what it wrote');
      assert.match(r.stdout, /UMOUNT=0/, tail(r));
      assert.is(r.code, 0, tail(r));
      rmSync(src); // the host checks below need only the ext4 image
      const fsck = spawnSync('e2fsck', ['-fn', fs], { encoding: 'utf8', env: HOST_ENV, timeout: 300_000 });
      assert.is(fsck.status, 0, `e2fsck -fn: ${fsck.stdout}${fsck.stderr}`);
      // The file as the image holds it, read by debugfs on the host (streamed, not stored).
      const debugfs = spawn('debugfs', ['-R', 'cat /big', fs], { env: HOST_ENV, stdio: ['ignore', 'pipe', 'ignore'] });
      const fromImage = await md5Of(debugfs.stdout);
      assert.equal(fromImage, { md5: srcMd5, bytes: SIZE_MIB * MiB }, 'debugfs cat /big');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
