// Runs `tsvmm` as a child process for Linux-booting tests. `dialogue` pairs are [text to wait
// for on the console, what to type then]: input typed before the guest's UART driver starts
// would be cleared by it, as on real hardware.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export interface TsvmmResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The run outlasted its time limit and was stopped by the helper (see runTsvmm). */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

export const BOOT_TIMEOUT_MS = 120_000;

/** Called with everything the console printed so far, after each chunk (e.g. to kill tsvmm at a moment). */
export type ConsoleWatcher = (stdout: string, child: ChildProcess) => void;

/**
 * In the test bed, where a nested guest once stalled (its timer interrupts stop; QEMU's guests
 * stall the same way in that emulated machine, and every later guest there does too), the rest
 * of the suite fails at once instead of waiting out a time-out per boot, so that
 * scripts/test.mjs can run the suite again in a fresh emulated machine without first burning
 * the suite's time limit. The mark lives in the bed's own /tmp, which dies with it.
 */
const BED_STALLED_MARK = '/tmp/.tsvmm-testbed-stalled';
const inTestBed = process.env.TSVMM_WHERE === 'testbed';

export function runTsvmm(args: string[], dialogue: [RegExp, string][] = [], timeoutMs = BOOT_TIMEOUT_MS, watch?: ConsoleWatcher): Promise<TsvmmResult> {
  if (inTestBed && existsSync(BED_STALLED_MARK)) {
    return Promise.reject(new Error('not run: an earlier nested guest in this emulated machine stalled (see the first failure); later guests here stall too'));
  }
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'tsvmm.js'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
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
    // On a timeout, first ask tsvmm where the guest is (SIGUSR2) and find out whether the guest
    // still answers on its console (the test bed sometimes stalls a nested guest: is its tty dead,
    // or is a process stuck?), then ask tsvmm to stop (SIGTERM: it reports why it ended, and its
    // exit counts with --stats), then kill it.
    const timer = setTimeout(() => {
      timedOut = true;
      if (inTestBed) writeFileSync(BED_STALLED_MARK, `${new Date().toISOString()} ${args.join(' ')}\n`);
      // SIGUSR2: tsvmm reports its vCPUs' registers and its devices' state on stderr.
      child.kill('SIGUSR2');
      stdout += `\n[runTsvmm: no end after ${timeoutMs} ms; asked tsvmm for a report (SIGUSR2); typing a probe line]\n`;
      child.stdin.write('\necho TSVMM-PROBE-$((6*7))\n');
      setTimeout(() => {
        stdout += `\n[runTsvmm: probe ${/TSVMM-PROBE-42/.test(stdout) ? 'answered: the guest console is alive' : 'not answered'}; SIGTERM]\n`;
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }, 10_000).unref();
    }, timeoutMs);
    // EPIPE when tsvmm was killed with input still queued: the result says what happened.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, timedOut });
    });
    if (dialogue.length === 0) child.stdin.end();
  });
}

/** The end of what the guest and tsvmm printed, for assertion messages. */
export function tail(r: TsvmmResult, n = 1500): string {
  return `\n--- console (last ${n} bytes) ---\n${r.stdout.slice(-n)}\n--- tsvmm ---\n${r.stderr.slice(-n)}`;
}

/**
 * The metrics a disk printed at the VM's end with `--stats` (src/cli/boot.ts: a line
 * `virtio-blk0: {...}`), parsed; undefined when no such line is there.
 */
export function diskMetrics(stderr: string, disk: string): Record<string, unknown> | undefined {
  const prefix = `${disk}: `;
  const line = stderr.split('\n').find((l) => l.startsWith(prefix) && l.trimEnd().endsWith('}'));
  return line === undefined ? undefined : (JSON.parse(line.slice(prefix.length)) as Record<string, unknown>);
}
