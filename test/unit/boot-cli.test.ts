import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootCmdline, parseBootArgs } from '../../src/cli/boot-args.js';
import { formatStats, formatStartup } from '../../src/cli/boot.js';
import { UsageError } from '../../src/cli/errors.js';
import { DEFAULT_CMDLINE, validateConfig, ConfigError } from '../../src/machine/config.js';

test('boot defaults: Firecracker command line plus console=ttyS0, 1 vCPU, 256 MiB', () => {
  const a = parseBootArgs(['bzImage']);
  assert.is(a.kernel, 'bzImage');
  assert.is(a.cmdline, `${DEFAULT_CMDLINE} console=ttyS0`);
  assert.match(a.cmdline, /reboot=k panic=1/);
  assert.is(a.cpus, 1);
  assert.is(a.memoryMiB, 256);
  assert.is(a.initrd, undefined);
});

test('boot flags', () => {
  const a = parseBootArgs(['k', '--initrd', 'i.gz', '--cpus', '4', '--memory=512', '--cmdline', 'quiet console=hvc0', '--stats']);
  assert.equal([a.initrd, a.cpus, a.memoryMiB, a.cmdline, a.stats], ['i.gz', 4, 512, 'quiet console=hvc0', true]);
});

test('--io-boost: nice steps for the event loop, 0 to 39; absent leaves the default', () => {
  assert.is(parseBootArgs(['k']).eventLoopBoost, undefined);
  assert.is(parseBootArgs(['k', '--io-boost', '0']).eventLoopBoost, 0);
  assert.is(parseBootArgs(['k', '--io-boost=12']).eventLoopBoost, 12);
  for (const bad of ['40', '-1', 'x', '2.5']) assert.throws(() => parseBootArgs(['k', '--io-boost', bad]), (e: unknown) => e instanceof UsageError, bad);
  assert.throws(() => validateConfig({ kernelPath: 'k', cmdline: '', vcpus: 1, memoryMiB: 256, consoleFd: 1, consoleInput: false, eventLoopBoost: 40 }), (e: unknown) => e instanceof ConfigError && /nice steps/.test(e.message));
});

test('console=ttyS0 is added only when no console is named; a console elsewhere than ttyS0 is kept with a warning', () => {
  assert.equal(bootCmdline('quiet'), { cmdline: 'quiet console=ttyS0', warnings: [] });
  assert.equal(bootCmdline('console=ttyS0,115200 quiet'), { cmdline: 'console=ttyS0,115200 quiet', warnings: [] });
  assert.equal(bootCmdline('console=tty0 console=ttyS0'), { cmdline: 'console=tty0 console=ttyS0', warnings: [] });
  assert.equal(bootCmdline(' '), { cmdline: 'console=ttyS0', warnings: [] });
  const hvc = bootCmdline('quiet console=hvc0');
  assert.is(hvc.cmdline, 'quiet console=hvc0');
  assert.equal(hvc.warnings.length, 1);
  assert.match(hvc.warnings[0] ?? '', /console=hvc0 is kept; tsvmm does not add console=ttyS0/);
  assert.is(bootCmdline('quiet -- console=hvc0').cmdline, 'quiet console=ttyS0 -- console=hvc0', 'a console= after -- is init\'s, not the kernel\'s');
});

test('the issue-27 line: root=/dev/vda rw go before the user\'s --, the init arguments stay after it', () => {
  const a = parseBootArgs(['k', 'deb.ext4', '--cmdline', 'reboot=k panic=1 pci=off console=ttyS0 init=/bin/bash -- -c "echo hi; sleep 1"']);
  assert.is(a.cmdline, 'reboot=k panic=1 pci=off console=ttyS0 init=/bin/bash root=/dev/vda rw -- -c "echo hi; sleep 1"');
  assert.equal(a.cmdlineWarnings, []);
});

test('a root=, ro or rw the user gave wins over ROOTFS\'s, never doubled; a differing one is warned about', () => {
  const root = { path: 'r', readOnly: false, direct: false };
  assert.equal(bootCmdline('console=ttyS0 root=/dev/vda', root), { cmdline: 'console=ttyS0 root=/dev/vda rw', warnings: [] });
  const vdb = bootCmdline('console=ttyS0 root=/dev/vdb', root);
  assert.is(vdb.cmdline, 'console=ttyS0 root=/dev/vdb rw');
  assert.match(vdb.warnings.join('\n'), /root=\/dev\/vdb is kept; tsvmm does not add root=\/dev\/vda \(ROOTFS is \/dev\/vda\)/);
  const ro = bootCmdline('console=ttyS0 ro', root);
  assert.is(ro.cmdline, 'console=ttyS0 ro root=/dev/vda');
  assert.match(ro.warnings.join('\n'), /the command line's ro is kept; tsvmm does not add rw \(ROOTFS is writable\)/);
  assert.equal(bootCmdline('console=ttyS0 ro', { ...root, readOnly: true }), { cmdline: 'console=ttyS0 ro root=/dev/vda', warnings: [] });
  assert.is(bootCmdline('console=ttyS0 -- root=/dev/vdb rw', root).cmdline, 'console=ttyS0 root=/dev/vda rw -- root=/dev/vdb rw', 'words after -- are init\'s');
});

test('a --cmdline the kernel would misread is a UsageError', () => {
  for (const bad of ['init=/bin/sh -- -c "echo', 'quiet -- a -- b']) {
    assert.throws(() => parseBootArgs(['k', '--cmdline', bad]), (e: unknown) => e instanceof UsageError && /^--cmdline: /.test(e.message), bad);
  }
});

test('bad boot command lines are UsageErrors with the boot usage', () => {
  for (const argv of [[], ['k', '--cpus', 'two'], ['k', '--bogus'], ['k', 'a', 'b'], ['k', '--disk', ':ro'], ['k', '--disk', 'a:ro:ro'], ['k', '--disk', ':direct:ro'], ['k', '--disk', 'a:aio=native'], ['k', '--disk', 'a:aio=threads:aio=io_uring'], ['k', '--disk', 'a:aio=threads:aio=threads']]) {
    assert.throws(() => parseBootArgs(argv), (e: unknown) => e instanceof UsageError && /tsvmm boot KERNEL/.test(e.usage ?? ''), argv.join(' '));
  }
});

test('ROOTFS is /dev/vda and the root file system; --disk adds more, :ro makes one read-only, :direct O_DIRECT', () => {
  const a = parseBootArgs(['k', 'root.ext4', '--disk', 'data.img', '--disk', 'ro.img:ro', '--disk', 'd.img:direct', '--disk', 'a:b.img:direct:ro']);
  assert.equal(a.disks, [
    { path: 'root.ext4', readOnly: false, direct: false },
    { path: 'data.img', readOnly: false, direct: false },
    { path: 'ro.img', readOnly: true, direct: false },
    { path: 'd.img', readOnly: false, direct: true },
    { path: 'a:b.img', readOnly: true, direct: true },
  ]);
  assert.match(a.cmdline, / root=\/dev\/vda rw$/);
  const ro = parseBootArgs(['k', 'root.ext4:direct:ro']);
  assert.equal(ro.disks, [{ path: 'root.ext4', readOnly: true, direct: true }], 'ROOTFS takes the same flags');
  assert.match(ro.cmdline, / root=\/dev\/vda ro$/, 'a read-only root is mounted ro');
  assert.not.match(parseBootArgs(['k', 'r', '--cmdline', 'root=/dev/vdb console=ttyS0']).cmdline, /vda/, 'a root= given stays');
  assert.equal(parseBootArgs(['k', '--disk', 'x']).disks, [{ path: 'x', readOnly: false, direct: false }], 'no :aio=, no engine: the backend chooses');
  assert.equal(parseBootArgs(['k', 'r:aio=threads:ro', '--disk', 'x:direct:aio=io_uring']).disks, [
    { path: 'r', readOnly: true, direct: false, engine: 'threads' },
    { path: 'x', readOnly: false, direct: true, engine: 'io_uring' },
  ]);
  assert.not.match(parseBootArgs(['k', '--disk', 'x']).cmdline, /root=/, 'no ROOTFS, no root=');
});

test('config validation: vCPUs and memory in range', () => {
  const base = { kernelPath: 'k', cmdline: '', vcpus: 1, memoryMiB: 256, consoleFd: 1, consoleInput: false };
  validateConfig(base);
  for (const bad of [{ vcpus: 0 }, { vcpus: 33 }, { vcpus: 1.5 }, { memoryMiB: 8 }, { memoryMiB: 2 ** 21 }]) {
    assert.throws(() => validateConfig({ ...base, ...bad }), (e: unknown) => e instanceof ConfigError, JSON.stringify(bad));
  }
});

test('stats merge the vCPU threads per device and per unknown port', () => {
  const text = formatStats({
    code: 0,
    reason: 'reset',
    detail: '',
    builtMs: 400,
    vcpus: [
      { index: 0, exits: 10, stop: { kind: 'reset', detail: '', exits: 10 } },
      { index: 1, exits: 3 },
    ],
    pio: [
      { devices: [{ name: 'serial0', base: 0x3f8, reads: 2, writes: 5 }], unknown: [{ address: 0x80, reads: 1, writes: 0 }], unknownDropped: 0 },
      { devices: [{ name: 'serial0', base: 0x3f8, reads: 1, writes: 1 }], unknown: [{ address: 0x80, reads: 0, writes: 2 }], unknownDropped: 0 },
    ],
    mmio: [],
  });
  assert.match(text, /vCPU 0: 10 exits to user space \(ended: reset\)/);
  assert.match(text, /pio 0x3f8 serial0: 3 reads, 6 writes/);
  assert.match(text, /pio 0x80 \(no device\): 1 reads, 2 writes/);
});

test('start-up phases: ms since the process started, a dash for a phase that never came', () => {
  const exit = { code: 0, reason: 'reset' as const, detail: '', builtMs: 412.4, firstRunMs: 655.9, vcpus: [], pio: [], mmio: [] };
  assert.is(
    formatStartup(exit, 301.2),
    'startup (ms since tsvmm started): node and modules loaded 301, VM built 412, first vCPU in KVM_RUN 656, guest init (boot timer) -',
  );
});

test.run();
