// Pure: the test-bed CLI's argument parsing.
import { TestBedConfigError } from './errors.js';
import { DEFAULT_TUNING, type Tuning } from './qemu-args.js';

export const USAGE =
  'usage: node dist/test/bed/cli.js [--timeout SECONDS] [--cpus N] [--memory MiB] -- <shell command>\n' +
  '  Runs the shell command (joined with spaces, run by /bin/sh -c) in the current directory inside\n' +
  '  the nested-KVM test bed (QEMU TCG + nested /dev/kvm). Exits with its status; 124 on timeout,\n' +
  '  125 when the test bed failed (VM died, or could not be set up), 2 on a usage error.';

export const DEFAULT_TIMEOUT_S = 1800;

export interface CliArgs {
  timeoutS: number;
  cpus: number | undefined;
  memoryMiB: number | undefined;
  command: string;
}

export class UsageError extends TestBedConfigError {
  constructor(problem: string) {
    super(`${problem}\n${USAGE}`);
  }
}

function positiveInt(flag: string, value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) <= 0) {
    throw new UsageError(`${flag} needs a positive whole number, got ${JSON.stringify(value ?? '')}`);
  }
  return Number(value);
}

export function parseCliArgs(argv: readonly string[]): CliArgs | 'help' {
  const out: CliArgs = { timeoutS: DEFAULT_TIMEOUT_S, cpus: undefined, memoryMiB: undefined, command: '' };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === '-h' || a === '--help') return 'help';
    const [flag, inline] = a?.startsWith('--') === true && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--timeout':
        out.timeoutS = positiveInt(flag, value());
        break;
      case '--cpus':
        out.cpus = positiveInt(flag, value());
        break;
      case '--memory':
        out.memoryMiB = positiveInt(flag, value());
        break;
      default:
        throw new UsageError(`unknown option ${JSON.stringify(a)} (the command goes after --)`);
    }
  }
  const command = argv.slice(i + 1).join(' ');
  if (i >= argv.length || command.trim() === '') throw new UsageError('no command given after --');
  out.command = command;
  return out;
}

/** Tuning from the environment, for measuring alternatives without code changes:
 * TSVMM_TESTBED_CPU replaces QEMU's -cpu value; TSVMM_TESTBED_KERNEL_ARGS (words) is added to
 * the L1 kernel command line (MODULE.PARAM=VALUE words reach the bed's insmod, guest-init.sh). */
export function tuningFromEnv(env: NodeJS.ProcessEnv): Partial<Tuning> {
  const out: Partial<Tuning> = {};
  const cpu = env.TSVMM_TESTBED_CPU?.trim();
  if (cpu) out.cpu = cpu;
  const extra = env.TSVMM_TESTBED_KERNEL_ARGS?.trim();
  if (extra) out.kernelArgs = [...DEFAULT_TUNING.kernelArgs, ...extra.split(/\s+/)];
  return out;
}
