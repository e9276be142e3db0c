// Machine's lifetime: building a VM either fully succeeds or releases every fd, mapping and
// thread it made; dispose() after a run (the guest reset the machine) releases everything too.
// The guest is a tiny 64-bit ELF "kernel" (no Linux), so this runs wherever a toy guest runs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../../src/machine/machine.js';
import { ConfigError, type DriveDescription, type VmDescription } from '../../src/machine/vm-description.js';
import { DeviceOpenError } from '../../src/machine/device-factories.js';
import { ResourceExhaustedError } from '../../src/machine/resources.js';
import { BootError } from '../../src/boot/index.js';
import { elfKernel } from '../helpers/elf-kernel.js';
import { whereLabel } from '../helpers/where.js';

const test = suite(`machine lifetime [${whereLabel()}]`);

const dir = mkdtempSync(join(tmpdir(), 'tsvmm-lifetime-'));
// mov al, 0xfe; out 0x64, al; hlt: resets through the keyboard controller.
const resetKernel = join(dir, 'reset.elf');
writeFileSync(resetKernel, elfKernel([0xb0, 0xfe, 0xe6, 0x64, 0xf4]));
// Loaded at 2 GiB: outside a 64 MiB guest, so boot set-up fails after every device is placed.
const unloadableKernel = join(dir, 'far.elf');
writeFileSync(unloadableKernel, elfKernel([0xf4], 0x8000_0000));
const image = join(dir, 'disk.img');
writeFileSync(image, new Uint8Array(1024 * 1024));

function drive(i: number, path = image): DriveDescription {
  return { driveId: `d${i}`, pathOnHost: path, isRootDevice: false, isReadOnly: false, direct: false };
}

function description(over: Partial<VmDescription> = {}): VmDescription {
  return {
    machine: { vcpuCount: 2, memSizeMiB: 64 },
    bootSource: { kernelImagePath: resetKernel, bootArgs: 'console=ttyS0' },
    drives: [drive(0), drive(1)],
    fsShares: [],
    networkInterfaces: [],
    ...over,
  };
}

const openFds = (): string[] => readdirSync('/proc/self/fd');
const threads = (): number => readdirSync('/proc/self/task').length;
/** Worker threads end a moment after their 'exit' event; give them that moment. */
async function settledThreads(want: number): Promise<number> {
  for (let i = 0; i < 50 && threads() > want; i++) await new Promise((r) => setTimeout(r, 20));
  return threads();
}

async function createError(d: VmDescription): Promise<unknown> {
  try {
    const m = await Machine.create(d, { consoleFd: 2 });
    await m.dispose();
  } catch (e) {
    return e;
  }
  return undefined;
}

async function runOnce(): Promise<void> {
  const m = await Machine.create(description(), { consoleFd: 2 });
  try {
    const exit = await m.run();
    assert.is(exit.reason, 'reset', exit.detail);
  } finally {
    await m.dispose();
  }
}

test('build, run to the guest\'s reset, dispose: no fd or thread left behind', async () => {
  // The first run starts libuv's threadpool and loads what stays loaded; count from the second.
  await runOnce();
  const fds = openFds().length;
  const before = await settledThreads(0);
  for (let i = 0; i < 3; i++) await runOnce();
  assert.is(openFds().length, fds, 'open fds after three VMs');
  assert.is(await settledThreads(before), before, 'threads after three VMs');
});

test('a build that fails at any step releases what it made', async () => {
  await runOnce();
  const fds = openFds().length;
  const before = await settledThreads(0);
  const failures: [string, VmDescription, (e: unknown) => boolean][] = [
    ['validation', description({ machine: { vcpuCount: 0, memSizeMiB: 64 } }), (e) => e instanceof ConfigError],
    ['the kernel file', description({ bootSource: { kernelImagePath: join(dir, 'missing'), bootArgs: '' } }), (e) => e instanceof ConfigError && /cannot read the kernel/.test(e.message)],
    ['the second drive (after KVM, guest memory and the first drive)', description({ drives: [drive(0), drive(1, join(dir, 'no-such.img'))] }), (e) => e instanceof DeviceOpenError && /d1/.test(e.message)],
    ['the interrupt lines (the 20th device)', description({ drives: Array.from({ length: 20 }, (_, i) => drive(i)) }), (e) => e instanceof ResourceExhaustedError && /GSI/.test(e.message)],
    ['boot set-up (after every device is placed)', description({ bootSource: { kernelImagePath: unloadableKernel, bootArgs: '' } }), (e) => e instanceof BootError],
  ];
  for (const [step, d, expected] of failures) {
    const error = await createError(d);
    assert.ok(expected(error), `${step}: ${String(error)}`);
    assert.equal(openFds().length, fds, `open fds after a build failing at ${step}`);
  }
  assert.is(await settledThreads(before), before, 'threads after the failed builds');
});

test('a device kind not part of this build is refused by name, before anything is made', async () => {
  const fds = openFds().length;
  const e = await createError(description({ networkInterfaces: [{ ifaceId: 'eth0', hostDevName: 'tap0' }] }));
  assert.ok(e instanceof ConfigError && /eth0: virtio-net/.test(e.message), String(e));
  assert.is(openFds().length, fds);
});

test('ids are unique across device kinds', async () => {
  const e = await createError(description({ drives: [drive(0)], vsock: { vsockId: 'd0', guestCid: 3, udsPath: join(dir, 'v.sock') } }));
  assert.ok(e instanceof ConfigError && /vsock id "d0" is already used by a drive/.test(e.message), String(e));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
