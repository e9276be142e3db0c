// Arguments of `tsvmm boot`, parsed with node:util parseArgs and validated.
import { parseArgs } from 'node:util';
import { DEFAULT_CMDLINE } from '../machine/config.js';
import { UsageError } from './errors.js';

export interface BootArgs {
  kernel: string;
  initrd?: string;
  cmdline: string;
  cpus: number;
  memoryMiB: number;
  stats: boolean;
  help: boolean;
}

export const BOOT_USAGE = `usage: tsvmm boot KERNEL [--initrd FILE] [--cmdline S] [--cpus N] [--memory MiB] [--stats]

Boots KERNEL (a bzImage or an uncompressed ELF vmlinux) with the guest console on this terminal.
The VM ends when the guest resets or powers off (exit status 0), on a VMM or KVM failure (1), or
on Ctrl-C / SIGTERM (130 / 143). Build a guest kernel and initramfs with \`npm run kernel\`.

  --initrd FILE    initramfs to load (placed at the top of low RAM)
  --cmdline S      kernel command line (default: ${DEFAULT_CMDLINE});
                   console=ttyS0 is added unless S names a console
  --cpus N         vCPUs (default 1, at most 32)
  --memory MiB     guest RAM (default 256)
  --stats          print exit counts per vCPU and per port when the VM ends`;

function intOption(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} needs a whole number, got '${raw}'`, BOOT_USAGE);
  return Number(raw);
}

/** The command line the guest gets: the given or default one, with console=ttyS0 unless a console is named. */
export function effectiveCmdline(cmdline: string | undefined): string {
  const base = (cmdline ?? DEFAULT_CMDLINE).trim();
  return /(^|\s)console=/.test(base) ? base : `${base} console=ttyS0`.trim();
}

export function parseBootArgs(argv: string[]): BootArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        initrd: { type: 'string' },
        cmdline: { type: 'string' },
        cpus: { type: 'string' },
        memory: { type: 'string' },
        stats: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e), BOOT_USAGE);
  }
  const { values, positionals } = parsed;
  const help = values.help ?? false;
  if (!help && positionals.length === 0) throw new UsageError('tsvmm boot needs a KERNEL', BOOT_USAGE);
  if (positionals.length === 2) {
    throw new UsageError(`a ROOTFS (${positionals[1]}) needs virtio-blk, which tsvmm does not have yet; boot with --initrd`, BOOT_USAGE);
  }
  if (positionals.length > 2) throw new UsageError(`unexpected arguments: ${positionals.slice(2).join(' ')}`, BOOT_USAGE);
  const args: BootArgs = {
    kernel: positionals[0] ?? '',
    cmdline: effectiveCmdline(values.cmdline),
    cpus: intOption('cpus', values.cpus, 1),
    memoryMiB: intOption('memory', values.memory, 256),
    stats: values.stats ?? false,
    help,
  };
  if (values.initrd !== undefined) args.initrd = values.initrd;
  return args;
}
