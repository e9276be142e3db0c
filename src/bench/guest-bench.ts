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
