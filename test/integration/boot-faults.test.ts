// How `tsvmm boot` ends when the guest kernel itself goes wrong: a kernel whose first
// instruction faults with no IDT to handle it triple-faults, and tsvmm must stop cleanly and say
// so. The 64-bit entry needs no Linux, so this runs wherever a toy guest runs (kvm-pvm too).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';
import { whereLabel } from '../helpers/where.js';
import { elfKernel } from '../helpers/elf-kernel.js';

const test = suite(`boot faults [${whereLabel()}]`);

function boot(kernel: Uint8Array, args: string[] = []): { code: number | null; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-fault-'));
  const path = join(dir, 'vmlinux');
  writeFileSync(path, kernel);
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'tsvmm.js'), 'boot', path, '--memory', '64', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    input: '',
  });
  return { code: r.status, stderr: r.stderr };
}

test('ud2 at the entry point with no IDT triple-faults: the VM ends, reported as a triple fault', () => {
  const r = boot(elfKernel([0x0f, 0x0b]), ['--cpus', '2']);
  assert.match(r.stderr, /VM ended: triple-fault \(KVM_EXIT_SHUTDOWN/, r.stderr);
  assert.is(r.code, 0, 'a guest-initiated reset, like QEMU -no-reboot');
});

test('a kernel that resets through the keyboard controller ends the VM with status 0', () => {
  // mov al, 0xfe; out 0x64, al; hlt
  const r = boot(elfKernel([0xb0, 0xfe, 0xe6, 0x64, 0xf4]));
  assert.match(r.stderr, /VM ended: reset \(the guest reset the machine \(i8042 or ACPI reset register\)\)/, r.stderr);
  assert.is(r.code, 0);
});

test('a kernel that does not fit in guest memory is refused before anything runs', () => {
  const r = boot(elfKernel([0xf4], 0x8000_0000));
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /outside guest memory|does not fit|not inside guest RAM/i);
});

test.run();
