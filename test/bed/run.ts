// runInTestBed(): one QEMU TCG boot that runs one shell command inside the host root with a
// nested /dev/kvm, streams its output live and returns its exit status. Bounded in time: an
// overall timeout kills QEMU; a guest that dies without reporting gives reason 'vm-died'.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrlfNormalizer, LineSplitter, LineTail } from './console.js';
import { ensureTestBed, type TestBed } from './ensure.js';
import { TestBedConfigError, TestBedError } from './errors.js';
import { classifyRun, parseHarnessLine, parsePanicLine } from './exit-status.js';
import { buildJobScript, scratchBinds } from './job.js';
import { HARNESS_PREFIX } from './log.js';
import { DEFAULT_TUNING, qemuArgs, type Tuning } from './qemu-args.js';

export const QEMU_BINARY = 'qemu-system-x86_64';
/** One vCPU: boots ~0.7 s faster than two on a 2-core host, and node and a nested boot
 * ran no slower (test/bed/README.md). Pass cpus: 2 for tests that need L1 parallelism. */
export const DEFAULT_CPUS = 1;
export const DEFAULT_MEMORY_MIB = 2048;
/** After SIGKILL, how long to wait for QEMU's pipes to close before giving up on them. */
const KILL_GRACE_MS = 5000;

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
}

export interface RunInTestBedResult {
  exitCode: number | null;
  reason: 'exited' | 'timeout' | 'vm-died';
  wallMs: number;
  output: string;
  /** One sentence on what happened (with the last console lines when the VM died). */
  message: string;
  /** Host ms from spawning QEMU to the guest starting the command (undefined: it never did). */
  startupMs: number | undefined;
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
    return await runQemu(args, opts);
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

function runQemu(args: string[], opts: RunInTestBedOptions): Promise<RunInTestBedResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const con = new ConsoleState(t0, opts.onOutput ?? ((): void => undefined));
    let timedOut = false;
    let aborted = false;
    let done = false;

    const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const settle = (): boolean => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
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
      });
      resolve({ ...outcome, wallMs: performance.now() - t0, output: con.output, startupMs: con.startupMs });
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
