// The kernel command line tsvmm builds (src/boot/cmdline.ts) in a real guest: with init
// arguments after `--`, the root=/dev/vda rw that ROOTFS adds and the disk's
// virtio_mmio.device= announcement still reach the kernel, and init gets exactly the user's words
// (issue 27). With acpi=off the announcement is the only way the kernel learns of the disk.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKernel } from '../../helpers/guest-kernel.js';
import { whereLabel } from '../../helpers/where.js';
import { runTsvmm, tail } from '../../helpers/tsvmm-process.js';

const test = suite(`kernel command line [${whereLabel()}]`);
const kernel = guestKernel();

// init is busybox sh: `sh -c SCRIPT one "two words" three` runs SCRIPT with $0=one and the
// positional parameters "two words" and three. The script is one double-quoted word on the kernel
// command line, so it uses single quotes only (the kernel's parser has no escape for `"`). Each
// positional parameter is printed on its own line, so a word split in two shows as two lines.
// `reboot -f` ends the VM through the i8042 reset (reboot=k), with or without ACPI.
const SCRIPT = [
  'mount -t proc proc /proc',
  'mount -t sysfs sysfs /sys',
  'echo INIT-ARGC=$#',
  'echo INIT-ARG0=$0',
  'for a; do echo INIT-ARG=$a=; done',
  "grep ' / ' /proc/mounts | sed 's/^/ROOT-MOUNT=/'",
  "sed -n 's/^[0-9]* [0-9]* \\([0-9]*:[0-9]*\\) \\/ \\/ .*/ROOT-MAJMIN=\\1/p' /proc/self/mountinfo",
  '[ -d /sys/block/vda ] && echo VDA-DEV=$(cat /sys/block/vda/dev)',
  "sed 's/^/CMDLINE=/' /proc/cmdline",
  'reboot -f',
].join('; ');
const INIT = `init=/bin/sh -- -c "${SCRIPT}" one "two words" three`;

/** The values of `KEY=...` lines on the console (CR from the serial line removed). */
function lines(stdout: string, key: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

if (!kernel) {
  test('guest kernel present', () => {
    assert.unreachable('the kernels/ guest is not built: npm run kernel');
  });
} else {
  for (const acpi of ['', ' acpi=off']) {
    test(`tsvmm boot KERNEL ROOTFS --cmdline '...${acpi} init=/bin/sh -- -c ... one "two words" three': root= and the disk reach the kernel, init gets exactly its words`, async () => {
      if (!kernel.rootfs) assert.unreachable('no rootfs image: kernels/build-rootfs.sh (scripts/test.mjs builds it)');
      const dir = mkdtempSync(join(tmpdir(), 'tsvmm-cmdline-'));
      try {
        const root = join(dir, 'rootfs.ext4');
        copyFileSync(kernel.rootfs as string, root); // the cached image stays pristine
        const r = await runTsvmm(['boot', kernel.bzImage, root, '--cmdline', `reboot=k panic=1 pci=off quiet console=ttyS0${acpi} ${INIT}`]);
        const t = tail(r, 3000);
        assert.not.match(r.stdout, /Kernel panic|VFS: Cannot open root device/, t);
        // init's argv: /bin/sh -c SCRIPT one "two words" three, and nothing tsvmm added.
        assert.equal(lines(r.stdout, 'INIT-ARGC'), ['2'], t);
        assert.equal(lines(r.stdout, 'INIT-ARG0'), ['one'], t);
        assert.equal(lines(r.stdout, 'INIT-ARG'), ['two words=', 'three='], t);
        // / is the ext4 image, mounted read-write from the disk the kernel found as vda.
        assert.match(lines(r.stdout, 'ROOT-MOUNT').join('\n'), /^\/dev\/root \/ ext4 rw[, ]/m, t);
        const vda = lines(r.stdout, 'VDA-DEV');
        assert.is(vda.length, 1, `/sys/block/vda exists${t}`);
        assert.equal(lines(r.stdout, 'ROOT-MAJMIN'), vda, `the root file system's device is vda${t}`);
        // The line the kernel got: tsvmm's words before `--`, the user's init words after it.
        const cmdline = lines(r.stdout, 'CMDLINE')[0] ?? '';
        const dashes = cmdline.indexOf(' -- ');
        assert.ok(dashes > 0, `-- in /proc/cmdline: ${cmdline}`);
        for (const word of [' root=/dev/vda ', ' rw ', ' virtio_mmio.device=4K@0xd0000000:5 ']) {
          const at = cmdline.indexOf(word);
          assert.ok(at >= 0 && at < dashes, `${word.trim()} before --: ${cmdline}`);
        }
        assert.ok(cmdline.endsWith(' one "two words" three'), cmdline);
        assert.match(r.stderr, /VM ended: reset/, t);
        assert.is(r.code, 0, t);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

test.run();
