#!/usr/bin/env node
// The test-bed CLI: node dist/test/bed/cli.js [--timeout S] [--cpus N] [--memory MiB] -- <command>
// Exit status: the command's; 124 timeout; 125 test bed failed (VM died or set-up failed); 2 usage.
import { parseCliArgs, tuningFromEnv, USAGE } from './cli-args.js';
import { ensureTestBed } from './ensure.js';
import { TestBedError } from './errors.js';
import { progress } from './log.js';
import { runInTestBed } from './run.js';

export const EXIT_TIMEOUT = 124;
export const EXIT_TESTBED_FAILED = 125;
export const EXIT_USAGE = 2;

async function main(argv: readonly string[]): Promise<number> {
  let args: ReturnType<typeof parseCliArgs>;
  try {
    args = parseCliArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const bed = await ensureTestBed();
    const tuning = tuningFromEnv(process.env);
    const tuned = Object.keys(tuning).length === 0 ? '' : `; tuning ${JSON.stringify(tuning)}`;
    progress(`booting ${bed.kernelPackage.name} ${bed.kernelPackage.version} under QEMU TCG (nested KVM); timeout ${args.timeoutS} s${tuned}`);
    const r = await runInTestBed({
      command: args.command,
      cwd: process.cwd(),
      timeoutMs: args.timeoutS * 1000,
      bed,
      signal: abort.signal,
      tuning,
      ...(args.cpus === undefined ? {} : { cpus: args.cpus }),
      ...(args.memoryMiB === undefined ? {} : { memoryMiB: args.memoryMiB }),
      onOutput: (chunk) => process.stdout.write(chunk),
    });
    const startup = r.startupMs === undefined ? '' : `, start-up ${(r.startupMs / 1000).toFixed(2)} s`;
    const revived = r.revived === 0 ? '' : `, revived ${r.revived} time(s) after a silent heartbeat`;
    // One harness line with the outcome and times (the console tail a vm-died message carries
    // has just been streamed, so only its first line is printed).
    const [summary] = r.message.split('\n');
    progress(`${summary ?? ''}; wall time ${(r.wallMs / 1000).toFixed(2)} s${startup}${revived}`);
    if (r.reason === 'timeout') return EXIT_TIMEOUT;
    if (r.reason === 'vm-died' || r.exitCode === null) return EXIT_TESTBED_FAILED;
    return r.exitCode;
  } catch (e) {
    if (!(e instanceof TestBedError)) throw e;
    progress(`cannot run the test bed: ${e.message}`);
    return EXIT_TESTBED_FAILED;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

process.exitCode = await main(process.argv.slice(2));
