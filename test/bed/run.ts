// runInTestBed(): one QEMU TCG boot that runs one shell command inside the host root with a
// nested /dev/kvm, streams its output live and returns its exit status. Bounded in time: an
// overall timeout kills QEMU; a guest that dies without reporting gives reason 'vm-died'; a
// guest whose heartbeat stops while the command runs is revived with a key press (watchdog.ts),
// and killed early with reason 'frozen' if it stays silent.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrlfNormalizer, LineSplitter, LineTail } from './console.js';
import { ensureTestBed, type TestBed } from './ensure.js';
import { TestBedConfigError, TestBedError } from './errors.js';
import { classifyRun, parseHarnessLine, parsePanicLine, type RunReason } from './exit-status.js';
import { buildJobScript, scratchBinds } from './job.js';
import { HARNESS_PREFIX } from './log.js';
import { hmpCommands } from './qmp.js';
import { DEFAULT_TUNING, HEARTBEAT_FILE, QMP_SOCKET, qemuArgs, type Tuning } from './qemu-args.js';
import { DEFAULT_WATCHDOG_POLICY, HeartbeatWatchdog, type WatchdogPolicy } from './watchdog.js';

export const QEMU_BINARY = 'qemu-system-x86_64';
/** One vCPU: boots ~0.7 s faster than two on a 2-core host, and node and a nested boot
 * ran no slower (test/bed/README.md). Pass cpus: 2 for tests that need L1 parallelism. */
export const DEFAULT_CPUS = 1;
export const DEFAULT_MEMORY_MIB = 2048;
/** After SIGKILL, how long to wait for QEMU's pipes to close before giving up on them. */
const KILL_GRACE_MS = 5000;
/** How often the watchdog looks at the heartbeat file (one stat). */
const WATCHDOG_PERIOD_MS = 1000;
/** A key press: the keyboard interrupt goes through the IOAPIC, so the APIC re-evaluates what is
 * pending (watchdog.ts says why that revives a machine). The L1 console is the serial port, so
 * the key reaches no program. */
const REVIVE_COMMAND = 'sendkey shift';
/** What the watchdog asks QEMU before killing a frozen machine, for the log. */
const FREEZE_DIAGNOSTICS = ['info registers', 'info lapic'];

export interface RunInTestBedOptions {
  command: string;
  cwd: string;
  timeoutMs: number;
  env?: Record<string, string>;
  onOutput?: (chunk: string) => void;
  cpus?: number;
  memoryMiB?: number;
  /** Stops the run (QEMU is killed; reason 'vm-died', message says interrupted). */
  signal?: AbortSignal;
  /** A bed from ensureTestBed(); looked up (cached) when absent. */
  bed?: TestBed;
  /** Overrides of the measured defaults, for measuring alternatives. */
  tuning?: Partial<Tuning>;
  /** Overrides of DEFAULT_WATCHDOG_POLICY: when a silent heartbeat (while the command runs) is
   * answered with a revive, and when the machine is killed as frozen. */
  watchdog?: Partial<WatchdogPolicy>;
}

export interface RunInTestBedResult {
  exitCode: number | null;
  reason: RunReason;
  wallMs: number;
  output: string;
  /** One sentence on what happened (with the last console lines when the VM died). */
  message: string;
  /** Host ms from spawning QEMU to the guest starting the command (undefined: it never did). */
  startupMs: number | undefined;
  /** Silences of the heartbeat that a revive ended (watchdog.ts). */
  revived: number;
}

export async function runInTestBed(opts: RunInTestBedOptions): Promise<RunInTestBedResult> {
  // setTimeout cannot wait longer than 2^31-1 ms (it would fire at once).
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0 || opts.timeoutMs > 0x7fffffff) {
    throw new TestBedConfigError(`timeoutMs ${opts.timeoutMs} is not a number of milliseconds from 1 to 2147483647`);
  }
  const bed = opts.bed ?? (await ensureTestBed());
  const job = buildJobScript({ command: opts.command, cwd: opts.cwd, env: opts.env ?? {}, nodePath: process.execPath });
  const binds = scratchBinds([opts.cwd, process.execPath]);
  const jobDir = await mkdtemp(join(tmpdir(), 'tsvmm-bed-'));
  try {
    await writeFile(join(jobDir, 'job.sh'), job);
    await writeFile(join(jobDir, 'binds'), binds.map((b) => `${b}\n`).join(''));
    const args = qemuArgs({
      kernel: bed.kernel,
      initramfs: bed.initramfs,
      cpus: opts.cpus ?? DEFAULT_CPUS,
      memoryMiB: opts.memoryMiB ?? DEFAULT_MEMORY_MIB,
      jobDir,
      tuning: { ...DEFAULT_TUNING, ...opts.tuning },
    });
    return await runQemu(args, opts, jobDir);
  } finally {
    await rm(jobDir, { recursive: true, force: true });
  }
}

/** Console bookkeeping of one run: output, harness markers, the tail for error messages. */
class ConsoleState {
  output = '';
  startupMs: number | undefined;
  commandStarted = false;
  reportedStatus: number | undefined;
  panic: string | undefined;
  readonly tail = new LineTail(15);
  private readonly crlf = new CrlfNormalizer();
  private readonly lines = new LineSplitter();
  private readonly qemuErr = new LineSplitter();

  constructor(
    private readonly t0: number,
    private readonly emit: (chunk: string) => void,
  ) {}

  /** QEMU's stdout: the guest's serial console. */
  console(chunk: string): void {
    this.consume(this.crlf.push(chunk));
  }

  /** QEMU's own stderr, shown as harness lines. */
  qemuStderr(chunk: string): void {
    for (const line of this.qemuErr.push(chunk)) this.consume(`${HARNESS_PREFIX} qemu: ${line}\n`);
  }

  flush(): void {
    this.consume(this.crlf.flush());
    for (const line of this.lines.flush()) this.tail.push(line);
    for (const line of this.qemuErr.flush()) this.consume(`${HARNESS_PREFIX} qemu: ${line}\n`);
  }

  private consume(text: string): void {
    if (text === '') return;
    this.output += text;
    this.emit(text);
    for (const line of this.lines.push(text)) {
      this.tail.push(line);
      const ev = parseHarnessLine(line);
      if (ev?.kind === 'started') {
        this.commandStarted = true;
        this.startupMs = performance.now() - this.t0;
      } else if (ev?.kind === 'exited') this.reportedStatus = ev.status;
      this.panic ??= parsePanicLine(line);
    }
  }
}

/** Bytes the guest's heartbeat has written so far (0 before QEMU creates the file). */
function heartbeatBytes(jobDir: string): number {
  try {
    return statSync(join(jobDir, HEARTBEAT_FILE)).size;
  } catch {
    return 0;
  }
}

/** A silence's length for the log. */
const silent = (ms: number): string => `${(ms / 1000).toFixed(0)} s`;

function runQemu(args: string[], opts: RunInTestBedOptions, jobDir: string): Promise<RunInTestBedResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const emit = opts.onOutput ?? ((): void => undefined);
    const con = new ConsoleState(t0, emit);
    let timedOut = false;
    let aborted = false;
    let frozenAfterS: number | undefined;
    let done = false;

    const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const settle = (): boolean => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      clearInterval(watchdog);
      opts.signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const finish = (code: number | null, signal: string | null): void => {
      if (!settle()) return;
      con.flush();
      const outcome = classifyRun({
        timedOut,
        timeoutMs: opts.timeoutMs,
        aborted,
        qemuExitCode: code,
        qemuSignal: signal,
        commandStarted: con.commandStarted,
        reportedStatus: con.reportedStatus,
        tail: con.tail.text(),
        panic: con.panic,
        frozenAfterS,
      });
      resolve({ ...outcome, wallMs: performance.now() - t0, output: con.output, startupMs: con.startupMs, revived: dog?.revived ?? 0 });
    };
    const kill = (): void => {
      child.kill('SIGKILL');
      // QEMU does not fork, so its pipes close when it dies; this only guards the unexpected.
      setTimeout(() => finish(null, 'SIGKILL'), KILL_GRACE_MS).unref();
    };
    function onAbort(): void {
      aborted = true;
      kill();
    }
    // The overall timeout. settle() reads `timer` only once QEMU has reported, i.e. after this.
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, opts.timeoutMs);
    // The heartbeat watchdog (watchdog.ts): counts from the command's start (the heartbeat
    // starts just before it); revives a silent machine, kills one that stays silent.
    const policy = { ...DEFAULT_WATCHDOG_POLICY, ...opts.watchdog };
    let dog: HeartbeatWatchdog | undefined;
    const qmp = join(jobDir, QMP_SOCKET);
    const watchdog = setInterval(() => {
      if (!con.commandStarted) return;
      dog ??= new HeartbeatWatchdog(policy, performance.now());
      const a = dog.observe(heartbeatBytes(jobDir), performance.now());
      switch (a.kind) {
        case 'none':
          return;
        case 'revive':
          emit(`${HARNESS_PREFIX} no heartbeat for ${silent(a.silentMs)}: revive ${a.attempt} (${REVIVE_COMMAND})\n`);
          hmpCommands(qmp, [REVIVE_COMMAND], 5000).catch((e: unknown) => emit(`${HARNESS_PREFIX} could not revive: ${e instanceof Error ? e.message : String(e)}\n`));
          return;
        case 'revived':
          emit(`${HARNESS_PREFIX} heartbeat back after ${silent(a.silentMs)} of silence and ${a.attempts} revive(s)\n`);
          return;
        case 'frozen':
          frozenAfterS = a.silentMs / 1000;
          emit(`${HARNESS_PREFIX} no heartbeat for ${silent(a.silentMs)}: the machine froze; its state, then kill\n`);
          hmpCommands(qmp, FREEZE_DIAGNOSTICS, 5000)
            .then((outs) => outs.forEach((o, i) => emit(`${HARNESS_PREFIX} ${FREEZE_DIAGNOSTICS[i] ?? ''}:\n${o.trimEnd()}\n`)))
            .catch((e: unknown) => emit(`${HARNESS_PREFIX} could not read the frozen machine's state: ${e instanceof Error ? e.message : String(e)}\n`))
            .finally(kill);
      }
    }, WATCHDOG_PERIOD_MS);
    if (opts.signal?.aborted === true) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => con.console(s));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => con.qemuStderr(s));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (!settle()) return;
      reject(
        new TestBedError(
          e.code === 'ENOENT'
            ? `${QEMU_BINARY} was not found on PATH; install it (apt-get install -y qemu-system-x86) or let ensureTestBed() do it as root`
            : `cannot start ${QEMU_BINARY}: ${e.message}`,
          { cause: e },
        ),
      );
    });
    child.on('close', (code, signal) => finish(code, signal));
  });
}
