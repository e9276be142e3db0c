import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assessHost } from '../../src/check/assess.js';
import { ioRingLine } from '../../src/check/check.js';
import { cpuModel, detectKvm, type HostPaths } from '../../src/check/host.js';

function fakeHost(opts: { dev?: boolean; modules?: string[] }): { paths: HostPaths; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-host-'));
  const paths: HostPaths = { devKvm: join(dir, 'kvm'), sysModule: join(dir, 'module'), cpuinfo: join(dir, 'cpuinfo') };
  mkdirSync(paths.sysModule);
  if (opts.dev) writeFileSync(paths.devKvm, '');
  for (const m of opts.modules ?? []) mkdirSync(join(paths.sysModule, m));
  writeFileSync(paths.cpuinfo, 'processor\t: 0\nmodel name\t: Test CPU 9000\n');
  return { paths, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('detectKvm: absent, kvm-pvm, hardware, unknown, testbed', () => {
  const cases: [boolean, string[], NodeJS.ProcessEnv, string][] = [
    [false, ['kvm'], {}, 'absent'],
    [true, ['kvm', 'kvm_pvm'], {}, 'kvm-pvm'],
    [true, ['kvm', 'kvm_intel'], {}, 'hardware'],
    [true, ['kvm', 'kvm_amd'], {}, 'hardware'],
    [true, ['kvm'], {}, 'unknown'],
    [true, ['kvm', 'kvm_amd'], { TSVMM_WHERE: 'testbed' }, 'testbed'],
  ];
  for (const [dev, modules, env, kind] of cases) {
    const h = fakeHost({ dev, modules });
    try {
      assert.is(detectKvm(env, h.paths).kind, kind, `${modules.join(',')} ${JSON.stringify(env)}`);
    } finally {
      h.cleanup();
    }
  }
});

test('detectKvm: a device node without read-write access is not accessible', () => {
  if (process.getuid?.() === 0) return; // root can open anything; the branch is covered as non-root
  const h = fakeHost({ dev: true, modules: ['kvm_intel'] });
  try {
    chmodSync(h.paths.devKvm, 0o000);
    assert.is(detectKvm({}, h.paths).accessible, false);
  } finally {
    h.cleanup();
  }
});

test('cpuModel reads model name', () => {
  const h = fakeHost({});
  try {
    assert.is(cpuModel(h.paths.cpuinfo), 'Test CPU 9000');
    assert.is(cpuModel(join(h.paths.cpuinfo, 'missing')), 'unknown');
  } finally {
    h.cleanup();
  }
});

const allCaps = { apiVersion: 12, missing: [], present: ['KVM_CAP_IRQCHIP'] };

test('assessHost: only hardware (or the test bed) boots Linux', () => {
  const hw = assessHost({ kind: 'hardware', detail: 'kvm_intel', accessible: true }, allCaps);
  assert.ok(hw.linuxBoots);
  const pvm = assessHost({ kind: 'kvm-pvm', detail: 'pvm', accessible: true }, allCaps);
  assert.not.ok(pvm.linuxBoots);
  assert.ok(pvm.toyGuests);
  assert.match(pvm.lines.join('\n'), /npm run test:kvm/);
  const unknown = assessHost({ kind: 'unknown', detail: '?', accessible: true }, allCaps);
  assert.not.ok(unknown.linuxBoots);
});

test('assessHost: absent, not permitted and missing capabilities say what to do', () => {
  const absent = assessHost({ kind: 'absent', detail: '/dev/kvm does not exist', accessible: false }, {});
  assert.not.ok(absent.toyGuests);
  assert.match(absent.lines.join('\n'), /absent/);
  const denied = assessHost({ kind: 'hardware', detail: 'kvm_intel', accessible: false }, {});
  assert.match(denied.lines.join('\n'), /kvm group/);
  const missing = assessHost({ kind: 'hardware', detail: 'kvm_intel', accessible: true }, { apiVersion: 12, missing: ['KVM_CAP_IRQFD'] });
  assert.not.ok(missing.linuxBoots);
  assert.match(missing.lines.join('\n'), /KVM_CAP_IRQFD/);
});

test('ioRingLine: says whether :direct disks get io_uring, and why not', () => {
  assert.match(ioRingLine(undefined), /^io_uring: available/);
  assert.match(ioRingLine('io_uring_setup failed: Operation not permitted'), /^io_uring: not available \(io_uring_setup failed: Operation not permitted\); disks use libuv's threadpool$/);
});

test.run();
