import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootCmdline, parseBootArgs } from '../../src/cli/boot-args.js';
import { formatStats, formatStartup } from '../../src/cli/boot.js';
import { UsageError } from '../../src/cli/errors.js';
import { resolve } from 'node:path';
import { DEFAULT_CMDLINE, validateDescription, ConfigError, type FsShareDescription, type VmDescription } from '../../src/machine/vm-description.js';
import { kernelCmdline } from '../../src/machine/kernel-cmdline.js';

/** The line the kernel gets for parsed boot arguments (before the virtio_mmio.device= announcements). */
function guestLine(argv: string[]): string {
  const d = parseBootArgs(argv).description;
  const root = d.drives.find((x) => x.isRootDevice);
  return kernelCmdline(d.bootSource.bootArgs, root).cmdline.toString();
}

test('boot defaults: Firecracker command line plus console=ttyS0, 1 vCPU, 256 MiB', () => {
  const a = parseBootArgs(['bzImage']).description;
  assert.is(a.bootSource.kernelImagePath, 'bzImage');
  assert.is(a.bootSource.bootArgs, `${DEFAULT_CMDLINE} console=ttyS0`);
  assert.is(a.machine.vcpuCount, 1);
  assert.is(a.machine.memSizeMiB, 256);
  assert.is(a.bootSource.initrdPath, undefined);
  assert.equal([a.drives, a.vsock, a.fsShares, a.networkInterfaces], [[], undefined, [], []]);
});

test('boot flags', () => {
  const a = parseBootArgs(['k', '--initrd', 'i.gz', '--cpus', '4', '--memory=512', '--cmdline', 'quiet console=hvc0', '--stats']);
  const d = a.description;
  assert.equal([d.bootSource.initrdPath, d.machine.vcpuCount, d.machine.memSizeMiB, d.bootSource.bootArgs, a.stats], ['i.gz', 4, 512, 'quiet console=hvc0', true]);
});

test('--io-boost: nice steps for the event loop, 0 to 39; absent leaves the default', () => {
  const boost = (argv: string[]): number | undefined => parseBootArgs(argv).description.tuning?.eventLoopBoost;
  assert.is(boost(['k']), undefined);
  assert.is(boost(['k', '--io-boost', '0']), 0);
  assert.is(boost(['k', '--io-boost=12']), 12);
  for (const bad of ['40', '-1', 'x', '2.5']) assert.throws(() => parseBootArgs(['k', '--io-boost', bad]), (e: unknown) => e instanceof UsageError, bad);
  assert.throws(() => validateDescription({ ...parseBootArgs(['k']).description, tuning: { eventLoopBoost: 40 } }), (e: unknown) => e instanceof ConfigError && /nice steps/.test(e.message));
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
  const argv = ['k', 'deb.ext4', '--cmdline', 'reboot=k panic=1 pci=off console=ttyS0 init=/bin/bash -- -c "echo hi; sleep 1"'];
  assert.is(guestLine(argv), 'reboot=k panic=1 pci=off console=ttyS0 init=/bin/bash root=/dev/vda rw -- -c "echo hi; sleep 1"');
  assert.equal(parseBootArgs(argv).cmdlineWarnings, []);
});

test('a root=, ro or rw the user gave wins over the root drive\'s, never doubled; a differing one is warned about', () => {
  const root = { driveId: 'rootfs', pathOnHost: 'r', isRootDevice: true, isReadOnly: false, direct: false };
  const line = (args: string, drive = root): { cmdline: string; warnings: string[] } => {
    const r = kernelCmdline(args, drive);
    return { cmdline: r.cmdline.toString(), warnings: r.warnings };
  };
  assert.equal(line('console=ttyS0 root=/dev/vda'), { cmdline: 'console=ttyS0 root=/dev/vda rw', warnings: [] });
  const vdb = line('console=ttyS0 root=/dev/vdb');
  assert.is(vdb.cmdline, 'console=ttyS0 root=/dev/vdb rw');
  assert.match(vdb.warnings.join('\n'), /root=\/dev\/vdb is kept; tsvmm does not add root=\/dev\/vda \(the root drive rootfs is \/dev\/vda\)/);
  const ro = line('console=ttyS0 ro');
  assert.is(ro.cmdline, 'console=ttyS0 ro root=/dev/vda');
  assert.match(ro.warnings.join('\n'), /the command line's ro is kept; tsvmm does not add rw \(the root drive rootfs is writable\)/);
  assert.equal(line('console=ttyS0 ro', { ...root, isReadOnly: true }), { cmdline: 'console=ttyS0 ro root=/dev/vda', warnings: [] });
  assert.is(line('console=ttyS0 -- root=/dev/vdb rw').cmdline, 'console=ttyS0 root=/dev/vda rw -- root=/dev/vdb rw', 'words after -- are init\'s');
  assert.throws(() => kernelCmdline('init=/bin/sh -- -c "echo', undefined), (e: unknown) => e instanceof ConfigError && /^boot args: /.test(e.message));
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
  const drives = (argv: string[]): VmDescription['drives'] => parseBootArgs(argv).description.drives;
  const drive = (driveId: string, pathOnHost: string, isReadOnly: boolean, direct: boolean, isRootDevice = false): VmDescription['drives'][number] => ({ driveId, pathOnHost, isRootDevice, isReadOnly, direct });
  assert.equal(drives(['k', 'root.ext4', '--disk', 'data.img', '--disk', 'ro.img:ro', '--disk', 'd.img:direct', '--disk', 'a:b.img:direct:ro']), [
    drive('rootfs', 'root.ext4', false, false, true),
    drive('disk1', 'data.img', false, false),
    drive('disk2', 'ro.img', true, false),
    drive('disk3', 'd.img', false, true),
    drive('disk4', 'a:b.img', true, true),
  ]);
  assert.match(guestLine(['k', 'root.ext4']), / root=\/dev\/vda rw$/);
  assert.equal(drives(['k', 'root.ext4:direct:ro']), [drive('rootfs', 'root.ext4', true, true, true)], 'ROOTFS takes the same flags');
  assert.match(guestLine(['k', 'root.ext4:direct:ro']), / root=\/dev\/vda ro$/, 'a read-only root is mounted ro');
  assert.not.match(guestLine(['k', 'r', '--cmdline', 'root=/dev/vdb console=ttyS0']), /vda/, 'a root= given stays');
  assert.equal(drives(['k', '--disk', 'x']), [drive('disk1', 'x', false, false)], 'no :aio=, no engine: the backend chooses');
  assert.equal(drives(['k', 'r:aio=threads:ro', '--disk', 'x:direct:aio=io_uring']), [
    { ...drive('rootfs', 'r', true, false, true), ioEngine: 'threads' },
    { ...drive('disk1', 'x', false, true), ioEngine: 'io_uring' },
  ]);
  assert.not.match(guestLine(['k', '--disk', 'x']), /root=/, 'no ROOTFS, no root=');
});

test('description validation: vCPUs and memory in range', () => {
  const base = parseBootArgs(['k']).description;
  validateDescription(base);
  for (const bad of [{ vcpuCount: 0 }, { vcpuCount: 33 }, { vcpuCount: 1.5 }, { memSizeMiB: 8 }, { memSizeMiB: 2 ** 21 }]) {
    assert.throws(() => validateDescription({ ...base, machine: { ...base.machine, ...bad } }), (e: unknown) => e instanceof ConfigError, JSON.stringify(bad));
  }
});

test('description validation: fs shares need a 1-36 byte tag without NUL, unique tags, an absolute directory, a DAX window of 0 or 2 MiB steps up to 64 GiB', () => {
  const base = parseBootArgs(['k']).description;
  const fs = (tag: string, extra: Partial<FsShareDescription> = {}): FsShareDescription => ({ fsId: `fs_${Buffer.from(tag).toString('hex').slice(0, 40)}`, sharedDir: '/srv/x', tag, readOnly: false, daxWindowMiB: 0, ...extra });
  const ok = (...fsShares: FsShareDescription[]): VmDescription => validateDescription({ ...base, fsShares });
  ok(fs('a'), fs('x'.repeat(36)), fs('é'.repeat(18)), fs('b', { daxWindowMiB: 2 }), fs('c', { daxWindowMiB: 64 * 1024, readOnly: true }));
  const bad: [FsShareDescription[], RegExp][] = [
    [[fs('')], /tag "" is 0 bytes/],
    [[fs('x'.repeat(37))], /is 37 bytes of UTF-8; a virtio-fs tag is 1 to 36/],
    [[fs('é'.repeat(19))], /is 38 bytes/],
    [[fs('a\0b')], /NUL/],
    [[fs('a\nb')], /newline/],
    [[fs('a'), { ...fs('a'), fsId: 'other' }], /fs share other: tag "a" is already the tag of fs share fs_61/],
    [[fs('a', { sharedDir: 'relative/dir' })], /"relative\/dir" is not an absolute path/],
    [[fs('a', { sharedDir: '' })], /not an absolute path/],
    [[fs('a', { daxWindowMiB: 3 })], /DAX window 3 MiB is not 0 \(no window\) or a multiple of 2 MiB/],
    [[fs('a', { daxWindowMiB: 64 * 1024 + 2 })], /65538 MiB/],
    [[fs('a', { daxWindowMiB: 1.5 })], /1.5 MiB/],
    [[fs('a', { fsId: 'bad id' })], /fs share id "bad id"/],
  ];
  for (const [shares, message] of bad) {
    assert.throws(() => ok(...shares), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(shares));
  }
});

test('--share HOST_DIR:TAG[:ro][:dax=MiB]: shares share0, share1, ... with the directory made absolute', () => {
  const shares = (...specs: string[]): FsShareDescription[] => parseBootArgs(['k', ...specs.flatMap((s) => ['--share', s])]).description.fsShares;
  assert.equal(shares('/srv/data:data', 'rel/dir:t2:ro', '/a:b/c:tag:dax=1024:ro', '/x:y:ro:dax=0'), [
    { fsId: 'share0', sharedDir: '/srv/data', tag: 'data', readOnly: false, daxWindowMiB: 0 },
    { fsId: 'share1', sharedDir: resolve('rel/dir'), tag: 't2', readOnly: true, daxWindowMiB: 0 },
    { fsId: 'share2', sharedDir: '/a:b/c', tag: 'tag', readOnly: true, daxWindowMiB: 1024 },
    { fsId: 'share3', sharedDir: '/x', tag: 'y', readOnly: true, daxWindowMiB: 0 },
  ]);
  assert.equal(shares(), []);
  validateDescription(parseBootArgs(['k', '--share', '/srv:a', '--share', '/srv:b']).description);
  for (const [spec, message] of [
    ['/srv', /give HOST_DIR:TAG/],
    [':tag', /give HOST_DIR:TAG/],
    ['/srv:', /give HOST_DIR:TAG/],
    ['/srv:ro', /give HOST_DIR:TAG/],
    ['/srv:t:ro:ro', /:ro given twice/],
    ['/srv:t:dax=2:dax=4', /more than one :dax=/],
    ['/srv:t:dax=lots', /dax=lots is not a whole number of MiB/],
    ['/srv:t:dax=3', /DAX window 3 MiB/],
    ['/srv:' + 'x'.repeat(37), /37 bytes/],
  ] as const) {
    assert.throws(() => shares(spec), (e: unknown) => e instanceof UsageError && message.test(e.message) && /tsvmm boot KERNEL/.test(e.usage ?? ''), spec);
  }
  assert.throws(() => shares('/a:t', '/b:t'), (e: unknown) => e instanceof UsageError && /fs share share1: tag "t" is already the tag of fs share share0/.test(e.message));
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
