// What every benchmark that boots the kernels/ guest decides first: whether it runs here or in the
// nested-KVM test bed, and which guest kernel and initramfs it boots.
import { findGuestKernel } from '../check/guest-kernel.js';
import { detectKvm } from '../check/host.js';

/**
 * In the test bed unless told otherwise where this host's /dev/kvm cannot boot Linux (kvm-pvm
 * runs toy guests only; without /dev/kvm nothing runs). `testbed`/`native` are the flags given.
 */
export function runsInTestBed(flags: { testbed?: boolean; native?: boolean }): boolean {
  const kind = detectKvm().kind;
  return flags.testbed ?? (!flags.native && (kind === 'kvm-pvm' || kind === 'absent'));
}

/** The guest given (--kernel and --initrd), else what kernels/build.sh built. */
export function benchGuest(given: { kernel?: string; initrd?: string }): { kernel: string; initrd: string } {
  if (given.kernel && given.initrd) return { kernel: given.kernel, initrd: given.initrd };
  const k = findGuestKernel();
  if (!k) throw new Error('the guest kernel is not built: npm run kernel (or pass --kernel and --initrd)');
  return { kernel: given.kernel ?? k.bzImage, initrd: given.initrd ?? k.initramfs };
}

/**
 * The command-line options every guest benchmark takes (node:util parseArgs): where it runs,
 * which guest it boots, where the JSON goes, how long a boot may take, the bed's CPUs, the
 * internal --session of a run inside the bed, and --help.
 */
export const GUEST_BENCH_OPTIONS = {
  testbed: { type: 'boolean' },
  native: { type: 'boolean' },
  rounds: { type: 'string' },
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  json: { type: 'string' },
  'vm-timeout': { type: 'string' },
  'bed-cpus': { type: 'string' },
  session: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/**
 * How a benchmark run inside the test bed talks back: its command line for the bed's shell, and
 * one line of JSON after a prefix (the session's figures) among the lines it echoes.
 */
export class BedSession {
  private pending = '';

  constructor(private readonly jsonPrefix: string) {}

  /** argv as one shell command line, each word single-quoted. */
  static commandLine(argv: readonly string[]): string {
    return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  }

  /** runInTestBed's onOutput: echoes every whole line but the (long) JSON one. */
  readonly echo = (chunk: string): void => {
    this.pending += chunk;
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    for (const l of lines) if (!l.startsWith(this.jsonPrefix)) process.stdout.write(`${l}\n`);
  };

  /** The JSON the run printed after the prefix, parsed; undefined when there is none. */
  result<T>(output: string): T | undefined {
    const line = output.split('\n').find((l) => l.startsWith(this.jsonPrefix));
    return line === undefined ? undefined : (JSON.parse(line.slice(this.jsonPrefix.length).replace(/\r$/, '')) as T);
  }
}
