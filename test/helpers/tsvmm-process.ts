// Runs `tsvmm` as a child process for Linux-booting tests. `dialogue` pairs are [text to wait
// for on the console, what to type then]: input typed before the guest's UART driver starts
// would be cleared by it, as on real hardware.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';
import { diagnoseEmulatedMachine, EmulatedMachineStall, startKvmTrace, type BedHealth } from './bed-diagnosis.js';

export interface TsvmmResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The run outlasted its time limit and was stopped by the helper (see runTsvmm). */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
  /** After a time-out: what runTsvmm found (the probe, the bed's diagnosis), for the failure message. */
  notes: string;
}

export const BOOT_TIMEOUT_MS = 120_000;

/** Called with everything the console printed so far, after each chunk (e.g. to kill tsvmm at a moment). */
export type ConsoleWatcher = (stdout: string, child: ChildProcess) => void;

/**
 * In the test bed, once the bed's diagnosis (bed-diagnosis.ts) found the emulated machine
 * stalled, every later nested guest there stalls too: the rest of the suite fails at once with
 * the same diagnosis instead of waiting out a time-out per boot, and scripts/test.mjs may run the
 * suite again in a fresh machine. The mark lives in the bed's own /tmp, which dies with it.
 */
const BED_STALLED_MARK = '/tmp/.tsvmm-testbed-stalled';
const inTestBed = process.env.TSVMM_WHERE === 'testbed';
/** After a time-out: how long the guest gets to answer the probe line before tsvmm is stopped. */
const PROBE_WAIT_MS = 10_000;
/** How long tsvmm gets to print its second report. */
const REPORT_WAIT_MS = 3_000;

/**
 * TSVMM_TEST_GUEST_ARGS (kernel parameters, e.g. `lapic=notscdeadline`) joins every booted
 * guest's --cmdline, before its `--`: for experiments on the test bed's faults (test/bed/README.md).
 */
function withGuestArgs(args: string[]): string[] {
  const extra = process.env.TSVMM_TEST_GUEST_ARGS?.trim();
  const at = args.indexOf('--cmdline');
  if (!extra || args[0] !== 'boot' || at < 0 || at + 1 >= args.length) return args;
  const line = args[at + 1] as string;
  const dashes = line.search(/(^| )--( |$)/);
  const joined = dashes < 0 ? `${line} ${extra}` : `${line.slice(0, dashes)} ${extra}${line.slice(dashes)}`;
  return [...args.slice(0, at + 1), joined, ...args.slice(at + 2)];
}

/**
 * Boots `tsvmm args` and resolves when it exits. On a time-out it asks tsvmm where the guest is
 * (SIGUSR2: vCPU registers and LAPIC, UART, virtqueues, interrupts raised), types a probe line,
 * and in the test bed judges the emulated machine while the guest is still there: a stalled
 * machine rejects with EmulatedMachineStall; a healthy one resolves with timedOut and the
 * evidence in `notes`, which tail() puts in the test's failure message.
 */
export function runTsvmm(args: string[], dialogue: [RegExp, string][] = [], timeoutMs = BOOT_TIMEOUT_MS, watch?: ConsoleWatcher): Promise<TsvmmResult> {
  if (inTestBed && existsSync(BED_STALLED_MARK)) {
    return Promise.reject(new EmulatedMachineStall(`not run: ${readFileSync(BED_STALLED_MARK, 'utf8').trim()}`, 'every later nested guest in this emulated machine stalls too (see the first failure)'));
  }
  if (inTestBed) startKvmTrace();
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'tsvmm.js'), ...withGuestArgs(args)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let step = 0;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const next = dialogue[step];
      if (next && next[0].test(stdout)) {
        step++;
        child.stdin.write(next[1]);
      }
      watch?.(stdout, child);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    let closed = false;
    let notes = '';
    let stall: BedHealth | undefined;
    /** The time-out's investigation; a tsvmm that ends meanwhile is resolved only after it. */
    let investigation: Promise<void> | undefined;
    const stop = (): void => {
      if (closed) return;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    };
    const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const investigate = async (): Promise<void> => {
      child.kill('SIGUSR2');
      notes += `no end after ${timeoutMs} ms: asked tsvmm for a report (SIGUSR2, on its stderr) and typed a probe line\n`;
      child.stdin.write('\necho TSVMM-PROBE-$((6*7))\n');
      await pause(PROBE_WAIT_MS);
      notes += `probe ${/TSVMM-PROBE-42/.test(stdout) ? 'answered: the guest console is alive' : 'not answered'}\n`;
      if (closed) {
        notes += 'tsvmm ended by itself meanwhile\n';
        return;
      }
      // A second report: is what the first showed still so (vcpu-reports.ts)?
      child.kill('SIGUSR2');
      await pause(REPORT_WAIT_MS);
      if (!inTestBed) return stop();
      try {
        const health = await diagnoseEmulatedMachine(stderr, stdout);
        notes += `${health.evidence}\n${health.details}\n`;
        if (health.stalled) {
          stall = health;
          writeFileSync(BED_STALLED_MARK, `${health.evidence} (first seen booting: tsvmm ${args.join(' ')})\n`);
        }
      } catch (e) {
        notes += `the bed's diagnosis failed: ${String(e)}\n`;
      }
      stop();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      investigation = investigate();
    }, timeoutMs);
    // EPIPE when tsvmm was killed with input still queued: the result says what happened.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => {
      closed = true;
      clearTimeout(timer);
      void (investigation ?? Promise.resolve()).then(() => {
        const result = { code, signal, stdout, stderr, ms: Date.now() - t0, timedOut, notes };
        if (stall) reject(new EmulatedMachineStall(stall.evidence, tail(result)));
        else resolve(result);
      });
    });
    if (dialogue.length === 0) child.stdin.end();
  });
}

/** The end of what the guest and tsvmm printed, for assertion messages. */
export function tail(r: TsvmmResult, n = 1500): string {
  const notes = r.notes === '' ? '' : `\n--- runTsvmm ---\n${r.notes.trimEnd()}`;
  return `\n--- console (last ${n} bytes) ---\n${r.stdout.slice(-n)}\n--- tsvmm ---\n${r.stderr.slice(-n)}${notes}`;
}

/**
 * The metrics a disk printed at the VM's end with `--stats` (src/cli/boot.ts: a line
 * `rootfs: {...}`), parsed; undefined when no such line is there.
 */
export function diskMetrics(stderr: string, disk: string): Record<string, unknown> | undefined {
  const prefix = `${disk}: `;
  const line = stderr.split('\n').find((l) => l.startsWith(prefix) && l.trimEnd().endsWith('}'));
  return line === undefined ? undefined : (JSON.parse(line.slice(prefix.length)) as Record<string, unknown>);
}
