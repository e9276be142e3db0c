// Unit tests of the pure parts of the nested-KVM test bed (test/bed/). Nothing here boots QEMU.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kernelReleaseOf, parseControlField, parseKernelDependency } from '../bed/apt-parse.js';
import { isElf, locatePayload, payloadFormat } from '../bed/bzimage.js';
import { BUILD_FORMAT, cacheRoot, computeCacheKey } from '../bed/cache-key.js';
import { parseCliArgs, tuningFromEnv, UsageError } from '../bed/cli-args.js';
import { CrlfNormalizer, LineSplitter, LineTail } from '../bed/console.js';
import { writeCpio } from '../bed/cpio.js';
import { isStaticElf } from '../bed/elf.js';
import { KernelImageError, ModuleResolveError, TestBedConfigError } from '../bed/errors.js';
import { classifyRun, decodeDebugExit, parseHarnessLine, parsePanicLine, type RunFacts } from '../bed/exit-status.js';
import { initramfsEntries } from '../bed/initramfs.js';
import { buildJobScript, jobEnvironment, scratchBinds, shellQuote } from '../bed/job.js';
import { isInstalledStatus } from '../bed/packages.js';
import { moduleDepends, moduleName, readModinfo, resolveLoadOrder } from '../bed/modinfo.js';
import { DEFAULT_TUNING, kernelCmdline, qemuArgs, qemuOptionValue, type QemuRunConfig } from '../bed/qemu-args.js';
import { hasPvhEntry } from '../bed/vmlinux.js';
import { HeartbeatWatchdog, type WatchdogPolicy } from '../bed/watchdog.js';

// ---------------------------------------------------------------- QEMU arguments

const config = (over: Partial<QemuRunConfig> = {}): QemuRunConfig => ({
  kernel: '/cache/vmlinux',
  initramfs: '/cache/initramfs.cpio',
  cpus: 2,
  memoryMiB: 2048,
  jobDir: '/tmp/tsvmm-bed-abc123',
  tuning: DEFAULT_TUNING,
  ...over,
});

/** uvu's assert.throws takes a predicate, not a class. */
const isA =
  (cls: abstract new (...args: never[]) => Error) =>
  (e: unknown): boolean =>
    e instanceof cls;

const argAfter = (args: string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];

test('qemuArgs: TCG with an AMD CPU model, the requested size, no reboot, no display', () => {
  const args = qemuArgs(config({ cpus: 1, memoryMiB: 1024 }));
  assert.is(argAfter(args, '-accel'), 'tcg,thread=multi');
  assert.is(argAfter(args, '-cpu'), 'max');
  assert.is(argAfter(args, '-smp'), '1');
  assert.is(argAfter(args, '-m'), '1024');
  assert.is(argAfter(args, '-kernel'), '/cache/vmlinux');
  assert.is(argAfter(args, '-initrd'), '/cache/initramfs.cpio');
  assert.is(argAfter(args, '-serial'), 'stdio');
  for (const flag of ['-no-reboot', '-nodefaults', '-no-user-config']) assert.ok(args.includes(flag), flag);
  assert.is(argAfter(args, '-display'), 'none');
});

test('qemuArgs: isa-debug-exit at 0xf4 and the host root shared read-only over 9p', () => {
  const args = qemuArgs(config());
  assert.is(argAfter(args, '-device'), 'isa-debug-exit,iobase=0xf4,iosize=0x04');
  const virtfs = argAfter(args, '-virtfs') ?? '';
  assert.match(virtfs, /^local,path=\/,mount_tag=hostroot,/);
  assert.match(virtfs, /readonly=on/);
  assert.match(virtfs, /security_model=none/);
});

test('qemuArgs: a heartbeat debugcon at 0xe9 into the job directory, and a QMP socket there', () => {
  const args = qemuArgs(config());
  const devices = args.filter((_, i) => args[i - 1] === '-device');
  assert.ok(devices.includes('isa-debugcon,iobase=0xe9,chardev=heartbeat'), devices.join(' '));
  assert.is(argAfter(args, '-chardev'), 'file,id=heartbeat,path=/tmp/tsvmm-bed-abc123/heartbeat');
  assert.is(argAfter(args, '-qmp'), 'unix:/tmp/tsvmm-bed-abc123/qmp.sock,server=on,wait=off');
});

test('qemuArgs: tuning reaches -accel and the kernel command line', () => {
  const args = qemuArgs(config({ tuning: { ...DEFAULT_TUNING, tcgThread: 'single', tbSizeMiB: 256, kernelArgs: ['quiet', 'mitigations=off'] } }));
  assert.is(argAfter(args, '-accel'), 'tcg,thread=single,tb-size=256');
  const append = argAfter(args, '-append') ?? '';
  assert.match(append, /^console=ttyS0 panic=-1 quiet mitigations=off /);
  assert.match(append, / tsvmm\.job=\/tmp\/tsvmm-bed-abc123 /);
  assert.match(append, / tsvmm\.9p=msize=512000,cache=loose$/);
});

test('qemuArgs: impossible sizes are TestBedConfigErrors naming the value', () => {
  assert.throws(() => qemuArgs(config({ cpus: 0 })), (e: unknown) => e instanceof TestBedConfigError && /cpus 0/.test(e.message));
  assert.throws(() => qemuArgs(config({ cpus: 1.5 })), isA(TestBedConfigError));
  assert.throws(() => qemuArgs(config({ memoryMiB: 64 })), /memoryMiB 64/);
  assert.throws(() => qemuArgs(config({ tuning: { ...DEFAULT_TUNING, tbSizeMiB: 0 } })), /tbSizeMiB 0/);
});

test('kernelCmdline: a job directory that would split the command line is refused', () => {
  assert.throws(() => kernelCmdline({ jobDir: '/tmp/my dir', tuning: DEFAULT_TUNING }), (e: unknown) => e instanceof TestBedConfigError && /"\/tmp\/my dir"/.test(e.message));
  assert.throws(() => kernelCmdline({ jobDir: '/tmp/x', tuning: { ...DEFAULT_TUNING, kernelArgs: ['a"b'] } }), isA(TestBedConfigError));
});

test('qemuOptionValue doubles commas', () => {
  assert.is(qemuOptionValue('/a,b,,c'), '/a,,b,,,,c');
  assert.is(qemuOptionValue('/plain'), '/plain');
});

// ---------------------------------------------------------------- exit status

test('decodeDebugExit: odd codes carry (status << 1) | 1, even codes carry nothing', () => {
  assert.is(decodeDebugExit(1), 0);
  assert.is(decodeDebugExit(7), 3);
  assert.is(decodeDebugExit(255), 127);
  assert.is(decodeDebugExit(0), undefined);
  assert.is(decodeDebugExit(2), undefined);
  // status 200: QEMU exits with (401 & 0xff) = 145, which keeps the low 7 bits (72)
  assert.is(decodeDebugExit(((200 << 1) | 1) & 0xff), 200 & 0x7f);
});

test('parsePanicLine finds the reason of a kernel panic', () => {
  assert.is(parsePanicLine('[    2.63] Kernel panic - not syncing: VFS: Unable to mount root fs'), 'kernel panic: VFS: Unable to mount root fs');
  assert.is(parsePanicLine('all good'), undefined);
});

test('parseHarnessLine recognises the guest markers and nothing else', () => {
  assert.equal(parseHarnessLine('[tsvmm-bed] command starting (guest uptime 2.81 s)'), { kind: 'started', guestUptimeS: 2.81 });
  assert.equal(parseHarnessLine('[tsvmm-bed] command exited with status 200 (guest uptime 9.10 s)'), { kind: 'exited', status: 200, guestUptimeS: 9.1 });
  assert.is(parseHarnessLine('user output: command exited with status 3 (guest uptime 1 s)'), undefined);
  assert.is(parseHarnessLine('[tsvmm-bed] guest setup failed: insmod kvm'), undefined);
});

const facts = (over: Partial<RunFacts>): RunFacts => ({
  timedOut: false,
  timeoutMs: 60_000,
  aborted: false,
  qemuExitCode: 1,
  qemuSignal: null,
  commandStarted: true,
  reportedStatus: 0,
  tail: '',
  ...over,
});

test('classifyRun: the console status (8 bits) wins when isa-debug-exit agrees', () => {
  assert.equal(classifyRun(facts({ qemuExitCode: 1, reportedStatus: 0 })).exitCode, 0);
  const r = classifyRun(facts({ qemuExitCode: ((200 << 1) | 1) & 0xff, reportedStatus: 200 }));
  assert.is(r.reason, 'exited');
  assert.is(r.exitCode, 200);
});

test('classifyRun: a machine the watchdog killed for a silent heartbeat is frozen, unless it had reported', () => {
  const r = classifyRun(facts({ frozenAfterS: 121, reportedStatus: undefined, qemuExitCode: null, qemuSignal: 'SIGKILL' }));
  assert.is(r.reason, 'frozen');
  assert.is(r.exitCode, null);
  assert.match(r.message, /no heartbeat from its kernel for 121 s/);
  assert.is(classifyRun(facts({ frozenAfterS: 121, reportedStatus: 3, qemuExitCode: (3 << 1) | 1 })).reason, 'exited', 'the status came first');
});

test('classifyRun: isa-debug-exit alone still gives the (7-bit) status', () => {
  const r = classifyRun(facts({ qemuExitCode: 7, reportedStatus: undefined }));
  assert.is(r.reason, 'exited');
  assert.is(r.exitCode, 3);
});

test('classifyRun: a timeout is a timeout whatever QEMU said', () => {
  const r = classifyRun(facts({ timedOut: true, timeoutMs: 90_000, qemuExitCode: null, qemuSignal: 'SIGKILL' }));
  assert.is(r.reason, 'timeout');
  assert.is(r.exitCode, null);
  assert.match(r.message, /timed out after 90 s/);
});

test('classifyRun: QEMU ending without a report is vm-died, with the last output', () => {
  const panic = classifyRun(facts({ qemuExitCode: 0, reportedStatus: undefined, tail: 'Kernel panic - not syncing: VFS' }));
  assert.is(panic.reason, 'vm-died');
  assert.is(panic.exitCode, null);
  assert.match(panic.message, /Kernel panic - not syncing/);
  const named = classifyRun(facts({ qemuExitCode: 0, reportedStatus: undefined, panic: 'kernel panic: sysrq triggered crash' }));
  assert.match(named.message, /^the test-bed VM died \(kernel panic: sysrq triggered crash\): QEMU exited with status 0/);
  // QEMU failing at startup exits 1, which looks like "status 0" on the port: not a report
  const startup = classifyRun(facts({ qemuExitCode: 1, reportedStatus: undefined, commandStarted: false, tail: 'qemu: could not load kernel' }));
  assert.is(startup.reason, 'vm-died');
  assert.match(startup.message, /never started/);
  // port and console disagree: not trusted
  assert.is(classifyRun(facts({ qemuExitCode: 7, reportedStatus: 5 })).reason, 'vm-died');
  assert.match(classifyRun(facts({ qemuExitCode: null, qemuSignal: 'SIGSEGV', reportedStatus: undefined })).message, /killed by SIGSEGV/);
});

// ---------------------------------------------------------------- cache key

const keyInputs = { kernelPackage: 'linux-image-6.1.0-56-amd64', kernelVersion: '6.1.192-2', initScript: new TextEncoder().encode('#!/bin/sh\n'), modules: ['kvm_amd', '9p'] };

test('computeCacheKey: readable, stable, and changes with each input', () => {
  const key = computeCacheKey(keyInputs);
  assert.match(key, /^linux-image-6\.1\.0-56-amd64_6\.1\.192-2-[0-9a-f]{12}$/);
  assert.is(computeCacheKey({ ...keyInputs }), key);
  assert.is.not(computeCacheKey({ ...keyInputs, kernelVersion: '6.1.192-3' }), key);
  assert.is.not(computeCacheKey({ ...keyInputs, initScript: new TextEncoder().encode('#!/bin/sh\n# x\n') }), key);
  assert.is.not(computeCacheKey({ ...keyInputs, modules: ['kvm_amd'] }), key);
  assert.ok(BUILD_FORMAT >= 1);
});

test('computeCacheKey: an epoch colon does not reach the file name', () => {
  assert.match(computeCacheKey({ ...keyInputs, kernelVersion: '1:6.1.192-2' }), /_1_6\.1\.192-2-/);
});

test('cacheRoot: XDG_CACHE_HOME when absolute, else ~/.cache', () => {
  assert.is(cacheRoot({ XDG_CACHE_HOME: '/var/cache/me' }, '/home/u'), '/var/cache/me/tsvmm/testbed');
  assert.is(cacheRoot({}, '/home/u'), '/home/u/.cache/tsvmm/testbed');
  assert.is(cacheRoot({ XDG_CACHE_HOME: '' }, '/home/u'), '/home/u/.cache/tsvmm/testbed');
  assert.is(cacheRoot({ XDG_CACHE_HOME: 'relative' }, '/home/u'), '/home/u/.cache/tsvmm/testbed');
});

// ---------------------------------------------------------------- job script and quoting

test('shellQuote makes one word of anything', () => {
  assert.is(shellQuote('plain'), "'plain'");
  assert.is(shellQuote("it's"), `'it'\\''s'`);
  assert.is(shellQuote(''), "''");
});

/** Runs a job script with the host's /bin/sh, as the guest would inside the chroot. */
function runJob(script: string): { stdout: string; status: number | null } {
  const r = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, timeout: 60_000 });
  return { stdout: r.stdout, status: r.status };
}

test('buildJobScript: a command with quotes, spaces, $ and backticks survives verbatim', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bed-test-'));
  try {
    const command = `printf '%s|' "a  b" 'c"d' "e'f" '$HOME' '\`x\`' "$X"; echo; printf '%s\\n' "$PWD"; exit 7`;
    const script = buildJobScript({ command, cwd: dir, env: { X: `$(echo no) 'q' "dq"`, HOME: join(dir, 'home') }, nodePath: '/opt/node/bin/node' });
    const r = runJob(script);
    assert.is(r.status, 7);
    assert.is(r.stdout, `a  b|c"d|e'f|$HOME|\`x\`|$(echo no) 'q' "dq"|\n${dir}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('buildJobScript: TSVMM_WHERE=testbed, node first on PATH, caller env last', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bed-test-'));
  try {
    const r = runJob(buildJobScript({ command: 'echo "$TSVMM_WHERE:$PATH:$TMPDIR:$EXTRA"', cwd: dir, env: { EXTRA: 'x y', HOME: dir }, nodePath: '/opt/node/bin/node' }));
    assert.is(r.stdout, 'testbed:/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/tmp:x y\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const env = new Map(jobEnvironment({ command: '', cwd: '/', env: { TSVMM_WHERE: 'elsewhere' }, nodePath: '/usr/bin/node' }));
  assert.is(env.get('TSVMM_WHERE'), 'elsewhere');
});

test('buildJobScript: a missing cwd fails with status 126 and a harness line', () => {
  const r = runJob(buildJobScript({ command: 'echo never', cwd: '/nonexistent/tsvmm', env: { HOME: tmpdir() }, nodePath: '/usr/bin/node' }));
  assert.is(r.status, 126);
  assert.match(r.stdout, /^\[tsvmm-bed\] cannot cd to \/nonexistent\/tsvmm/);
});

test('buildJobScript: bad env names, relative cwd and NUL bytes are refused', () => {
  const base = { command: 'true', cwd: '/', nodePath: '/usr/bin/node' };
  assert.throws(() => buildJobScript({ ...base, env: { 'A-B': '1' } }), (e: unknown) => e instanceof TestBedConfigError && /"A-B"/.test(e.message));
  assert.throws(() => buildJobScript({ ...base, env: { '1A': '1' } }), isA(TestBedConfigError));
  assert.throws(() => buildJobScript({ ...base, cwd: 'relative' }), /not an absolute path/);
  assert.throws(() => buildJobScript({ ...base, command: 'a\0b' }), /NUL/);
});

test('scratchBinds: host dirs under /tmp come back as their top directory', () => {
  assert.equal(scratchBinds(['/tmp/ci-check/sub/dir', '/usr/bin/node']), ['/tmp/ci-check']);
  assert.equal(scratchBinds(['/tmp/a/x', '/tmp/a/y', '/tmp/b']), ['/tmp/a', '/tmp/b']);
  assert.equal(scratchBinds(['/work/main', '/tmpfoo/x']), []);
  assert.equal(scratchBinds(['/tmp/../tmp/a/b']), ['/tmp/a']);
  assert.throws(() => scratchBinds(['/tmp']), isA(TestBedConfigError));
});

// ---------------------------------------------------------------- apt, kernel image, modules

test('parseKernelDependency: the pinned image package of linux-image-amd64', () => {
  const stanza = 'Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\nDescription: x\n';
  assert.equal(parseKernelDependency(stanza), { name: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2' });
  assert.equal(parseKernelDependency('Depends: initramfs-tools | linux-initramfs-tool, linux-image-6.12.38+deb13-amd64\n'), { name: 'linux-image-6.12.38+deb13-amd64', version: undefined });
  assert.is(parseKernelDependency('Depends: libc6 (>= 2.36)\n'), undefined);
  assert.is(parseKernelDependency(''), undefined);
  assert.is(parseControlField(stanza, 'Version'), '6.1.192-2');
  assert.is(kernelReleaseOf('linux-image-6.1.0-56-amd64'), '6.1.0-56-amd64');
  assert.is(kernelReleaseOf('linux-image-6.12.38+deb13-amd64'), '6.12.38+deb13-amd64');
  assert.is(kernelReleaseOf('linux-image-amd64'), undefined);
  assert.is(kernelReleaseOf('linux-image-cloud-amd64'), undefined);
});

test('isInstalledStatus reads dpkg status abbreviations', () => {
  assert.ok(isInstalledStatus('ii '));
  assert.ok(isInstalledStatus('hi '));
  assert.not.ok(isInstalledStatus('rc '));
  assert.not.ok(isInstalledStatus('un '));
  assert.not.ok(isInstalledStatus(''));
});

/** A minimal bzImage header: setup_sects, "HdrS", version, payload_offset/length. */
function fakeBzImage(version: number, payload: number[]): Uint8Array {
  const setupSects = 1;
  const img = new Uint8Array((setupSects + 1) * 512 + 16 + payload.length);
  const v = new DataView(img.buffer);
  img[0x1f1] = setupSects;
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, version, true);
  v.setUint32(0x248, 16, true);
  v.setUint32(0x24c, payload.length, true);
  img.set(payload, (setupSects + 1) * 512 + 16);
  return img;
}

test('locatePayload: finds an xz payload from the boot header', () => {
  const xz = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3];
  assert.equal(locatePayload(fakeBzImage(0x20f, xz)), { offset: 1024 + 16, length: xz.length, format: 'xz' });
  assert.is(payloadFormat(new Uint8Array([0x1f, 0x8b, 8])), 'gzip');
  assert.is(payloadFormat(new Uint8Array([0, 0, 0])), 'unknown');
});

test('locatePayload: not a bzImage, too old, or lying about its size', () => {
  assert.throws(() => locatePayload(new Uint8Array(100)), isA(KernelImageError));
  assert.throws(() => locatePayload(new Uint8Array(0x300)), /no "HdrS"/);
  assert.throws(() => locatePayload(fakeBzImage(0x206, [1])), /older than 2\.08/);
  const img = fakeBzImage(0x20f, [1, 2]);
  new DataView(img.buffer).setUint32(0x24c, 1 << 20, true);
  assert.throws(() => locatePayload(img), /outside/);
});

test('isElf and hasPvhEntry', () => {
  assert.ok(isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])));
  assert.not.ok(isElf(new Uint8Array([0x4d, 0x5a, 0, 0])));
  assert.ok(hasPvhEntry('# x\nCONFIG_PVH=y\nCONFIG_X=m\n'));
  assert.not.ok(hasPvhEntry('# CONFIG_PVH is not set\n'));
});

/** A minimal ELF64 with a .modinfo section (and, optionally, a PT_INTERP program header). */
function fakeElf(modinfo: string, opts: { interp?: boolean } = {}): Uint8Array {
  const enc = new TextEncoder();
  const info = enc.encode(modinfo);
  const shstr = enc.encode('\0.modinfo\0.shstrtab\0');
  const phoff = 64;
  const phnum = opts.interp === true ? 1 : 0;
  const infoOff = phoff + phnum * 56;
  const shstrOff = infoOff + info.length;
  const shoff = Math.ceil((shstrOff + shstr.length) / 8) * 8;
  const elf = new Uint8Array(shoff + 3 * 64);
  const v = new DataView(elf.buffer);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setBigUint64(0x20, BigInt(phoff), true);
  v.setBigUint64(0x28, BigInt(shoff), true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, phnum, true);
  v.setUint16(0x3a, 64, true);
  v.setUint16(0x3c, 3, true);
  v.setUint16(0x3e, 2, true);
  if (phnum === 1) v.setUint32(phoff, 3, true); // PT_INTERP
  elf.set(info, infoOff);
  elf.set(shstr, shstrOff);
  const section = (i: number, name: number, off: number, size: number): void => {
    const at = shoff + i * 64;
    v.setUint32(at, name, true);
    v.setBigUint64(at + 0x18, BigInt(off), true);
    v.setBigUint64(at + 0x20, BigInt(size), true);
  };
  section(1, 1, infoOff, info.length);
  section(2, 10, shstrOff, shstr.length);
  return elf;
}

test('readModinfo / moduleDepends read .modinfo from an ELF64 module', () => {
  const ko = fakeElf('license=GPL\0depends=kvm,ccp\0alias=a\0alias=b\0name=kvm_amd\0');
  const info = readModinfo(ko);
  assert.equal(info.get('alias'), ['a', 'b']);
  assert.equal(info.get('name'), ['kvm_amd']);
  assert.equal(moduleDepends(ko), ['kvm', 'ccp']);
  assert.equal(moduleDepends(fakeElf('depends=\0name=irqbypass\0')), []);
  assert.equal(readModinfo(new Uint8Array(10)).size, 0);
});

test('isStaticElf: no PT_INTERP means static', () => {
  assert.ok(isStaticElf(fakeElf('')));
  assert.not.ok(isStaticElf(fakeElf('', { interp: true })));
  assert.not.ok(isStaticElf(new TextEncoder().encode('#!/bin/sh\n')));
});

test('moduleName: file names and dashes normalise to module names', () => {
  assert.is(moduleName('kernel/arch/x86/kvm/kvm-amd.ko'), 'kvm_amd');
  assert.is(moduleName('9pnet_virtio.ko.xz'), '9pnet_virtio');
  assert.is(moduleName('virtio_pci.ko.zst'), 'virtio_pci');
});

const graph: Record<string, string[]> = {
  kvm_amd: ['kvm', 'ccp'],
  kvm: ['irqbypass'],
  ccp: [],
  irqbypass: [],
  '9p': ['9pnet', 'fscache', 'netfs'],
  fscache: ['netfs'],
  netfs: [],
  '9pnet': [],
};

test('resolveLoadOrder: dependencies first, each module once', () => {
  const order = resolveLoadOrder(['kvm-amd', '9p', 'kvm'], (n) => graph[n]);
  assert.equal(order, ['irqbypass', 'kvm', 'ccp', 'kvm_amd', '9pnet', 'netfs', 'fscache', '9p']);
});

test('resolveLoadOrder: built-in modules are skipped, missing ones are named', () => {
  assert.equal(resolveLoadOrder(['kvm_amd'], (n) => graph[n], new Set(['ccp'])), ['irqbypass', 'kvm', 'kvm_amd']);
  assert.throws(
    () => resolveLoadOrder(['kvm_amd'], (n) => (n === 'ccp' ? undefined : graph[n])),
    (e: unknown) => e instanceof ModuleResolveError && /ccp \(needed by kvm_amd\)/.test(e.message),
  );
  assert.throws(() => resolveLoadOrder(['a'], (n) => (n === 'a' ? ['b'] : ['a'])), /depends on itself/);
});

// ---------------------------------------------------------------- cpio and initramfs

interface CpioRecord {
  name: string;
  mode: number;
  size: number;
  rdev: [number, number];
  data: Buffer;
}

/** Reads back a newc archive (what the kernel's initramfs unpacker does). */
function readCpio(buf: Buffer): CpioRecord[] {
  const out: CpioRecord[] = [];
  let at = 0;
  for (;;) {
    assert.is(buf.toString('latin1', at, at + 6), '070701');
    const field = (i: number): number => parseInt(buf.toString('latin1', at + 6 + i * 8, at + 14 + i * 8), 16);
    const [mode, size, rdevMaj, rdevMin, nameSize] = [field(1), field(6), field(9), field(10), field(11)];
    const name = buf.toString('utf8', at + 110, at + 110 + nameSize - 1);
    at += 110 + nameSize;
    at += (4 - (at % 4)) % 4;
    const data = buf.subarray(at, at + size);
    at += size + ((4 - (size % 4)) % 4);
    if (name === 'TRAILER!!!') break;
    out.push({ name, mode, size, rdev: [rdevMaj, rdevMin], data });
  }
  assert.is(at, buf.length, 'archive ends after the trailer');
  return out;
}

test('writeCpio: newc entries of every kind, 4-byte aligned, with a trailer', () => {
  const buf = writeCpio([
    { kind: 'dir', path: 'bin' },
    { kind: 'file', path: '/bin/hello', data: new TextEncoder().encode('hi!'), mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
  ]);
  assert.is(buf.length % 4, 0);
  const recs = readCpio(buf);
  assert.equal(recs.map((r) => r.name), ['bin', 'bin/hello', 'bin/sh', 'dev/console']);
  assert.is(recs[0]?.mode, 0o040755);
  assert.is(recs[1]?.mode, 0o100755);
  assert.is(recs[1]?.data.toString(), 'hi!');
  assert.is(recs[2]?.mode, 0o120777);
  assert.is(recs[2]?.data.toString(), 'busybox');
  assert.is(recs[3]?.mode, 0o020600);
  assert.equal(recs[3]?.rdev, [5, 1]);
  assert.throws(() => writeCpio([{ kind: 'dir', path: '../evil' }]), isA(RangeError));
});

test('initramfsEntries: busybox, /init and the modules with their load order', () => {
  const entries = initramfsEntries({
    busybox: new Uint8Array([1]),
    init: new TextEncoder().encode('#!/bin/busybox sh\n'),
    modules: [
      { name: 'kvm', data: new Uint8Array([2]) },
      { name: 'kvm_amd', data: new Uint8Array([3]) },
    ],
  });
  const recs = readCpio(writeCpio(entries));
  const byName = new Map(recs.map((r) => [r.name, r]));
  assert.is(byName.get('init')?.mode, 0o100755);
  assert.is(byName.get('bin/busybox')?.mode, 0o100755);
  assert.ok(byName.has('dev/console'));
  assert.ok(byName.has('lib/tsvmm/kvm_amd.ko'));
  assert.is(byName.get('lib/tsvmm/order')?.data.toString(), 'kvm\nkvm_amd\n');
});

// ---------------------------------------------------------------- console stream, CLI

test('CrlfNormalizer: CRLF split across chunks becomes LF, a lone CR stays', () => {
  const n = new CrlfNormalizer();
  assert.is(n.push('a\r'), 'a');
  assert.is(n.push('\nb\r\n'), '\nb\n');
  assert.is(n.push('50%\r100%\r'), '50%\r100%');
  assert.is(n.push('x'), '\rx');
  assert.is(n.push('end\r'), 'end');
  assert.is(n.flush(), '\r');
});

test('LineSplitter and LineTail', () => {
  const s = new LineSplitter();
  assert.equal(s.push('a\nb'), ['a']);
  assert.equal(s.push('c\n\nd'), ['bc', '']);
  assert.equal(s.flush(), ['d']);
  const t = new LineTail(2);
  for (const l of ['1', '2', '3']) t.push(l);
  assert.is(t.text(), '2\n3');
});

test('parseCliArgs: options before --, the command joined after it', () => {
  assert.equal(parseCliArgs(['--', 'npm', 'test']), { timeoutS: 1800, cpus: undefined, memoryMiB: undefined, command: 'npm test' });
  assert.equal(parseCliArgs(['--timeout', '60', '--cpus=1', '--memory', '1024', '--', 'echo "$X"']), { timeoutS: 60, cpus: 1, memoryMiB: 1024, command: 'echo "$X"' });
  assert.is(parseCliArgs(['--help']), 'help');
  assert.throws(() => parseCliArgs(['echo']), isA(UsageError));
  assert.throws(() => parseCliArgs(['--']), /no command/);
  assert.throws(() => parseCliArgs(['--timeout', 'soon', '--', 'x']), /--timeout needs a positive whole number, got "soon"/);
  assert.throws(() => parseCliArgs(['--cpus', '0', '--', 'x']), /--cpus/);
});

test('tuningFromEnv: TSVMM_TESTBED_CPU replaces -cpu, TSVMM_TESTBED_KERNEL_ARGS adds words', () => {
  assert.equal(tuningFromEnv({}), {});
  assert.equal(tuningFromEnv({ TSVMM_TESTBED_CPU: ' max,-vgif ', TSVMM_TESTBED_KERNEL_ARGS: ' kvm_amd.npt=0  idle=poll' }), {
    cpu: 'max,-vgif',
    kernelArgs: [...DEFAULT_TUNING.kernelArgs, 'kvm_amd.npt=0', 'idle=poll'],
  });
});

test('qemuArgs: the -cpu value comes from the tuning and is checked', () => {
  const args = qemuArgs(config({ tuning: { ...DEFAULT_TUNING, cpu: 'EPYC,-vgif,+npt' } }));
  assert.is(args[args.indexOf('-cpu') + 1], 'EPYC,-vgif,+npt');
  assert.is(qemuArgs(config())[qemuArgs(config()).indexOf('-cpu') + 1], 'max');
  assert.throws(() => qemuArgs(config({ tuning: { ...DEFAULT_TUNING, cpu: 'max -enable-kvm' } })), isA(TestBedConfigError));
  assert.throws(() => qemuArgs(config({ tuning: { ...DEFAULT_TUNING, cpu: '' } })), /cpu ""/);
});

test('qemuArgs: L1 keeps a periodic tick (the lost wake-up heals within one, watchdog.ts)', () => {
  const cmdline = kernelCmdline({ jobDir: '/tmp/x', tuning: DEFAULT_TUNING }).split(' ');
  assert.ok(cmdline.includes('nohz=off') && cmdline.includes('highres=off'), cmdline.join(' '));
});

// ---------------------------------------------------------------- heartbeat watchdog

const POLICY: WatchdogPolicy = { reviveAfterMs: 10_000, revivePeriodMs: 10_000, maxRevives: 2, freezeMs: 60_000 };

test('HeartbeatWatchdog: beats keep it quiet; a silence gets revives, spaced, then frozen once', () => {
  const dog = new HeartbeatWatchdog(POLICY, 0);
  assert.equal(dog.observe(1, 2_000), { kind: 'none' });
  assert.equal(dog.observe(2, 4_000), { kind: 'none' });
  assert.equal(dog.observe(2, 13_999), { kind: 'none' });
  assert.equal(dog.observe(2, 14_000), { kind: 'revive', silentMs: 10_000, attempt: 1 });
  assert.equal(dog.observe(2, 15_000), { kind: 'none' }, 'the next revive waits revivePeriodMs');
  assert.equal(dog.observe(2, 24_000), { kind: 'revive', silentMs: 20_000, attempt: 2 });
  assert.equal(dog.observe(2, 40_000), { kind: 'none' }, 'maxRevives reached');
  assert.equal(dog.observe(2, 64_000), { kind: 'frozen', silentMs: 60_000 });
  assert.equal(dog.observe(3, 65_000), { kind: 'none' }, 'frozen is final');
  assert.is(dog.revived, 0);
});

test('HeartbeatWatchdog: a beat after a revive is reported as revived and starts a new silence', () => {
  const dog = new HeartbeatWatchdog(POLICY, 0);
  assert.is(dog.observe(0, 10_000).kind, 'revive');
  assert.equal(dog.observe(1, 12_000), { kind: 'revived', silentMs: 12_000, attempts: 1 });
  assert.is(dog.revived, 1);
  assert.equal(dog.observe(1, 21_999), { kind: 'none' });
  assert.equal(dog.observe(1, 22_000), { kind: 'revive', silentMs: 10_000, attempt: 1 }, 'a new silence revives again at once');
  assert.equal(dog.observe(2, 23_000).kind, 'revived');
  assert.is(dog.revived, 2);
});

test('HeartbeatWatchdog: zero turns reviving or freezing off', () => {
  const quiet = new HeartbeatWatchdog({ ...POLICY, reviveAfterMs: 0, freezeMs: 0 }, 0);
  assert.equal(quiet.observe(0, 1e9), { kind: 'none' });
  const killOnly = new HeartbeatWatchdog({ ...POLICY, reviveAfterMs: 0 }, 0);
  assert.equal(killOnly.observe(0, 59_999), { kind: 'none' });
  assert.is(killOnly.observe(0, 60_000).kind, 'frozen');
});

test.run();
