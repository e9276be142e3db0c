// virtio-blk benchmark (issue 6): sequential read/write MiB/s and 4 KiB random read/write IOPS
// measured inside the kernels/ guest by test/guest/blkbench.c (O_DIRECT on the disk), for tsvmm
// and for QEMU's microvm with virtio-blk-device, on the same kernel, initramfs, command line,
// guest RAM and raw image file; rounds interleaved (tsvmm, qemu, tsvmm, qemu, ...) so that load
// from elsewhere falls on both alike. Reports medians per figure, tsvmm/QEMU ratios, the guest's
// interrupts per request for each VMM, and tsvmm's exits to user space per request (--stats of
// each boot minus those of a baseline boot that does everything but the tests).
//
//   node dist/bench/blk.js [--rounds 3] [--json FILE]      (npm run bench:blk)
// Where this host's /dev/kvm cannot boot Linux (kvm-pvm, or none), or with --testbed, it runs
// itself inside the nested-KVM test bed and writes bench/results/blk-testbed.json here (the bed's
// view of the project is read-only; inside the bed the JSON travels back as one `BLK-JSON {...}`
// console line). --native runs it here whatever the host.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/package-root.js';
import { BedSession, benchGuest, GUEST_BENCH_OPTIONS, runsInTestBed } from '../src/bench/guest-bench.js';
import { hostInfo } from '../src/check/host.js';
import { parseGuestOutput, parseTsvmmStats, subtractStats, type TsvmmStats } from '../src/bench/blk/parse.js';
import { exitsPerRequest, isTsvmmVariant, formatCpuTable, formatKvmTable, formatPairedTable, formatTable, summarise, type VmmRun } from '../src/bench/blk/report.js';
import { clockTicks, cpuBetween, threadTimes, type CpuSplit, type ThreadTimes } from '../src/bench/threads.js';
import { mountExt4Loop } from '../test/helpers/ext4-loop.js';
import { kvmStatsAvailable, readKvmCounters, subtractCounters, type KvmCounters } from '../src/bench/kvm-stats.js';

const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';
const MEMORY_MIB = 256;
const JSON_PREFIX = 'BLK-JSON ';
/** Measured in the test bed (bench/README.md, session 5): after 2 s tsvmm's QD1 figures were
 * still 0.43-0.75x of QEMU's with V8's compiler threads busy (421 µs of other-thread CPU per 4 KiB
 * read); after 10 s 0.91x, with 7 µs. */
const DEFAULT_WARMUP_S = 10;
const DEFAULT_TESTS = 'seqread,seqwrite,randread,randwrite,randread:8,randwrite:8';
const USAGE = `usage: node dist/bench/blk.js [--testbed | --native] [--rounds N] [--seconds S] [--warmup S] [--size MiB]
       [--tests LIST] [--buffers contiguous|scattered] [--tsvmm-cache LIST] [--tsvmm-aio LIST] [--tsvmm-io-boost LIST] [--qemu-cache LIST] [--qemu-aio LIST] [--scratch-fs tmp|ext4] [--kernel F --initrd F] [--tools F] [--json FILE] [--vm-timeout S]
  --testbed         run inside the nested-KVM test bed (the default where /dev/kvm is kvm-pvm or absent)
  --native          run on this host whatever its /dev/kvm
  --rounds N        boots of each VMM, interleaved (default 3)
  --seconds S       duration of each test in the guest (default 3)
  --warmup S        untimed run of each test just before its timed one (default 10; 0: none):
                    tsvmm's device code is JavaScript that V8 compiles while it runs, so the
                    first seconds measure the compiler (in the test bed, where TCG emulates
                    V8's compiler and its fresh code, for 10 s and more); the warm-up's own
                    figure is reported as the cold figure (coldFigures in the JSON)
  --size MiB        scratch disk size (default 256)
  --tests LIST      blkbench tests, TEST[:QD] comma-separated (default ${DEFAULT_TESTS})
  --buffers LAYOUT  the physical layout of blkbench's I/O buffers in the guest (blkbench -l):
                    contiguous (default: one segment, one descriptor per buffer) or scattered
                    (every page its own segment: 256 descriptors and two requests per 1 MiB);
                    built the same in every boot, so both VMMs get the same descriptors
  --tsvmm-cache LIST tsvmm's scratch-disk modes, comma-separated (default writeback): writeback
                    (the host's page cache; variant 'tsvmm') and direct (--disk PATH:direct,
                    O_DIRECT; variant 'tsvmm-direct', the like of QEMU's cache=none)
  --tsvmm-aio LIST  tsvmm's I/O engines, comma-separated (default threads): threads (libuv's
                    threadpool) and io_uring (:aio=io_uring; variants named with '-io_uring'),
                    each with every --tsvmm-cache mode
  --tsvmm-io-boost LIST
                    tsvmm's --io-boost values, comma-separated (default: tsvmm's own default):
                    default or a number of nice steps (variants named with '-boostN'), each with
                    every engine and cache mode
  --qemu-aio LIST   QEMU -drive aio= engines, comma-separated (default threads, the issue's peer):
                    threads and io_uring (variants named with '-io_uring')
  --qemu-cache LIST QEMU -drive cache= modes to compare, comma-separated (default writeback;
                    'none' needs O_DIRECT, which tmpfs refuses: use it with --scratch-fs ext4)
  --scratch-fs FS   where the scratch image lives: tmp (a file in the temp directory) or ext4
                    (an ext4 file system made for the run on a loop device over a file in the
                    temp directory; needs root). Default ext4 in the test bed, whose only
                    writable file system is tmpfs (no O_DIRECT, no RWF_NOWAIT reads), else tmp
  --kernel/--initrd the guest (default: what kernels/build.sh built)
  --tools F         the ext4 tools disk of test/guest/build.sh (default: build or find it)
  --json FILE       where to write the results (default bench/results/blk-testbed.json with
                    --testbed, else bench/results/blk-native.json; inside the bed: none)
  --bed-cpus N      CPUs of each test-bed machine (default 1; the bed's L1 is QEMU TCG on this
                    host's cores, one thread per CPU)
  --vm-timeout S    give up on one boot after S seconds and boot again (default 120 + 3 x the
                    tests' time)`;

interface Options {
  rounds: number;
  seconds: number;
  warmupS: number;
  sizeMiB: number;
  tests: string[];
  /** blkbench -l: the guest buffers' physical layout (test/guest/blkbench.c). */
  buffers: 'contiguous' | 'scattered';
  qemuCaches: string[];
  tsvmmCaches: ('writeback' | 'direct')[];
  tsvmmAios: ('io_uring' | 'threads')[];
  /** tsvmm --io-boost values; undefined: tsvmm's default. */
  tsvmmIoBoosts: (number | undefined)[];
  qemuAios: ('io_uring' | 'threads')[];
  scratchFs: 'tmp' | 'ext4';
  kernel: string;
  initrd: string;
  tools: string;
  json: string | undefined;
  vmTimeoutS: number;
  /** CPUs of the test-bed machine (--testbed only). */
  bedCpus: number;
  /** Which variant boots first in the first round (internal: the --testbed parent passes the
   * round's number, so that the order rotates from machine to machine). */
  rotate: number;
  /** Print this machine's session as one JSON line for a --testbed parent (internal). */
  session: boolean;
  /** Boots of one VMM in one round before giving up: 1 in a test-bed session (the parent
   * starts a fresh machine instead), else 3. */
  attempts: number;
}

function positive(name: string, v: string | undefined, dflt: number, integer = true): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} ${v}: expected a positive ${integer ? 'integer' : 'number'}\n${USAGE}`);
  return n;
}

/** The tools disk: --tools, else test/guest/build.sh (which builds it once, then finds it). */
function toolsImage(given: string | undefined): string {
  if (given) return given;
  const out = execFileSync('bash', [join(packageRoot(), 'test', 'guest', 'build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const tools = out.trim().split('\n').pop();
  if (!tools?.endsWith('tools.ext4')) throw new Error(`test/guest/build.sh printed no tools image:\n${out}`);
  return tools;
}

function parseOptions(argv: string[]): { opts: Options; testbed: boolean; forward: string[] } {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...GUEST_BENCH_OPTIONS,
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      size: { type: 'string' },
      tests: { type: 'string' },
      buffers: { type: 'string' },
      'qemu-cache': { type: 'string' },
      'tsvmm-cache': { type: 'string' },
      'tsvmm-aio': { type: 'string' },
      'qemu-aio': { type: 'string' },
      'tsvmm-io-boost': { type: 'string' },
      'scratch-fs': { type: 'string' },
      tools: { type: 'string' },
      rotate: { type: 'string' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const tests = (values.tests ?? DEFAULT_TESTS).split(',').filter(Boolean);
  for (const t of tests) if (!/^(seq|rand)(read|write)(:\d+)?$/.test(t)) throw new Error(`--tests: '${t}' is not TEST[:QD] (seqread, seqwrite, randread, randwrite)`);
  const buffers = values.buffers ?? 'contiguous';
  if (buffers !== 'contiguous' && buffers !== 'scattered') throw new Error(`--buffers: '${buffers}' is not contiguous or scattered`);
  const qemuCaches = (values['qemu-cache'] ?? 'writeback').split(',').filter(Boolean);
  for (const c of qemuCaches) if (!/^(none|writeback|writethrough|directsync|unsafe)$/.test(c)) throw new Error(`--qemu-cache: '${c}' is not a QEMU cache mode`);
  const tsvmmCaches = (values['tsvmm-cache'] ?? 'writeback').split(',').filter(Boolean);
  const isTsvmmCache = (c: string): c is 'writeback' | 'direct' => c === 'writeback' || c === 'direct';
  if (tsvmmCaches.length === 0 || !tsvmmCaches.every(isTsvmmCache)) throw new Error(`--tsvmm-cache: '${values['tsvmm-cache']}' is not a list of writeback and direct`);
  const aioList = (flag: 'tsvmm-aio' | 'qemu-aio', fallback: string): ('io_uring' | 'threads')[] => {
    const list = (values[flag] ?? fallback).split(',').filter(Boolean);
    const isAio = (a: string): a is 'io_uring' | 'threads' => a === 'io_uring' || a === 'threads';
    if (list.length === 0 || !list.every(isAio)) throw new Error(`--${flag}: '${values[flag]}' is not a list of io_uring and threads`);
    return list;
  };
  const tsvmmAios = aioList('tsvmm-aio', 'threads');
  const qemuAios = aioList('qemu-aio', 'threads');
  const ioBoostArg = values['tsvmm-io-boost'] ?? 'default';
  const tsvmmIoBoosts = ioBoostArg.split(',').filter(Boolean).map((b) => {
    if (b === 'default') return undefined;
    if (!/^\d+$/.test(b)) throw new Error(`--tsvmm-io-boost: '${b}' is not default or a number of nice steps`);
    return Number(b);
  });
  if (tsvmmIoBoosts.length === 0) throw new Error('--tsvmm-io-boost: empty list');
  const scratchFsGiven = values['scratch-fs'];
  if (scratchFsGiven !== undefined && scratchFsGiven !== 'tmp' && scratchFsGiven !== 'ext4') throw new Error(`--scratch-fs: '${scratchFsGiven}' is not tmp or ext4`);
  // kvm-pvm runs toy guests only, and without /dev/kvm nothing runs: Linux needs the test bed.
  const testbed = runsInTestBed(values);
  const scratchFs = scratchFsGiven ?? (testbed || process.env.TSVMM_WHERE === 'testbed' ? 'ext4' : 'tmp');
  const { kernel, initrd } = benchGuest(values);
  const seconds = positive('seconds', values.seconds, 3, false);
  const warmupS = values.warmup === '0' ? 0 : positive('warmup', values.warmup, DEFAULT_WARMUP_S, false);
  const opts: Options = {
    rounds: positive('rounds', values.rounds, 3),
    seconds,
    warmupS,
    sizeMiB: positive('size', values.size, 256),
    tests,
    buffers,
    qemuCaches,
    tsvmmCaches,
    tsvmmAios,
    tsvmmIoBoosts,
    qemuAios,
    scratchFs,
    kernel,
    initrd,
    tools: toolsImage(values.tools),
    json: values.json,
    session: values.session ?? false,
    rotate: values.rotate === '0' ? 0 : positive('rotate', values.rotate, 0),
    attempts: values.session ? 1 : 3,
    bedCpus: positive('bed-cpus', values['bed-cpus'], 1),
    // A boot takes seconds; a nested guest in the test bed that stalls (see invalid()) may not
    // wake for minutes: give up on a boot after three times its tests' time plus two minutes
    // (then it is redone).
    vmTimeoutS: positive('vm-timeout', values['vm-timeout'], 120 + 3 * tests.length * (seconds + warmupS)),
  };
  // What the run inside the test bed gets: everything resolved here (the bed's HOME differs,
  // and building there would be slow), no --testbed, no --json (written here).
  const forward = [
    '--seconds', String(opts.seconds), '--warmup', String(opts.warmupS), '--size', String(opts.sizeMiB),
    '--tests', tests.join(','), '--buffers', buffers, '--qemu-cache', qemuCaches.join(','), '--tsvmm-cache', tsvmmCaches.join(','),
    '--tsvmm-aio', tsvmmAios.join(','), '--tsvmm-io-boost', ioBoostArg, '--qemu-aio', qemuAios.join(','), '--scratch-fs', scratchFs, '--kernel', kernel, '--initrd', initrd,
    '--tools', opts.tools, '--vm-timeout', String(opts.vmTimeoutS),
  ];
  return { opts, testbed, forward };
}

/**
 * The directory the scratch image goes in: `dir` itself, or (ext4) an ext4 file system made for
 * the run on a loop device over `dir`/ext4.img, with room for the image; unmount() undoes it.
 */
function scratchDir(dir: string, fs: 'tmp' | 'ext4', mib: number): { path: string; unmount: () => void } {
  if (fs === 'tmp') return { path: dir, unmount: () => undefined };
  return mountExt4Loop(dir, mib + 64);
}

/** A raw image of `mib` MiB whose every page is written (so tmpfs or a sparse file allocates it
 * now, not during the first VMM's write test), with non-zero data. */
function makeScratch(dir: string, mib: number): string {
  const path = join(dir, 'scratch.img');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 251 + 17) & 0xff;
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) writeSync(fd, chunk);
    // Written back now: left dirty, the kernel would write it back (through the loop device,
    // on the test bed's one CPU) during the tests of whichever VMM boots first.
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** The shell line typed at the guest's prompt: find the read-only tools disk and the writable
 * scratch disk (the order of virtio-mmio devices differs between VMMs), mount the tools, run.
 * The console echoes what is typed, so a marker the host looks for is computed by the shell
 * ($((6*7))): the echo of the line cannot match it. */
function guestScript(opts: Options, run: boolean): string {
  const find = 'for d in /sys/block/vd*; do if [ "$(cat $d/ro)" = 1 ]; then T=${d##*/}; else S=${d##*/}; fi; done';
  const mount = 'mkdir -p /mnt/t && mount -t ext4 -o ro /dev/$T /mnt/t';
  const warm = opts.warmupS > 0 ? `-w ${opts.warmupS} ` : '';
  const bench = run ? `/mnt/t/blkbench ${warm}-l ${opts.buffers} /dev/$S ${opts.seconds} ${opts.tests.join(' ')}` : 'test -x /mnt/t/blkbench && echo BLKBENCH-BASELINE-$((6*7))';
  return `${find}; ${mount} && ${bench}\nexit\n`;
}

interface Boot {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Host CPU of the VMM over each test's timed interval (warm-ups excluded): one entry per test. */
  cpu: CpuSplit[];
  /** KVM's counters over the same intervals, where readable (kvm-stats.ts). */
  kvm: KvmCounters[];
  /** Killed after --vm-timeout. */
  timedOut: boolean;
}

/** Whether KVM's debugfs counters are read around each test (decided once, at the first boot). */
let kvmCounters: boolean | undefined;

/**
 * Spawns a VMM, types `script` at the first shell prompt, and waits for it to end. The VMM's
 * threads' CPU times are read when each blkbench line (the device line, then per test its
 * warm-up line and its result line)
 * arrives, so that each test's interval can be charged to the VMM's threads.
 */
function boot(cmd: string, args: string[], script: string, timeoutS: number): Promise<Boot> {
  kvmCounters ??= kvmStatsAvailable();
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let typed = false;
    const snapshots: Map<number, ThreadTimes>[] = [];
    const counters: (KvmCounters | undefined)[] = [];
    /** Whether each snapshot was taken at a RESULT line (the end of a timed interval). */
    const atResult: boolean[] = [];
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const marks = stdout.match(/^BLKBENCH-(DEVICE|WARM|RESULT) [^\n]*\n/gm) ?? [];
      while (child.pid !== undefined && snapshots.length < marks.length) {
        atResult.push(marks[snapshots.length]?.startsWith('BLKBENCH-RESULT') === true);
        snapshots.push(threadTimes(child.pid));
        counters.push(kvmCounters ? readKvmCounters() : undefined);
      }
      // Typed only at the prompt: input sent before the guest's UART driver starts is lost.
      if (!typed && /\/ # /.test(stdout)) {
        typed = true;
        child.stdin.write(script);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => undefined); // the VMM may exit before reading it all
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const pid = child.pid ?? -1;
      // A test's interval: from the line before its RESULT line (DEVICE, the previous RESULT, or
      // its own WARM line) to the RESULT line; warm-ups are not charged.
      const ends = atResult.flatMap((r, i) => (r && i > 0 ? [i] : []));
      const cpu = ends.map((i) => cpuBetween(pid, snapshots[i - 1] as Map<number, ThreadTimes>, snapshots[i] as Map<number, ThreadTimes>, clockTicks()));
      const kvm = ends.flatMap((i) => {
        const a = counters[i - 1];
        const b = counters[i];
        return a && b ? [subtractCounters(b, a)] : [];
      });
      resolve({ code, stdout, stderr, wallMs: Number(process.hrtime.bigint() - t0) / 1e6, cpu, kvm, timedOut });
    });
  });
}

const tail = (b: Boot): string => `\n--- console ---\n${b.stdout.slice(-2000)}\n--- stderr ---\n${b.stderr.slice(-2000)}`;

interface Variant {
  name: string;
  cmd: string;
  args: string[];
}

function variants(opts: Options, scratch: string): Variant[] {
  const tsvmm = (cache: 'writeback' | 'direct', aio: 'io_uring' | 'threads', boost: number | undefined): Variant => ({
    name: `tsvmm${cache === 'direct' ? '-direct' : ''}${aio === 'io_uring' ? '-io_uring' : ''}${boost === undefined ? '' : `-boost${boost}`}`,
    cmd: process.execPath,
    args: [join(packageRoot(), 'bin', 'tsvmm.js'), 'boot', opts.kernel, '--initrd', opts.initrd, '--cmdline', CMDLINE, '--memory', String(MEMORY_MIB),
      '--disk', `${scratch}${cache === 'direct' ? ':direct' : ''}:aio=${aio}`, '--disk', `${opts.tools}:ro`, '--stats',
      ...(boost === undefined ? [] : ['--io-boost', String(boost)])],
  });
  // The QEMU line of bench/boot.ts plus two virtio-blk-device disks on the microvm's virtio-mmio
  // transports (which QEMU announces on the kernel command line itself); aio=threads is QEMU's
  // thread-pool backend, the counterpart of tsvmm's default aio=threads; aio=io_uring that of tsvmm's aio=io_uring.
  const qemu = (cache: string, aio: 'io_uring' | 'threads'): Variant => ({
    name: `qemu-${cache}${aio === 'io_uring' ? '-io_uring' : ''}`,
    cmd: 'qemu-system-x86_64',
    args: ['-name', 'blkbench,debug-threads=on', '-enable-kvm', '-M', 'microvm,acpi=off', '-cpu', 'host', '-m', String(MEMORY_MIB), '-smp', '1', '-nodefaults', '-no-user-config', '-nographic',
      '-serial', 'stdio', '-no-reboot', '-device', 'i8042', '-kernel', opts.kernel, '-initrd', opts.initrd, '-append', CMDLINE,
      '-drive', `file=${scratch},if=none,id=scratch,format=raw,cache=${cache},aio=${aio}`, '-device', 'virtio-blk-device,drive=scratch',
      '-drive', `file=${opts.tools},if=none,id=tools,format=raw,readonly=on`, '-device', 'virtio-blk-device,drive=tools'],
  });
  return [
    ...opts.tsvmmIoBoosts.flatMap((boost) => opts.tsvmmAios.flatMap((aio) => opts.tsvmmCaches.map((cache) => tsvmm(cache, aio, boost)))),
    ...opts.qemuAios.flatMap((aio) => opts.qemuCaches.map((cache) => qemu(cache, aio))),
  ];
}

/** Why a boot's figures cannot be used, or undefined when they can. */
function invalid(v: Variant, b: Boot, opts: Options): string | undefined {
  // Nested guests in the test bed stall now and then (test/bed: a timer interrupt that does not
  // come for tens of seconds; the guest reports an RCU stall when it wakes up). A stall during a
  // timed test would be measured as the VMM's slowness: such a boot is discarded and redone.
  const stall = /rcu: INFO|self-detected stall|soft lockup|hung_task/.exec(b.stdout);
  if (stall) return `the guest stalled ("${stall[0]}")`;
  if (b.timedOut) return `no end within ${opts.vmTimeoutS} s: killed (a stalled nested guest, most likely)`;
  const g = parseGuestOutput(b.stdout);
  if (!g.done) return `blkbench did not finish (exit ${b.code})`;
  if (g.device?.bytes !== opts.sizeMiB * 1024 * 1024) return `the guest benchmarked ${g.device?.path} of ${g.device?.bytes} bytes, not the ${opts.sizeMiB} MiB scratch disk`;
  if (g.results.length !== opts.tests.length) return `${g.results.length} results for ${opts.tests.length} tests`;
  for (const r of [...g.results, ...g.warmups]) {
    const want = opts.buffers === 'contiguous' ? 1 : r.bs / 4096;
    if (r.segments !== want) return `${r.test} ran on buffers of ${r.segments} physical segments, not ${want} (--buffers ${opts.buffers})`;
  }
  if (b.code !== 0) return `${v.name} exited with ${b.code}`;
  return undefined;
}

/** Boots until one gives usable figures, at most `attempts` times; the discarded ones are recorded. */
async function bootValid(v: Variant, script: string, opts: Options, check: (b: Boot) => string | undefined, discarded: Discarded[], label: string): Promise<Boot> {
  for (let attempt = 1; ; attempt++) {
    const b = await boot(v.cmd, v.args, script, opts.vmTimeoutS);
    const why = check(b);
    if (!why) return b;
    discarded.push({ variant: v.name, what: label, attempt, reason: why, wallMs: b.wallMs });
    process.stderr.write(`[blk] ${label} ${v.name}: discarded (${why})${attempt < opts.attempts ? ', booting again' : ''}\n`);
    if (attempt >= opts.attempts) throw new Error(`${v.name}: ${why} in ${attempt} boot(s)${tail(b)}`);
  }
}

interface Discarded {
  variant: string;
  what: string;
  attempt: number;
  reason: string;
  wallMs: number;
}

/** What one machine measured: a baseline boot, then `rounds` rounds of every variant. */
interface Session {
  startedAt: string;
  host: ReturnType<typeof hostInfo>;
  qemuVersion: string;
  commands: Record<string, string[]>;
  variants: string[];
  baselineTsvmmStats: TsvmmStats;
  discarded: Discarded[];
  runs: VmmRun[];
}

async function measure(opts: Options): Promise<Session> {
  const startedAt = new Date().toISOString();
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-blkbench-'));
  let unmount = (): void => undefined;
  try {
    const say = (s: string): boolean => process.stderr.write(`[blk] ${s}\n`);
    const where = scratchDir(dir, opts.scratchFs, opts.sizeMiB);
    unmount = where.unmount;
    const scratch = makeScratch(where.path, opts.sizeMiB);
    const vs = variants(opts, scratch);
    const tsvmm = vs[0] as Variant;
    say(`scratch disk ${scratch} (${opts.sizeMiB} MiB, on ${opts.scratchFs === 'ext4' ? 'an ext4 loop mount' : 'the temp directory'}), tools ${opts.tools}; ${opts.tests.length} tests x ${opts.seconds} s per boot`);
    // The baseline: the same boot, prompt, disk discovery and mount, but no tests.
    const discarded: Discarded[] = [];
    const b0 = await bootValid(tsvmm, guestScript(opts, false), opts, (b) => {
      if (/rcu: INFO|self-detected stall/.test(b.stdout)) return 'the guest stalled';
      if (b.timedOut) return `no end within ${opts.vmTimeoutS} s: killed`;
      return b.code === 0 && /BLKBENCH-BASELINE-42/.test(b.stdout) ? undefined : `the tools disk was not mounted (exit ${b.code})`;
    }, discarded, 'baseline');
    const baseline: TsvmmStats = parseTsvmmStats(b0.stderr);
    say(`tsvmm baseline boot (no tests): ${(b0.wallMs / 1000).toFixed(1)} s, ${baseline.vcpuExits} exits to user space`);
    const runs: VmmRun[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      // Each round boots the variants in a rotated order, so that none is always first (or
      // always right after another) in a machine.
      const first = (opts.rotate + round) % vs.length;
      for (const v of [...vs.slice(first), ...vs.slice(0, first)]) {
        const b = await bootValid(v, guestScript(opts, true), opts, (x) => invalid(v, x, opts), discarded, `round ${round + 1}`);
        const guest = parseGuestOutput(b.stdout);
        const run: VmmRun = { variant: v.name, round, wallMs: b.wallMs, guest, ...(b.cpu.length === guest.results.length ? { cpu: b.cpu } : {}), ...(b.kvm.length === guest.results.length ? { kvm: b.kvm } : {}) };
        if (isTsvmmVariant(v.name)) run.tsvmmDelta = subtractStats(parseTsvmmStats(b.stderr), baseline);
        runs.push(run);
        say(`round ${round + 1}/${opts.rounds} ${v.name}: ${(b.wallMs / 1000).toFixed(1)} s; ${guest.results.map((r) => `${r.test}:${r.qd} ${r.test.startsWith('seq') ? `${r.mibps.toFixed(1)} MiB/s` : `${r.iops.toFixed(0)} IOPS`}`).join(', ')}`);
      }
    }
    return {
      startedAt,
      host: hostInfo(),
      qemuVersion: execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '',
      commands: Object.fromEntries(vs.map((v) => [v.name, [v.cmd, ...v.args]])),
      variants: vs.map((v) => v.name),
      baselineTsvmmStats: baseline,
      discarded,
      runs,
    };
  } finally {
    unmount();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The tables, and the JSON, of one or more sessions (rounds numbered across them). */
function report(opts: Options, sessions: readonly Session[], sessionFailures: string[]): object {
  const first = sessions[0] as Session;
  const names = first.variants;
  let round = 0;
  const runs: VmmRun[] = [];
  for (const s of sessions) {
    const base = round;
    for (const r of s.runs) runs.push({ ...r, round: base + r.round });
    round = base + Math.max(...s.runs.map((r) => r.round)) + 1;
  }
  const figures = summarise(runs, names);
  // The warm-ups as runs of their own: the cold figure (what a freshly started VMM delivers).
  const coldRuns = runs.filter((r) => r.guest.warmups.length > 0).map((r) => ({ variant: r.variant, round: r.round, wallMs: r.wallMs, guest: { ...r.guest, results: r.guest.warmups } }));
  const coldFigures = coldRuns.length > 0 ? summarise(coldRuns, names) : [];
  // Per tsvmm variant: the modes differ in where the data goes, not in exits, but keep them apart.
  const exitsByVariant = Object.fromEntries(names.filter(isTsvmmVariant).flatMap((n) => {
    const e = exitsPerRequest(runs.filter((r) => r.variant === n));
    return e ? [[n, e]] : [];
  }));
  console.log(`\nvirtio-blk in the guest, ${round} rounds interleaved, ${opts.seconds} s per test after ${opts.warmupS} s of warm-up, ${opts.sizeMiB} MiB raw image, O_DIRECT in the guest from ${opts.buffers} buffers; median [min-max]`);
  console.log(`(ratio: a tsvmm variant / a QEMU one, higher is better for tsvmm; tsvmm-direct/qemu-none is like for like, both O_DIRECT, as is tsvmm/qemu-writeback; irq/req: the guest's interrupts per completed request)\n`);
  console.log(formatTable(figures, names));
  if (round > 1) {
    console.log(`\nthe same ratios round by round (both VMMs on one machine, minutes apart; the geometric mean of the rounds is the paired estimate, free of what differs from machine to machine):\n`);
    console.log(formatPairedTable(figures, names));
  }
  if (coldFigures.length > 0) {
    console.log(`\ncold: the same tests' first ${opts.warmupS} s (each test's warm-up, right before its timed run); median [min-max]\n`);
    console.log(formatTable(coldFigures, names));
  }
  console.log(`\nhost CPU time of the VMM process per request, µs (median; main thread + vCPU thread + other threads; where the host has one CPU, as the test bed has, 1e6 / total bounds the request rate):\n`);
  console.log(formatCpuTable(figures, names));
  if (figures.some((f) => Object.values(f.variants).some((v) => v.kvmPerRequest))) {
    console.log(`\nKVM exits per request (debugfs counters of the kernel running the VMM, one VM at a time; median): all exits / to user space (MMIO + PIO) / HLT / interrupts injected / µs a halted vCPU spent polling before it slept\n`);
    console.log(formatKvmTable(figures, names));
  }
  for (const [name, exits] of Object.entries(exitsByVariant)) {
    console.log(`\n${name} exits to user space per request (all tests of a boot, baseline boot subtracted, median of ${round}; ${exits.requests.toFixed(0)} requests a boot):`);
    console.log(`  all exits ${exits.allExits.toFixed(3)}; to the disk's virtio-mmio registers ${exits.diskMmioExits.toFixed(3)}; interrupts raised ${exits.interrupts.toFixed(3)}; descriptors per request ${exits.descriptors.toFixed(2)}`);
    for (const [k, x] of Object.entries(exits.otherDevices)) if (Math.abs(x) >= 0.0005) console.log(`  ${k}: ${x.toFixed(3)}`);
  }
  const discarded = sessions.flatMap((s) => s.discarded);
  if (discarded.length || sessionFailures.length) console.log(`\ndiscarded: ${discarded.length} boot(s), ${sessionFailures.length} whole test-bed session(s) (see the JSON)`);
  return {
    tool: 'bench/blk.ts',
    // 2: ratios keyed 'tsvmm-variant/qemu-variant'; tsvmmExitsPerRequest keyed by tsvmm variant.
    version: 2,
    startedAt: first.startedAt,
    host: first.host,
    git: gitState(),
    kernel: opts.kernel,
    initrd: opts.initrd,
    tools: opts.tools,
    cmdline: CMDLINE,
    memoryMiB: MEMORY_MIB,
    diskMiB: opts.sizeMiB,
    scratchFs: opts.scratchFs,
    bedCpus: opts.bedCpus,
    secondsPerTest: opts.seconds,
    warmupSecondsPerTest: opts.warmupS,
    rounds: round,
    sessions: sessions.length,
    tests: opts.tests,
    buffers: opts.buffers,
    qemuVersion: first.qemuVersion,
    commands: first.commands,
    figures,
    coldFigures,
    tsvmmExitsPerRequest: exitsByVariant,
    baselineTsvmmStats: sessions.map((s) => s.baselineTsvmmStats),
    discardedBoots: discarded,
    failedSessions: sessionFailures,
    runs,
  };
}

/** The commit measured, and the files of the working tree that differed from it (dist/ is built from the tree). */
function gitState(): { head: string; modified: string[] } | null {
  try {
    const git = (...a: string[]): string => execFileSync('git', ['-C', packageRoot(), ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const modified = git('status', '--porcelain', '--untracked-files=no').split('\n').filter(Boolean).map((l) => l.slice(3));
    return { head: git('rev-parse', 'HEAD').trim(), modified };
  } catch {
    return null;
  }
}

/**
 * The test bed: one fresh emulated machine per round (this program again, --rounds 1
 * --session), its session coming back as one JSON console line; the rounds are put together
 * here. A nested guest that stalled is not tried again in the same machine (later ones there tend
 * to stall too, scripts/test.mjs): the round is run again in a new one, up to 3 times.
 */
async function viaTestBed(opts: Options, forward: string[], json: string): Promise<number> {
  const { runInTestBed, ensureTestBed } = await import('../test/bed/index.js');
  const bed = await ensureTestBed();
  const command = (round: number): string =>
    BedSession.commandLine([process.execPath, join(packageRoot(), 'dist', 'bench', 'blk.js'), ...forward, '--rounds', '1', '--rotate', String(round - 1), '--session']);
  const sessions: Session[] = [];
  const failures: string[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (let attempt = 1; ; attempt++) {
      console.error(`[blk] round ${round}/${opts.rounds} in a fresh test bed${attempt > 1 ? ` (attempt ${attempt})` : ''}`);
      const io = new BedSession(JSON_PREFIX);
      const r = await runInTestBed({
        command: command(round),
        cwd: packageRoot(),
        timeoutMs: (opts.vmTimeoutS * (1 + 2 * (opts.qemuCaches.length * opts.qemuAios.length + opts.tsvmmCaches.length * opts.tsvmmAios.length)) + 120) * 1000,
        bed,
        cpus: opts.bedCpus,
        // Guest RAM of each VMM, the scratch image and (ext4) its file system image, all in RAM.
        memoryMiB: 3072,
        onOutput: io.echo,
      });
      const session = io.result<Session>(r.output);
      if (r.reason === 'exited' && r.exitCode === 0 && session) {
        sessions.push(session);
        break;
      }
      // Why: the session's own "discarded" line (a stalled guest, most often), else the bed's word.
      const why = r.output.split('\n').filter((l) => / discarded \(/.test(l)).map((l) => l.replace(/^\[blk\] /, '').trim());
      failures.push(`round ${round} attempt ${attempt}: ${why.join('; ') || (r.message.split('\n')[0] ?? '')}`);
      if (attempt >= 3) {
        console.error(`[blk] round ${round} failed in 3 test beds: ${r.message}`);
        return 1;
      }
    }
  }
  const result = report(opts, sessions, failures);
  writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  console.error(`[blk] wrote ${json}`);
  return 0;
}

async function main(): Promise<number> {
  const { opts, testbed, forward } = parseOptions(process.argv.slice(2));
  const inBed = process.env.TSVMM_WHERE === 'testbed';
  if (testbed && !inBed) return viaTestBed(opts, forward, opts.json ?? join(packageRoot(), 'bench', 'results', 'blk-testbed.json'));
  const session = await measure(opts);
  if (opts.session) {
    // Part of a --testbed run: the host puts the rounds together.
    console.log(`${JSON_PREFIX}${JSON.stringify(session)}`);
    return 0;
  }
  const result = report(opts, [session], []);
  if (inBed) console.log(`${JSON_PREFIX}${JSON.stringify(result)}`);
  const json = opts.json ?? (inBed ? undefined : join(packageRoot(), 'bench', 'results', 'blk-native.json'));
  if (json) {
    writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
    console.error(`[blk] wrote ${json}`);
  }
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
