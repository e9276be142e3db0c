// Runs `tsvmm` as a child process for Linux-booting tests. `dialogue` pairs are [text to wait
// for on the console, what to type then]: input typed before the guest's UART driver starts
// would be cleared by it, as on real hardware.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export interface TsvmmResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export const BOOT_TIMEOUT_MS = 120_000;

export function runTsvmm(args: string[], dialogue: [RegExp, string][] = [], timeoutMs = BOOT_TIMEOUT_MS): Promise<TsvmmResult> {
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
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
    if (dialogue.length === 0) child.stdin.end();
  });
}

/** The end of what the guest and tsvmm printed, for assertion messages. */
export function tail(r: TsvmmResult, n = 1500): string {
  return `\n--- console (last ${n} bytes) ---\n${r.stdout.slice(-n)}\n--- tsvmm ---\n${r.stderr.slice(-n)}`;
}
