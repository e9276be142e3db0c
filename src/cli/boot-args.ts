// Arguments of `tsvmm boot`, parsed with node:util parseArgs and validated.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { BootError, Cmdline } from '../boot/index.js';
import { ConfigError, DEFAULT_CMDLINE, checkFsShares, type DriveDescription, type FsShareDescription, type VmDescription } from '../machine/vm-description.js';
import { MAX_EVENT_LOOP_BOOST } from '../machine/thread-priority.js';
import { UsageError } from './errors.js';
import type { IoEngine } from '../devices/virtio/block/index.js';

export interface DiskSpec {
  path: string;
  readOnly: boolean;
  /** O_DIRECT: the host's page cache is bypassed (QEMU's cache=none). */
  direct: boolean;
  /** aio=io_uring / aio=threads; absent: the backend's default (defaultIoEngine). */
  engine?: IoEngine;
}

export interface BootArgs {
  /** The VM to build: ROOTFS is drive `rootfs` (the root device, /dev/vda), each --disk `disk1`,
   * `disk2`, ..., each --share fs share `share0`, `share1`, ... */
  description: VmDescription;
  /** Where the user's --cmdline overrode the console= tsvmm would have added, for stderr. */
  cmdlineWarnings: string[];
  stats: boolean;
  help: boolean;
}

/** Drive ids the CLI gives: Firecracker's guides call the root drive `rootfs`. */
export const ROOT_DRIVE_ID = 'rootfs';

export const BOOT_USAGE = `usage: tsvmm boot KERNEL [ROOTFS[:ro][:direct][:aio=E]] [--initrd FILE] [--disk PATH[:ro][:direct][:aio=E]]... [--vsock CID:UDS_PATH] [--share HOST_DIR:TAG[:ro][:dax=MiB]]... [--cmdline S] [--cpus N] [--memory MiB] [--io-boost N] [--stats]

Boots KERNEL (a bzImage or an uncompressed ELF vmlinux) with the guest console on this terminal.
ROOTFS, a raw disk image (ext4, say), becomes /dev/vda and the root file system (root=/dev/vda rw);
ROOTFS:ro mounts it read-only (root=/dev/vda ro); :direct and :aio=E work as for --disk.
The VM ends when the guest resets or powers off (exit status 0), on a VMM or KVM failure (1), or
on Ctrl-C / SIGTERM (130 / 143). SIGUSR2 prints where the VM is (each vCPU's registers, the UART
and every virtio queue) without stopping it. Build a guest kernel and initramfs with \`npm run kernel\`.

  --initrd FILE    initramfs to load (placed at the top of low RAM)
  --disk PATH[:ro][:direct][:aio=E]
                   a raw disk image as the next virtio-blk disk (/dev/vdb, ...); :ro for read-only,
                   :direct to open it O_DIRECT, past the host's page cache (QEMU's cache=none),
                   :aio=threads (libuv's threadpool) or :aio=io_uring (the disk's own io_uring)
                   for how its I/O reaches the host kernel (QEMU's aio=); default io_uring for
                   a :direct disk where the host has it, else threads
  --vsock CID:UDS_PATH
                   a virtio-vsock device for guest context ID CID (3 or more) with Firecracker's
                   hybrid backend: host programs connect to the Unix socket UDS_PATH and write
                   "CONNECT <port>\\n" to reach a guest port (answered "OK <host port>\\n"); the
                   guest's connections to the host (CID 2) on port P go to UDS_PATH_P
  --share HOST_DIR:TAG[:ro][:dax=MiB]
                   HOST_DIR shared into the guest with virtio-fs; the guest mounts it with
                   "mount -t virtiofs TAG DIR" (TAG: 1 to 36 bytes, no ':', not "ro"); :ro for
                   read-only; may be repeated. The in-process server reaches nothing outside
                   HOST_DIR. :dax=MiB (a DAX window) is refused for now: not built yet
  --cmdline S      kernel command line (default: ${DEFAULT_CMDLINE});
                   what tsvmm adds (console=ttyS0, root=/dev/vda rw for ROOTFS, virtio_mmio.device=
                   for each disk) goes before S's "--", after which come init's arguments; a
                   console=, root=, ro or rw in S wins over tsvmm's (with a warning if it differs)
  --cpus N         vCPUs (default 1, at most 32)
  --memory MiB     guest RAM (default 256)
  --io-boost N     run the event loop (every device's work) N nice steps above the vCPU threads,
                   so that where they share a CPU a guest's request is served when it is made,
                   not when the guest next idles: lower latency at queue depth 1, less batching
                   and lower throughput at depth (default 0; needs CAP_SYS_NICE or RLIMIT_NICE,
                   else nothing changes and --stats says why)
  --stats          print exit counts per vCPU and per port when the VM ends`;

function intOption(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} needs a whole number, got '${raw}'`, BOOT_USAGE);
  return Number(raw);
}

/**
 * The boot args: the given (or default) command line with console=ttyS0 added before its `--`
 * (src/boot/cmdline.ts), as this terminal shows ttyS0. A console= the user wrote wins; where it
 * differs, a warning says so. The machine adds root= for ROOTFS and the virtio_mmio.device=
 * announcements (src/machine/kernel-cmdline.ts).
 */
export function bootCmdline(given: string | undefined): { cmdline: string; warnings: string[] } {
  let line: Cmdline;
  try {
    line = Cmdline.parse(given ?? DEFAULT_CMDLINE);
  } catch (e) {
    if (e instanceof BootError) throw new UsageError(`--cmdline: ${e.message}`, BOOT_USAGE);
    throw e;
  }
  const warnings: string[] = [];
  const warn = (w: string | undefined): void => {
    if (w !== undefined) warnings.push(w);
  };
  warn(line.addDefault({
    name: 'console',
    value: 'ttyS0',
    // Several console= are allowed (kernel-parameters.rst); one on ttyS0, at any speed, is enough.
    agrees: (set) => set.some((p) => /^ttyS0(,|$)/.test(p.value ?? '')),
    why: "this terminal shows the guest's ttyS0 only, so the kernel's messages may not appear here",
  }));
  return { cmdline: line.toString(), warnings };
}

const DISK_FLAGS = ['ro', 'direct', 'aio=io_uring', 'aio=threads'] as const;

/** PATH, then any of :ro, :direct and one :aio=io_uring or :aio=threads (each at most once, in any order). */
export function parseDisk(spec: string): DiskSpec {
  let path = spec;
  const flags = new Set<string>();
  for (;;) {
    const flag = DISK_FLAGS.find((f) => path.endsWith(`:${f}`));
    if (!flag) break;
    if (flags.has(flag)) throw new UsageError(`disk '${spec}': :${flag} given twice`, BOOT_USAGE);
    if (flag.startsWith('aio=') && [...flags].some((f) => f.startsWith('aio='))) {
      throw new UsageError(`disk '${spec}': more than one :aio=`, BOOT_USAGE);
    }
    flags.add(flag);
    path = path.slice(0, -(flag.length + 1));
  }
  if (path === '') throw new UsageError(`a disk needs a path, got '${spec}'`, BOOT_USAGE);
  const aio = /:aio=([^:/]*)$/.exec(path);
  if (aio) throw new UsageError(`disk '${spec}': aio=${aio[1]} is not an engine; io_uring or threads`, BOOT_USAGE);
  const engine: IoEngine | undefined = flags.has('aio=io_uring') ? 'io_uring' : flags.has('aio=threads') ? 'threads' : undefined;
  return { path, readOnly: flags.has('ro'), direct: flags.has('direct'), ...(engine ? { engine } : {}) };
}

/** --vsock CID:UDS_PATH (the path may itself hold colons). */
export function parseVsock(spec: string): { vsockId: string; guestCid: number; udsPath: string } {
  const m = /^([0-9]+):(.+)$/.exec(spec);
  if (!m) throw new UsageError(`--vsock '${spec}': give CID:UDS_PATH, e.g. 3:/tmp/vm.vsock`, BOOT_USAGE);
  return { vsockId: 'vsock', guestCid: Number(m[1]), udsPath: m[2] as string };
}

/** --share HOST_DIR:TAG then any of :ro and one :dax=MiB (HOST_DIR may hold colons, TAG may not). */
export function parseShare(spec: string, fsId: string): FsShareDescription {
  const bad = (why: string): UsageError => new UsageError(`--share '${spec}': ${why}`, BOOT_USAGE);
  let rest = spec;
  let readOnly = false;
  let daxWindowMiB: number | undefined;
  for (;;) {
    if (rest.endsWith(':ro')) {
      if (readOnly) throw bad(':ro given twice');
      readOnly = true;
      rest = rest.slice(0, -':ro'.length);
      continue;
    }
    const dax = /:dax=([^:]*)$/.exec(rest);
    if (!dax) break;
    if (daxWindowMiB !== undefined) throw bad('more than one :dax=');
    if (!/^\d+$/.test(dax[1] as string)) throw bad(`dax=${dax[1]} is not a whole number of MiB`);
    daxWindowMiB = Number(dax[1]);
    rest = rest.slice(0, dax.index);
  }
  const colon = rest.lastIndexOf(':');
  if (colon <= 0 || colon === rest.length - 1) throw bad('give HOST_DIR:TAG, e.g. /srv/data:data');
  return { fsId, sharedDir: resolve(rest.slice(0, colon)), tag: rest.slice(colon + 1), readOnly, daxWindowMiB: daxWindowMiB ?? 0 };
}

/** Each --share as fs share share0, share1, ..., checked (tags, DAX windows) as UsageErrors. */
function parseShares(specs: readonly string[]): FsShareDescription[] {
  const shares = specs.map((spec, i) => parseShare(spec, `share${i}`));
  try {
    checkFsShares(shares);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(`--share: ${e.message}`, BOOT_USAGE);
    throw e;
  }
  return shares;
}

function driveOf(driveId: string, spec: DiskSpec, isRootDevice: boolean): DriveDescription {
  return { driveId, pathOnHost: spec.path, isRootDevice, isReadOnly: spec.readOnly, direct: spec.direct, ...(spec.engine ? { ioEngine: spec.engine } : {}) };
}

export function parseBootArgs(argv: string[]): BootArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        initrd: { type: 'string' },
        disk: { type: 'string', multiple: true },
        vsock: { type: 'string' },
        share: { type: 'string', multiple: true },
        cmdline: { type: 'string' },
        cpus: { type: 'string' },
        memory: { type: 'string' },
        'io-boost': { type: 'string' },
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
  if (positionals.length > 2) throw new UsageError(`unexpected arguments: ${positionals.slice(2).join(' ')}`, BOOT_USAGE);
  const rootfs = positionals[1];
  const drives: DriveDescription[] = [
    ...(rootfs === undefined ? [] : [driveOf(ROOT_DRIVE_ID, parseDisk(rootfs), true)]),
    ...(values.disk ?? []).map((d, i) => driveOf(`disk${i + 1}`, parseDisk(d), false)),
  ];
  const { cmdline, warnings } = bootCmdline(values.cmdline);
  let eventLoopBoost: number | undefined;
  if (values['io-boost'] !== undefined) {
    eventLoopBoost = intOption('io-boost', values['io-boost'], 0);
    if (eventLoopBoost > MAX_EVENT_LOOP_BOOST) throw new UsageError(`--io-boost ${eventLoopBoost}: at most ${MAX_EVENT_LOOP_BOOST} nice steps`, BOOT_USAGE);
  }
  const description: VmDescription = {
    machine: { vcpuCount: intOption('cpus', values.cpus, 1), memSizeMiB: intOption('memory', values.memory, 256) },
    tuning: {
      // Off switches for measuring what each saves (bench/README.md).
      mmioRegisterPages: process.env.TSVMM_MMIO_REGISTER_PAGES !== '0',
      mmioAckDoorbell: process.env.TSVMM_MMIO_ACK_DOORBELL !== '0',
      ...(eventLoopBoost !== undefined ? { eventLoopBoost } : {}),
    },
    bootSource: { kernelImagePath: positionals[0] ?? '', bootArgs: cmdline, ...(values.initrd !== undefined ? { initrdPath: values.initrd } : {}) },
    drives,
    ...(values.vsock !== undefined ? { vsock: parseVsock(values.vsock) } : {}),
    fsShares: parseShares(values.share ?? []),
    networkInterfaces: [],
  };
  return { description, cmdlineWarnings: warnings, stats: values.stats ?? false, help };
}
