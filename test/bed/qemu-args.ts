// Pure: the QEMU command line and the L1 kernel command line of one test-bed run.
import { join } from 'node:path';
import { TestBedConfigError } from './errors.js';

/** Knobs measured in test/bed/README.md; the defaults are what measured best there. */
export interface Tuning {
  /** QEMU's -cpu value: a model with SVM (TCG's 'max' is an AMD model with svm and npt), plus
   * any ',+feature' / ',-feature' words. */
  cpu: string;
  /** TCG vCPU threading: 'multi' (MTTCG, one host thread per vCPU) or 'single' (round-robin). */
  tcgThread: 'single' | 'multi';
  /** TCG translation cache size in MiB (undefined: QEMU's default). */
  tbSizeMiB: number | undefined;
  /** Mount options of the host-root 9p share (after trans=virtio,version=9p2000.L). */
  ninepOptions: string;
  /** Kernel command-line words added after the fixed ones. */
  kernelArgs: readonly string[];
}

/** Measured on a 2-core host (test/bed/README.md); each choice is the fastest there. */
export const DEFAULT_TUNING: Tuning = {
  cpu: 'max',
  // MTTCG only matters with --cpus > 1; there, single-threaded TCG made a nested boot crawl.
  tcgThread: 'multi',
  // QEMU's default (1 GiB here); 256 MiB measured slower, 2048 MiB no faster.
  tbSizeMiB: undefined,
  // cache=loose: node -e 0 warm 0.35 s; cache=mmap: 3 s; the default (no cache): 2.6-4.5 s (issue 4).
  ninepOptions: 'msize=512000,cache=loose',
  kernelArgs: [
    // Only crit and worse reach the console (panics, oopses): the command's output is not
    // interleaved with e.g. kvm's "Unhandled WRMSR" errors, which dmesg still has.
    'loglevel=3',
    // A throw-away VM running our own code: no speculation mitigations (retpolines etc.).
    'mitigations=off',
    // Keep the TSC as clocksource (TCG fails the kernel's TSC sync check) instead of HPET,
    // whose every read is an emulated MMIO access; skip the clocksource watchdog and timer check.
    'tsc=reliable',
    'no_timer_check',
    // Skip the crypto self-tests at boot.
    'cryptomgr.notests',
    // A periodic LAPIC tick (TCG's -cpu max has no TSC-deadline timer, so low-resolution,
    // non-dynticks mode runs the LAPIC timer periodic): QEMU 7.2 loses a wake-up now and then
    // under nested SVM, leaving the timer's vector pending in IRR for good when the timer is
    // one-shot (the "freeze"); a periodic timer raises it again each tick, which delivers it
    // (watchdog.ts has the race and the other defence).
    'nohz=off',
    'highres=off',
  ],
};

export interface QemuRunConfig {
  kernel: string;
  initramfs: string;
  cpus: number;
  memoryMiB: number;
  /** Host directory holding job.sh and binds; reaches the guest through the host-root share. */
  jobDir: string;
  tuning: Tuning;
}

/** Port of the isa-debug-exit device; guest-init.sh writes the status byte there. */
export const DEBUG_EXIT_PORT = 0xf4;
/** Port of an isa-debugcon device: guest-init.sh writes a heartbeat byte there every few
 * seconds while the command runs, and QEMU appends it to HEARTBEAT_FILE in the job directory. */
export const HEARTBEAT_PORT = 0xe9;
export const HEARTBEAT_FILE = 'heartbeat';
/** QEMU's QMP socket in the job directory: the heartbeat watchdog revives a silent machine
 * through it, and reads a frozen one's registers. */
export const QMP_SOCKET = 'qmp.sock';

/** QEMU's option parser splits on ','; a literal comma is written ',,'. */
export function qemuOptionValue(s: string): string {
  return s.replace(/,/g, ',,');
}

const CPU_VALUE = /^[A-Za-z0-9_.-]+(,[+-]?[A-Za-z0-9_.-]+(=[A-Za-z0-9_.-]+)?)*$/;

const CMDLINE_WORD = /^[A-Za-z0-9_.,:=/+@-]+$/;

function checkCmdlineWord(what: string, word: string): void {
  if (!CMDLINE_WORD.test(word)) {
    throw new TestBedConfigError(`${what} ${JSON.stringify(word)} cannot go on the kernel command line (allowed: ${CMDLINE_WORD.source}); choose a plainer value`);
  }
}

export function kernelCmdline(c: Pick<QemuRunConfig, 'jobDir' | 'tuning'>): string {
  checkCmdlineWord('job directory', c.jobDir);
  checkCmdlineWord('9p options', c.tuning.ninepOptions);
  for (const w of c.tuning.kernelArgs) checkCmdlineWord('kernel argument', w);
  return [
    'console=ttyS0',
    'panic=-1', // a panic reboots at once, and -no-reboot turns that into QEMU exiting: vm-died
    ...c.tuning.kernelArgs,
    `tsvmm.job=${c.jobDir}`,
    `tsvmm.9p=${c.tuning.ninepOptions}`,
  ].join(' ');
}

export function qemuArgs(c: QemuRunConfig): string[] {
  if (!Number.isInteger(c.cpus) || c.cpus < 1 || c.cpus > 64) throw new TestBedConfigError(`cpus ${c.cpus} is not an integer from 1 to 64`);
  if (!Number.isInteger(c.memoryMiB) || c.memoryMiB < 256) throw new TestBedConfigError(`memoryMiB ${c.memoryMiB} is not an integer of at least 256`);
  const t = c.tuning;
  if (t.tbSizeMiB !== undefined && (!Number.isInteger(t.tbSizeMiB) || t.tbSizeMiB < 1)) {
    throw new TestBedConfigError(`tbSizeMiB ${t.tbSizeMiB} is not a positive integer`);
  }
  if (!CPU_VALUE.test(t.cpu)) throw new TestBedConfigError(`cpu ${JSON.stringify(t.cpu)} is not a QEMU -cpu value of the form model[,+feature|,-feature|,key=value]...`);
  const accel = ['tcg', `thread=${t.tcgThread}`, ...(t.tbSizeMiB === undefined ? [] : [`tb-size=${t.tbSizeMiB}`])].join(',');
  return [
    '-accel', accel,
    '-cpu', t.cpu, // under TCG, 'max' is an AMD model with svm and npt, so kvm_amd loads (TCG has no VMX)
    '-smp', String(c.cpus),
    '-m', String(c.memoryMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-nic', 'none',
    '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-device', `isa-debug-exit,iobase=0x${DEBUG_EXIT_PORT.toString(16)},iosize=0x04`,
    '-chardev', `file,id=heartbeat,path=${qemuOptionValue(join(c.jobDir, HEARTBEAT_FILE))}`,
    '-device', `isa-debugcon,iobase=0x${HEARTBEAT_PORT.toString(16)},chardev=heartbeat`,
    '-qmp', `unix:${qemuOptionValue(join(c.jobDir, QMP_SOCKET))},server=on,wait=off`,
    '-kernel', c.kernel,
    '-initrd', c.initramfs,
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-append', kernelCmdline(c),
  ];
}
