// Runs one external command to completion: argv in, stdout out, a CommandFailedError with the
// command, its status and the tail of its stderr when it fails. No shell is involved.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { CommandFailedError } from './errors.js';

export interface RunCommandOptions {
  /** What the user should do if the command fails (ends the error message). */
  hint: string;
  /** Bytes written to the command's stdin (stdin is /dev/null otherwise). */
  input?: Uint8Array;
  /** Send stdout straight to this file instead of collecting it (large outputs). */
  stdoutFile?: string;
  cwd?: string;
  /** Inherit stderr so long-running commands (apt-get install) show their progress. */
  showStderr?: boolean;
}

export async function runCommand(argv: readonly string[], opts: RunCommandOptions): Promise<Buffer> {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError('runCommand: empty argv');
  const outFd = opts.stdoutFile === undefined ? undefined : openSync(opts.stdoutFile, 'w');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const child = spawn(file, args, {
        cwd: opts.cwd,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', outFd ?? 'pipe', opts.showStderr ? 'inherit' : 'pipe'],
        // LC_ALL=C: parsed output must not be translated; apt-get must never ask a question.
        env: { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' },
      });
      const out: Buffer[] = [];
      let err = '';
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      child.stderr?.on('data', (b: Buffer) => {
        err = (err + b.toString('utf8')).slice(-2000);
      });
      child.on('error', (e) => reject(new CommandFailedError(argv, null, e.message, opts.hint)));
      child.on('close', (code, signal) => {
        if (code === 0) resolve(Buffer.concat(out));
        else reject(new CommandFailedError(argv, code, signal === null ? err : `${err} (killed by ${signal})`, opts.hint));
      });
      if (child.stdin !== null && opts.input !== undefined) {
        child.stdin.on('error', () => undefined); // EPIPE if the command exits early; 'close' reports it
        child.stdin.end(opts.input);
      }
    });
  } finally {
    if (outFd !== undefined) closeSync(outFd);
  }
}
