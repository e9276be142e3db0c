// `tsvmm boot` boots the kernels/ guest to its init marker: bzImage and ELF vmlinux, 1, 2 and 4
// vCPUs, console input, the guest's ways out (ACPI power-off, i8042 reset, ACPI reset register,
// acpi=off), and clear failures. Runs where the Linux probe passes, else in the test bed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKernel } from '../../helpers/guest-kernel.js';
import { whereLabel } from '../../helpers/where.js';
import { runTsvmm, tail, type TsvmmResult } from '../../helpers/tsvmm-process.js';

const test = suite(`linux boot [${whereLabel()}]`);
const kernel = guestKernel();

type BootResult = TsvmmResult;
const tsvmm = runTsvmm;

function report(name: string, r: BootResult): void {
  const boot = /boot timer: the guest reached init ([\d.]+) ms/.exec(r.stderr)?.[1];
  console.log(`  ${name}: exit ${r.code}, ${r.ms} ms wall${boot ? `, init reached at ${boot} ms` : ''}`);
}

if (!kernel) {
  test('guest kernel present', () => {
    assert.unreachable('the kernels/ guest is not built: run npm run kernel (scripts/test.mjs builds it before these tests)');
  });
} else {
  const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0';

  for (const cpus of [1, 2, 4]) {
    test(`bzImage with ${cpus} vCPU(s) reaches init, sees ${cpus} CPUs (MADT), and powers off (ACPI S5): exit 0`, async () => {
      const r = await tsvmm(['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cpus', String(cpus), '--stats', '--cmdline', CMDLINE]);
      report(`bzImage ${cpus} vCPU`, r);
      assert.match(r.stdout, new RegExp(`TSVMM-INIT-OK nproc=${cpus} `), tail(r));
      assert.match(r.stderr, /boot timer: the guest reached init/);
      assert.match(r.stderr, /VM ended: poweroff \(the guest powered off\); exit status 0/, tail(r));
      // acpi_hw_extended_sleep: clear WAK_STS (0x601), then S5|SLP_EN (0x600); the i8042 is not touched.
      assert.match(r.stderr, /pio 0x600 acpi-pm: 0 reads, 2 writes/);
      assert.not.match(r.stderr, /pio 0x60 i8042/);
      // --stats counts the UART and the boot timer too.
      assert.match(r.stderr, /pio 0x3f8 serial0: \d+ reads, \d+ writes/);
      assert.match(r.stderr, /pio 0x440 boot-timer: 0 reads, 1 writes/);
      assert.is(r.code, 0, r.stderr);
    });
  }

  test('tsvmm.init=reboot ends the VM by an i8042 reset (reboot=k): exit 0', async () => {
    const r = await tsvmm(['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--stats', '--cmdline', `${CMDLINE} tsvmm.init=reboot`]);
    report('reboot=k', r);
    assert.match(r.stdout, /TSVMM-INIT-OK nproc=1 /, tail(r));
    assert.match(r.stderr, /VM ended: reset \(the guest reset the machine/, tail(r));
    assert.match(r.stderr, /pio 0x60 i8042: \d+ reads, 1 writes/);
    assert.not.match(r.stderr, /pio 0x600 acpi-pm/);
    assert.is(r.code, 0, r.stderr);
  });

  test('reboot=a resets through the FADT reset register (0x602), not the i8042: exit 0', async () => {
    const r = await tsvmm(['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--stats', '--cmdline', 'reboot=a panic=1 pci=off quiet console=ttyS0 tsvmm.init=reboot']);
    report('reboot=a', r);
    assert.match(r.stdout, /TSVMM-INIT-OK nproc=1 /, tail(r));
    assert.match(r.stderr, /VM ended: reset/, tail(r));
    assert.match(r.stderr, /pio 0x600 acpi-pm: 0 reads, 1 writes/);
    assert.not.match(r.stderr, /pio 0x60 i8042/);
    assert.is(r.code, 0, r.stderr);
  });

  test('acpi=off: the MP table gives the kernel its 2 CPUs, and /init ends the VM by a reset: exit 0', async () => {
    const r = await tsvmm(['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cpus', '2', '--stats', '--cmdline', `${CMDLINE} acpi=off`]);
    report('acpi=off 2 vCPU', r);
    assert.match(r.stdout, /TSVMM-INIT-OK nproc=2 /, tail(r));
    assert.match(r.stderr, /VM ended: reset/, tail(r));
    assert.not.match(r.stderr, /pio 0x600 acpi-pm/);
    assert.is(r.code, 0, r.stderr);
  });

  test('ELF vmlinux boots through the same 64-bit protocol', async () => {
    const r = await tsvmm(['boot', kernel.vmlinux, '--initrd', kernel.initramfs, '--cmdline', CMDLINE]);
    report('vmlinux 1 vCPU', r);
    assert.match(r.stdout, /TSVMM-INIT-OK nproc=1 /, tail(r));
    assert.match(r.stderr, /VM ended: poweroff/, tail(r));
    assert.is(r.code, 0);
  });

  test('console input reaches a shell in the guest (serial receive path and its interrupt, from the DSDT)', async () => {
    const r = await tsvmm(
      ['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cmdline', `${CMDLINE} tsvmm.init=shell`],
      [[/\/ # /, 'echo answer=$((6*7))\n'], [/answer=42/, 'exit\n']],
    );
    report('shell', r);
    assert.match(r.stdout, /answer=42/, tail(r));
    assert.is(r.code, 0);
  });

  test('a file that is not a kernel is refused with a clear message and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bad-'));
    const bad = join(dir, 'not-a-kernel');
    writeFileSync(bad, 'hello, I am text\n');
    const r = await tsvmm(['boot', bad]);
    assert.is(r.code, 2);
    assert.match(r.stderr, /neither a bzImage .* nor an ELF vmlinux/);
    const missing = await tsvmm(['boot', join(dir, 'nope')]);
    assert.is(missing.code, 2);
    assert.match(missing.stderr, /cannot read the kernel .*ENOENT/);
  });
}

test.run();
