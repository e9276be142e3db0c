// virtio-vsock as a guest and a host program see it: stream throughput guest->host and
// host->guest on one connection and on four, and connection set-up latency (host connect to the
// guest's first byte), tsvmm's device with Firecracker's hybrid Unix socket next to QEMU's
// vhost-vsock-device (the kernel's vhost, no VMM code on the data path) booting the same guest,
// and a plain Unix socket between two host processes as the floor. Both ends are
// test/guest/vsockt.c (the same program in the guest over AF_VSOCK and on the host over the hybrid
// socket, AF_VSOCK or Unix), so each figure is timed by the same code on the host's clock.
// Where this host's /dev/kvm cannot boot Linux (kvm-pvm, or none), or with --testbed, it runs
// itself inside the nested-KVM test bed and writes bench/results/vsock-testbed.json here.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/package-root.js';
import { BedSession, benchGuest, GUEST_BENCH_OPTIONS, runsInTestBed } from '../src/bench/guest-bench.js';
import { hostInfo } from '../src/check/host.js';
import { clockTicks, cpuBetween, threadTimes, type CpuSplit, type ThreadTimes } from '../src/bench/threads.js';
import { kvmStatsAvailable, readKvmCounters, subtractCounters, type KvmCounters } from '../src/bench/kvm-stats.js';
import { median } from '../src/bench/stats.js';
import { topSelfTime, type CpuProfile, type ProfileEntry } from '../src/bench/cpu-profile.js';
import { parseConnResults, parseLatency, parseMarks, throughput, type Latency } from '../src/bench/vsock/results.js';
import { MOUNT_TOOLS } from '../test/helpers/guest-tools.js';

const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';
const MEMORY_MIB = 256;
const GUEST_CID = 3;
const JSON_PREFIX = 'VSOCK-JSON ';
const USAGE = `usage: node dist/bench/vsock.js [--testbed | --native] [--rounds N] [--mib M] [--latency-rounds R] [--kernel F --initrd F] [--json FILE]
  --testbed          run inside the nested-KVM test bed (the default where /dev/kvm is kvm-pvm or absent)
  --native           run on this host whatever its /dev/kvm
  --rounds N         boots of each VMM, in an order rotated from round to round (default 3)
  --mib M            MiB moved by each stream test, split over its connections (default 64 in the
                     test bed, 1024 elsewhere)
  --latency-rounds R connections of the set-up latency test (default 200)
  --steps LIST       which tests, comma-separated (default all: g2h-1,g2h-4,h2g-1,h2g-4,connect)
  --kernel/--initrd  the guest (default: what kernels/build.sh built)
  --json FILE        where to write the results (default bench/results/vsock-testbed.json with
                     --testbed, else bench/results/vsock-native.json)
  --profile          run tsvmm under node --cpu-prof and report its 20 functions with the most
                     self time (over the whole boot), per round
  --bed-cpus N       CPUs of the test-bed machine (default 1)
  --vm-timeout S     give up on one boot after S seconds and boot again (default 600)`;

interface Options {
  rounds: number;
  mib: number;
  latencyRounds: number;
  kernel: string;
  initrd: string;
  tools: string;
  vsockt: string;
  vmTimeoutS: number;
  bedCpus: number;
  session: boolean;
  steps: readonly Step[];
  profile: boolean;
}

type StepName = 'g2h-1' | 'g2h-4' | 'h2g-1' | 'h2g-4' | 'connect';
interface Step {
  name: StepName;
  kind: 'guest-to-host' | 'host-to-guest' | 'latency';
  conns: number;
  port: number;
}
const STEPS: readonly Step[] = [
  { name: 'g2h-1', kind: 'guest-to-host', conns: 1, port: 6001 },
  { name: 'g2h-4', kind: 'guest-to-host', conns: 4, port: 6004 },
  { name: 'h2g-1', kind: 'host-to-guest', conns: 1, port: 5001 },
  { name: 'h2g-4', kind: 'host-to-guest', conns: 4, port: 5004 },
  { name: 'connect', kind: 'latency', conns: 1, port: 5100 },
];

/** What one step of one boot measured. */
interface StepFigures {
  mibps?: number;
  ms?: number;
  latency?: Latency;
  /** The guest's interrupts on the vsock device's line during the step. */
  interrupts: number;
  /** KVM's counters over the step (debugfs; absent where unreadable). */
  kvm?: KvmCounters;
  /** The VMM's host CPU over the step, ms by thread. */
  cpu?: CpuSplit;
}

interface VariantRun {
  variant: string;
  round: number;
  wallMs: number;
  steps: Partial<Record<StepName, StepFigures>>;
  /** --profile: tsvmm's functions with the most self time over the boot. */
  profile?: ProfileEntry[];
}

interface FloorRun {
  round: number;
  steps: Partial<Record<StepName, { mibps?: number; latency?: Latency }>>;
}

interface Variant {
  name: 'tsvmm' | 'qemu-vhost';
  cmd: string;
  args: string[];
  /** The host program's target for a connection into the guest. */
  target: string;
  /** Where the host program listens for the guest's connections to `port`. */
  listenAt: (port: number) => string;
}

function positive(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: '${v}' is not a positive integer`);
  return n;
}

/** test/guest/build.sh's three paths: blkbench, vsockt, tools.ext4. */
function guestTools(): { vsockt: string; tools: string } {
  const out = execFileSync('bash', [join(packageRoot(), 'test', 'guest', 'build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const paths = out.trim().split('\n');
  const vsockt = paths.find((p) => p.endsWith('/vsockt'));
  const tools = paths.find((p) => p.endsWith('tools.ext4'));
  if (!vsockt || !tools) throw new Error(`test/guest/build.sh printed no vsockt or tools image:\n${out}`);
  return { vsockt, tools };
}

function parseOptions(argv: string[]): { opts: Options; testbed: boolean; forward: string[]; json: string | undefined } {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...GUEST_BENCH_OPTIONS,
      mib: { type: 'string' },
      'latency-rounds': { type: 'string' },
      steps: { type: 'string' },
      profile: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const testbed = runsInTestBed(values);
  const inBed = testbed || process.env.TSVMM_WHERE === 'testbed';
  const { kernel, initrd } = benchGuest(values);
  const { vsockt, tools } = guestTools();
  const names = (values.steps ?? STEPS.map((x) => x.name).join(',')).split(',').filter(Boolean);
  for (const n of names) if (!STEPS.some((x) => x.name === n)) throw new Error(`--steps: '${n}' is not one of ${STEPS.map((x) => x.name).join(', ')}`);
  const opts: Options = {
    rounds: positive('rounds', values.rounds, 3),
    mib: positive('mib', values.mib, inBed ? 64 : 1024),
    latencyRounds: positive('latency-rounds', values['latency-rounds'], 200),
    kernel,
    initrd,
    tools,
    vsockt,
    vmTimeoutS: positive('vm-timeout', values['vm-timeout'], 600),
    bedCpus: positive('bed-cpus', values['bed-cpus'], 1),
    session: values.session ?? false,
    steps: STEPS.filter((x) => names.includes(x.name)),
    profile: values.profile ?? false,
  };
  if (opts.mib % 4 !== 0) throw new Error('--mib: must be a multiple of 4 (the 4-connection tests split it evenly)');
  const forward = [...(opts.profile ? ['--profile'] : []), '--steps', names.join(','), '--rounds', String(opts.rounds), '--mib', String(opts.mib), '--latency-rounds', String(opts.latencyRounds), '--kernel', kernel, '--initrd', initrd, '--vm-timeout', String(opts.vmTimeoutS)];
  return { opts, testbed, forward, json: values.json };
}

/** A host-side vsockt run; `done` resolves with its output when it exits (killed after `timeoutMs`). */
function hostTool(vsockt: string, args: string[], timeoutMs: number): { done: Promise<string>; child: ChildProcess } {
  const child = spawn(vsockt, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<string>((resolve) => {
    child.on('error', (e) => (out += `\nspawn failed: ${e.message}`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? out : `${out}\nvsockt ${args.join(' ')}: exit ${code ?? signal}`);
    });
  });
  return { done, child };
}

const bytesPerConn = (opts: Options, step: Step): number => (opts.mib * 1024 * 1024) / step.conns;

/** The guest's side, typed at its shell: each step between two marks of the device's interrupt count. */
function guestScript(opts: Options): string {
  const irq = `irq() { echo "VSB-MARK $1 $(awk -v d=$v '$NF==d {s=0; for (i=2;i<=NF;i++) { if ($i ~ /^[0-9]+$/) s+=$i; else break }; print s}' /proc/interrupts)"; }`;
  const parts = [MOUNT_TOOLS, 'v=$(basename /sys/bus/virtio/drivers/vmw_vsock_virtio_transport/virtio*)', irq, 'T=/mnt/t/vsockt'];
  for (const s of opts.steps) {
    const run =
      s.kind === 'guest-to-host'
        ? `$T connect 2 ${s.port} -c ${s.conns} source ${bytesPerConn(opts, s)}`
        : s.kind === 'host-to-guest'
          ? `$T listen ${s.port} -n ${s.conns} sink`
          : `$T listen ${s.port} -n ${opts.latencyRounds} -q source 1`;
    parts.push(`irq ${s.name}-begin; ${run}; irq ${s.name}-end`);
  }
  parts.push('echo VSB-DONE');
  return `${parts.join('\n')}\nexit\n`;
}

function variants(opts: Options, dir: string, vhost: boolean): Variant[] {
  const uds = join(dir, 'tsvmm.vsock');
  const tsvmm: Variant = {
    name: 'tsvmm',
    cmd: process.execPath,
    args: [...(opts.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir(dir)] : []), join(packageRoot(), 'bin', 'tsvmm.js'), 'boot', opts.kernel, '--initrd', opts.initrd, '--cmdline', CMDLINE, '--memory', String(MEMORY_MIB),
      '--disk', `${opts.tools}:ro`, '--vsock', `${GUEST_CID}:${uds}`],
    target: `hybrid:${uds}`,
    listenAt: (port) => `unix:${uds}_${port}`,
  };
  // bench/boot.ts's QEMU line, the tools disk and QEMU's vhost-vsock on the microvm's virtio-mmio.
  const qemu: Variant = {
    name: 'qemu-vhost',
    cmd: 'qemu-system-x86_64',
    args: ['-name', 'vsockbench,debug-threads=on', '-enable-kvm', '-M', 'microvm,acpi=off', '-cpu', 'host', '-m', String(MEMORY_MIB), '-smp', '1', '-nodefaults', '-no-user-config',
      '-nographic', '-serial', 'stdio', '-no-reboot', '-device', 'i8042', '-kernel', opts.kernel, '-initrd', opts.initrd, '-append', CMDLINE,
      '-drive', `file=${opts.tools},if=none,id=tools,format=raw,readonly=on`, '-device', 'virtio-blk-device,drive=tools', '-device', `vhost-vsock-device,guest-cid=${GUEST_CID}`],
    target: String(GUEST_CID),
    listenAt: (port) => String(port),
  };
  return vhost ? [tsvmm, qemu] : [tsvmm];
}

const profileDir = (dir: string): string => join(dir, 'cpu-profiles');

/**
 * The main thread's profile of the boot that just ended, summarised; every profile in `dir` is
 * then removed, for the next round. node writes one file per thread,
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: the main thread (the event loop, where
 * every device runs) is thread 0; the vCPU workers' profiles are mostly time inside KVM_RUN.
 */
function takeProfile(dir: string): ProfileEntry[] | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const main = files.find((f) => f.split('.')[4] === '0');
  const profile = main ? (JSON.parse(readFileSync(join(dir, main), 'utf8')) as CpuProfile) : undefined;
  for (const f of files) rmSync(join(dir, f), { force: true });
  return profile && topSelfTime(profile, 20);
}

/** Whether QEMU's peer can run: /dev/vhost-vsock, after trying to load vhost_vsock. */
function vhostAvailable(): boolean {
  if (!existsSync('/dev/vhost-vsock')) {
    try {
      execFileSync('modprobe', ['vhost_vsock'], { stdio: 'ignore' });
    } catch {
      // not loadable here: the floor stays the only peer
    }
  }
  return existsSync('/dev/vhost-vsock');
}

interface Snapshot {
  threads: Map<number, ThreadTimes>;
  kvm: KvmCounters | undefined;
}

/** Boots `v`, drives every step from the host side, and collects the figures. */
async function runVariant(v: Variant, opts: Options, round: number, kvmCounters: boolean): Promise<VariantRun> {
  const toolTimeout = opts.vmTimeoutS * 1000;
  const hostRuns = new Map<StepName, Promise<string>>();
  const children: ChildProcess[] = [];
  const start = (step: Step, args: string[]): void => {
    const t = hostTool(opts.vsockt, args, toolTimeout);
    children.push(t.child);
    hostRuns.set(step.name, t.done);
  };
  // The guest's connections need a listener already there.
  for (const s of opts.steps.filter((x) => x.kind === 'guest-to-host')) start(s, ['listen', v.listenAt(s.port), '-n', String(s.conns), 'sink']);
  const t0 = process.hrtime.bigint();
  const child = spawn(v.cmd, v.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let typed = false;
  const snapshots = new Map<string, Snapshot>();
  const listening = new Set<number>();
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (!typed && /\/ # /.test(stdout)) {
      typed = true;
      child.stdin.write(guestScript(opts));
    }
    for (const m of stdout.matchAll(/^VSB-MARK (\S+) /gm)) {
      const label = m[1] as string;
      if (!snapshots.has(label) && child.pid !== undefined) snapshots.set(label, { threads: threadTimes(child.pid), kvm: kvmCounters ? readKvmCounters() : undefined });
    }
    for (const m of stdout.matchAll(/^VSOCKT-LISTENING port=(\d+)/gm)) {
      const port = Number(m[1]);
      if (listening.has(port)) continue;
      listening.add(port);
      const s = opts.steps.find((x) => x.port === port);
      if (!s) continue;
      if (s.kind === 'host-to-guest') start(s, ['connect', v.target, String(port), '-c', String(s.conns), 'source', String(bytesPerConn(opts, s))]);
      else if (s.kind === 'latency') start(s, ['latency', v.target, String(port), String(opts.latencyRounds)]);
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.vmTimeoutS * 1000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  // Host programs still waiting (a step the guest never reached) end with the VM.
  setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 5000).unref();
  const outputs = new Map<StepName, string>();
  for (const [name, p] of hostRuns) outputs.set(name, await p);
  const tailText = `\n--- console ---\n${stdout.slice(-2500)}\n--- stderr ---\n${stderr.slice(-1500)}`;
  const stall = /rcu: INFO|self-detected stall|soft lockup|hung_task/.exec(stdout);
  if (stall) throw new DiscardedBoot(`the guest stalled ("${stall[0]}")`, tailText);
  if (timedOut) throw new DiscardedBoot(`no end within ${opts.vmTimeoutS} s: killed`, tailText);
  if (!/VSB-DONE/.test(stdout) || code !== 0) throw new Error(`${v.name}: the guest script did not finish (exit ${code})${tailText}`);
  const marks = parseMarks(stdout);
  const steps: VariantRun['steps'] = {};
  for (const s of opts.steps) {
    const out = outputs.get(s.name) ?? '';
    const begin = snapshots.get(`${s.name}-begin`);
    const end = snapshots.get(`${s.name}-end`);
    const figures: StepFigures = { interrupts: (marks.get(`${s.name}-end`) ?? 0) - (marks.get(`${s.name}-begin`) ?? 0) };
    try {
      if (s.kind === 'latency') {
        const lat = parseLatency(out);
        if (!lat || lat.failed > 0) throw new Error(`latency: ${out.trim().split('\n').slice(-3).join(' | ')}`);
        figures.latency = lat;
      } else {
        Object.assign(figures, throughput(parseConnResults(out), s.conns, bytesPerConn(opts, s), s.kind === 'guest-to-host' ? 'received' : 'sent'));
      }
    } catch (e) {
      throw new Error(`${v.name} ${s.name}: ${(e as Error).message}\n--- host program ---\n${out.slice(-1500)}${tailText}`);
    }
    if (begin && end && child.pid !== undefined) {
      figures.cpu = cpuBetween(child.pid, begin.threads, end.threads, clockTicks());
      if (begin.kvm && end.kvm) figures.kvm = subtractCounters(end.kvm, begin.kvm);
    }
    steps[s.name] = figures;
  }
  return { variant: v.name, round, wallMs, steps };
}

class DiscardedBoot extends Error {
  override readonly name = 'DiscardedBoot';
  constructor(
    readonly reason: string,
    readonly tailText: string,
  ) {
    super(reason);
  }
}

/** Two host processes over a plain Unix socket: what moving the bytes costs with no VM at all. */
async function runFloor(opts: Options, dir: string, round: number): Promise<FloorRun> {
  const path = join(dir, 'floor.sock');
  const timeout = opts.vmTimeoutS * 1000;
  const steps: FloorRun['steps'] = {};
  const pair = async (listen: string[], connect: string[]): Promise<[string, string]> => {
    const l = hostTool(opts.vsockt, ['listen', `unix:${path}`, ...listen], timeout);
    for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
    const c = hostTool(opts.vsockt, connect, timeout);
    return Promise.all([l.done, c.done]);
  };
  for (const s of opts.steps) {
    if (s.kind === 'host-to-guest') continue; // the same as guest-to-host without a VM
    if (s.kind === 'latency') {
      const [, out] = await pair(['-n', String(opts.latencyRounds), 'source', '1'], ['latency', `unix:${path}`, '0', String(opts.latencyRounds)]);
      const latency = parseLatency(out);
      if (!latency) throw new Error(`floor latency: ${out}`);
      steps[s.name] = { latency };
    } else {
      const [out] = await pair(['-n', String(s.conns), 'sink'], ['connect', `unix:${path}`, '0', '-c', String(s.conns), 'source', String(bytesPerConn(opts, s))]);
      steps[s.name] = { mibps: throughput(parseConnResults(out), s.conns, bytesPerConn(opts, s), 'received').mibps };
    }
  }
  return { round, steps };
}

interface Session {
  startedAt: string;
  host: ReturnType<typeof hostInfo>;
  qemuVersion: string;
  mib: number;
  latencyRounds: number;
  peer: string;
  steps: StepName[];
  commands: Record<string, string[]>;
  discarded: { variant: string; round: number; reason: string }[];
  runs: VariantRun[];
  floor: FloorRun[];
}

async function measure(opts: Options): Promise<Session> {
  const startedAt = new Date().toISOString();
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-vsockbench-'));
  const say = (s: string): boolean => process.stderr.write(`[vsock] ${s}\n`);
  try {
    const vhost = vhostAvailable();
    const vs = variants(opts, dir, vhost);
    const kvmCounters = kvmStatsAvailable();
    say(`${opts.mib} MiB per stream test, ${opts.latencyRounds} connections for latency; peer: ${vhost ? "QEMU's vhost-vsock-device" : 'none (no /dev/vhost-vsock): the Unix-socket floor only'}`);
    const runs: VariantRun[] = [];
    const floor: FloorRun[] = [];
    const discarded: Session['discarded'] = [];
    for (let round = 0; round < opts.rounds; round++) {
      const first = round % vs.length;
      for (const v of [...vs.slice(first), ...vs.slice(0, first)]) {
        for (let attempt = 1; ; attempt++) {
          try {
            const r = await runVariant(v, opts, round, kvmCounters);
            if (v.name === 'tsvmm' && opts.profile) r.profile = takeProfile(profileDir(dir));
            runs.push(r);
            say(`round ${round + 1}/${opts.rounds} ${v.name}: ${(r.wallMs / 1000).toFixed(1)} s; ${describe(r.steps)}`);
            break;
          } catch (e) {
            if (!(e instanceof DiscardedBoot) || attempt >= 3) throw e;
            discarded.push({ variant: v.name, round, reason: e.reason });
            say(`round ${round + 1} ${v.name}: discarded (${e.reason}), booting again`);
          }
        }
      }
      const f = await runFloor(opts, dir, round);
      floor.push(f);
      say(`round ${round + 1}/${opts.rounds} floor (Unix socket): ${describe(f.steps)}`);
    }
    return {
      startedAt,
      host: hostInfo(),
      qemuVersion: execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '',
      mib: opts.mib,
      latencyRounds: opts.latencyRounds,
      peer: vhost ? 'qemu-vhost' : 'none',
      steps: opts.steps.map((x) => x.name),
      commands: Object.fromEntries(vs.map((v) => [v.name, [v.cmd, ...v.args]])),
      discarded,
      runs,
      floor,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function describe(steps: Partial<Record<StepName, { mibps?: number; latency?: Latency }>>): string {
  return Object.entries(steps)
    .map(([name, f]) => `${name} ${f.mibps !== undefined ? `${f.mibps.toFixed(1)} MiB/s` : `p50 ${f.latency?.p50} us`}`)
    .join(', ');
}

/** Medians over rounds, the paired ratio tsvmm / QEMU (geometric mean of each round's ratio), and per-MiB costs. */
function report(s: Session): { table: string } {
  const fmt = (x: number | undefined, d = 1): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const of = (variant: string, step: StepName): StepFigures[] => s.runs.filter((r) => r.variant === variant).flatMap((r) => (r.steps[step] ? [r.steps[step] as StepFigures] : []));
  const med = (xs: (number | undefined)[]): number | undefined => {
    const ys = xs.filter((x): x is number => x !== undefined);
    return ys.length ? median(ys) : undefined;
  };
  const paired = (step: StepName, get: (f: StepFigures) => number | undefined): number | undefined => {
    const ratios: number[] = [];
    for (let round = 0; round < s.runs.length; round++) {
      const a = s.runs.find((r) => r.variant === 'tsvmm' && r.round === round)?.steps[step];
      const b = s.runs.find((r) => r.variant === 'qemu-vhost' && r.round === round)?.steps[step];
      const x = a && get(a);
      const y = b && get(b);
      if (x && y) ratios.push(x / y);
    }
    return ratios.length ? Math.exp(ratios.reduce((t, r) => t + Math.log(r), 0) / ratios.length) : undefined;
  };
  const rows = ['| figure | tsvmm | QEMU vhost-vsock | tsvmm / QEMU (paired) | Unix-socket floor | exits per MiB, tsvmm / QEMU | guest interrupts per MiB, tsvmm / QEMU | tsvmm CPU ms per MiB, main + vCPU + other |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const step of STEPS.filter((x) => s.steps.includes(x.name))) {
    const floorFigure = step.kind === 'host-to-guest' ? `g2h-${step.conns}` : step.name;
    const floor = s.floor.map((f) => f.steps[floorFigure as StepName]);
    if (step.kind === 'latency') {
      const p = (v: string, k: 'p50' | 'p99' | 'connectedP50'): number | undefined => med(of(v, step.name).map((f) => f.latency?.[k]));
      const cell = (v: string): string => `${fmt(p(v, 'p50'), 0)} (${fmt(p(v, 'p99'), 0)}; set up ${fmt(p(v, 'connectedP50'), 0)})`;
      rows.push(`| connect to first byte, µs p50 (p99; p50 until set up); the ratio is of times | ${cell('tsvmm')} | ${cell('qemu-vhost')} | ${fmt(paired(step.name, (f) => f.latency?.p50), 2)}x | ${fmt(med(floor.map((f) => f?.latency?.p50)), 0)} | - | - | - |`);
      continue;
    }
    const mib = s.mib;
    const perMib = (v: string, get: (f: StepFigures) => number | undefined): number | undefined => med(of(v, step.name).map((f) => {
      const x = get(f);
      return x === undefined ? undefined : x / mib;
    }));
    const cpu = (part: keyof CpuSplit): number | undefined => perMib('tsvmm', (f) => f.cpu?.[part]);
    const label = `${step.kind === 'guest-to-host' ? 'guest → host' : 'host → guest'}, ${step.conns} connection${step.conns > 1 ? 's' : ''}, MiB/s`;
    rows.push(`| ${label} | ${fmt(med(of('tsvmm', step.name).map((f) => f.mibps)))} | ${fmt(med(of('qemu-vhost', step.name).map((f) => f.mibps)))} | ${fmt(paired(step.name, (f) => f.mibps), 2)}x | ${fmt(med(floor.map((f) => f?.mibps)))} | ${fmt(perMib('tsvmm', (f) => f.kvm?.exits))} / ${fmt(perMib('qemu-vhost', (f) => f.kvm?.exits))} | ${fmt(perMib('tsvmm', (f) => f.interrupts))} / ${fmt(perMib('qemu-vhost', (f) => f.interrupts))} | ${fmt(cpu('main'))} + ${fmt(cpu('vcpu'))} + ${fmt(cpu('other'))} |`);
  }
  return { table: rows.join('\n') };
}

async function viaTestBed(opts: Options, forward: string[], json: string): Promise<number> {
  const { runInTestBed, ensureTestBed } = await import('../test/bed/index.js');
  const bed = await ensureTestBed();
  const io = new BedSession(JSON_PREFIX);
  const r = await runInTestBed({
    command: BedSession.commandLine([process.execPath, join(packageRoot(), 'dist', 'bench', 'vsock.js'), ...forward, '--session']),
    cwd: packageRoot(),
    timeoutMs: (opts.vmTimeoutS * 3 * opts.rounds + 300) * 1000,
    bed,
    cpus: opts.bedCpus,
    memoryMiB: 2048,
    onOutput: io.echo,
  });
  const session = io.result<Session>(r.output);
  if (r.reason !== 'exited' || r.exitCode !== 0 || !session) {
    console.error(`[vsock] the test bed run failed: ${r.message}`);
    return 1;
  }
  return finish(session, json);
}

function finish(session: Session, json: string | undefined): number {
  const { table } = report(session);
  console.log(table);
  for (const r of session.runs) {
    if (!r.profile) continue;
    console.log(`\ntsvmm's main thread, self time, round ${r.round + 1} (node --cpu-prof over the whole boot):`);
    for (const e of r.profile) console.log(`${e.selfMs.toFixed(0).padStart(7)} ms ${e.percent.toFixed(1).padStart(5)} %  ${e.where}`);
  }
  if (json) {
    writeFileSync(json, `${JSON.stringify({ ...session, table }, null, 2)}\n`);
    console.error(`[vsock] wrote ${json}`);
  }
  return 0;
}

async function main(): Promise<number> {
  const { opts, testbed, forward, json } = parseOptions(process.argv.slice(2));
  const inBed = process.env.TSVMM_WHERE === 'testbed';
  if (testbed && !inBed) return viaTestBed(opts, forward, json ?? join(packageRoot(), 'bench', 'results', 'vsock-testbed.json'));
  const session = await measure(opts);
  if (opts.session) {
    console.log(`${JSON_PREFIX}${JSON.stringify(session)}`);
    return 0;
  }
  return finish(session, json ?? (inBed ? undefined : join(packageRoot(), 'bench', 'results', 'vsock-native.json')));
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
