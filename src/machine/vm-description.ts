// The VM description: plain data saying what machine to build — its size, boot source, drives,
// vsock, file-system shares and (as that device lands) network interfaces. The CLI produces
// it from `tsvmm boot` arguments; the Firecracker-compatible API and --config-file fill in the
// same shape (their fields map one to one: machine-config, boot-source, drives, vsock). Machine
// never knows which one did. validateDescription is the one place its rules are checked.
import { isAbsolute } from 'node:path';
import type { IoEngine } from '../devices/virtio/block/index.js';
import { daxWindowProblem, tagProblem } from '../devices/virtiofs/config.js';
import { MAX_EVENT_LOOP_BOOST } from './thread-priority.js';

export interface MachineShape {
  vcpuCount: number;
  memSizeMiB: number;
}

/** Knobs that change how tsvmm serves the guest, not what the guest sees. */
export interface MachineTuning {
  /**
   * Serve virtio-mmio register reads from read-only register pages, without exits (RegisterPage
   * in src/devices/virtio/mmio.ts). Default: on where KVM has KVM_CAP_READONLY_MEM.
   */
  mmioRegisterPages?: boolean;
  /** Take the driver's InterruptACK = 1 in an ioeventfd (AckDoorbell in mmio.ts). Default on. */
  mmioAckDoorbell?: boolean;
  /**
   * Nice steps the event-loop thread runs above the vCPU threads while the VM runs
   * (thread-priority.ts); default DEFAULT_EVENT_LOOP_BOOST, 0 for none.
   */
  eventLoopBoost?: number;
}

export interface BootSource {
  kernelImagePath: string;
  initrdPath?: string;
  /**
   * The kernel command line as given (defaults already applied by the producer). Machine adds
   * what the hardware implies before its `--`: root= for the root drive, one virtio_mmio.device=
   * per device (src/machine/kernel-cmdline.ts).
   */
  bootArgs: string;
}

/** A virtio-blk drive (Firecracker's Drive: drive_id, path_on_host, is_root_device, is_read_only). */
export interface DriveDescription {
  driveId: string;
  pathOnHost: string;
  /** The guest mounts it as its root: it becomes /dev/vda and root=/dev/vda ro|rw is added. */
  isRootDevice: boolean;
  isReadOnly: boolean;
  /** O_DIRECT: the host's page cache is bypassed (QEMU's cache=none). */
  direct: boolean;
  /** How transfers reach the host kernel; absent: the backend's default (defaultIoEngine). */
  ioEngine?: IoEngine;
}

/** virtio-vsock with Firecracker's hybrid Unix-socket backend (its docs/vsock.md). */
export interface VsockDescription {
  vsockId: string;
  /** The guest's context ID, 3 or more (0-2 are reserved: hypervisor, local, host). */
  guestCid: number;
  /** Where the VMM listens for host connections; guest connections to port P go to `${udsPath}_${P}`. */
  udsPath: string;
}

/** A host directory shared into the guest with virtio-fs (virtio 1.2 §5.11). */
export interface FsShareDescription {
  fsId: string;
  /** The host directory, an absolute path; the guest sees nothing outside it. */
  sharedDir: string;
  /** What the guest mounts (`mount -t virtiofs TAG DIR`): 1 to 36 bytes of UTF-8, no NUL, unique per VM. */
  tag: string;
  readOnly: boolean;
  /** DAX window size in MiB: 0 (no window) or a multiple of 2 up to 64 GiB (MAX_DAX_WINDOW_MIB). */
  daxWindowMiB: number;
}

/** A virtio-net interface over a TAP device (the net issue fills this in). */
export interface NetInterfaceDescription {
  ifaceId: string;
  hostDevName: string;
  guestMac?: string;
}

export interface VmDescription {
  machine: MachineShape;
  tuning?: MachineTuning;
  bootSource: BootSource;
  drives: DriveDescription[];
  vsock?: VsockDescription;
  fsShares: FsShareDescription[];
  networkInterfaces: NetInterfaceDescription[];
}

export const MAX_VCPUS = 32;
export const MIN_MEMORY_MIB = 16;
export const MAX_MEMORY_MIB = 1024 * 1024;
/** Guest CIDs 0, 1 and 2 are the hypervisor, loopback and host (virtio 1.2 §5.10.4). */
export const MIN_GUEST_CID = 3;
/** Firecracker's guest_cid is a u32; Linux's vsock addresses are 32-bit too. */
export const MAX_GUEST_CID = 0xffff_ffff;
/** Device ids: what Firecracker's API accepts in a path (alphanumerics and '_', at most 64). */
const DEVICE_ID = /^[A-Za-z0-9_]{1,64}$/;
/** sockaddr_un.sun_path holds 108 bytes, NUL included; `_<port>` (up to 11 more) goes after it. */
const MAX_UDS_PATH_BYTES = 107 - 11;

/** Firecracker's defaults (plus console=ttyS0 when the console is on). */
export const DEFAULT_CMDLINE = 'reboot=k panic=1 pci=off nomodule 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function wholeNumberIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

/** The rules of the fs shares, beyond their ids (validateDescription; the CLI runs them on --share). */
export function checkFsShares(shares: readonly FsShareDescription[]): void {
  const tags = new Map<string, string>();
  for (const fs of shares) {
    const tag = tagProblem(fs.tag);
    if (tag) throw new ConfigError(`fs share ${fs.fsId}: tag ${JSON.stringify(fs.tag)} ${tag}`);
    const other = tags.get(fs.tag);
    if (other !== undefined) throw new ConfigError(`fs share ${fs.fsId}: tag ${JSON.stringify(fs.tag)} is already the tag of fs share ${other}; the guest mounts a share by its tag`);
    tags.set(fs.tag, fs.fsId);
    if (!isAbsolute(fs.sharedDir)) throw new ConfigError(`fs share ${fs.fsId}: shared directory ${JSON.stringify(fs.sharedDir)} is not an absolute path`);
    const dax = daxWindowProblem(fs.daxWindowMiB);
    if (dax) throw new ConfigError(`fs share ${fs.fsId}: DAX window ${dax}`);
  }
}

/** Checks every rule of a description; throws ConfigError naming the first field that breaks one. */
export function validateDescription(d: VmDescription): VmDescription {
  const { vcpuCount, memSizeMiB } = d.machine;
  if (!wholeNumberIn(vcpuCount, 1, MAX_VCPUS)) throw new ConfigError(`vCPU count must be a whole number from 1 to ${MAX_VCPUS}, got ${vcpuCount}`);
  if (!wholeNumberIn(memSizeMiB, MIN_MEMORY_MIB, MAX_MEMORY_MIB)) throw new ConfigError(`memory must be a whole number of MiB from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB}, got ${memSizeMiB}`);
  const boost = d.tuning?.eventLoopBoost;
  if (boost !== undefined && !wholeNumberIn(boost, 0, MAX_EVENT_LOOP_BOOST)) throw new ConfigError(`event-loop priority boost must be a whole number of nice steps from 0 to ${MAX_EVENT_LOOP_BOOST}, got ${boost}`);
  if (d.bootSource.kernelImagePath === '') throw new ConfigError('the boot source needs a kernel image path');
  const ids = new Map<string, string>();
  const claim = (id: string, what: string): void => {
    if (!DEVICE_ID.test(id)) throw new ConfigError(`${what} id ${JSON.stringify(id)}: use 1 to 64 letters, digits or '_'`);
    const other = ids.get(id);
    if (other !== undefined) throw new ConfigError(`${what} id ${JSON.stringify(id)} is already used by a ${other}`);
    ids.set(id, what);
  };
  for (const drive of d.drives) {
    claim(drive.driveId, 'drive');
    if (drive.pathOnHost === '') throw new ConfigError(`drive ${drive.driveId} needs a path on the host`);
  }
  const roots = d.drives.filter((x) => x.isRootDevice);
  if (roots.length > 1) throw new ConfigError(`only one drive can be the root device; ${roots.map((r) => r.driveId).join(' and ')} both are`);
  if (d.vsock) {
    claim(d.vsock.vsockId, 'vsock');
    if (!wholeNumberIn(d.vsock.guestCid, MIN_GUEST_CID, MAX_GUEST_CID)) throw new ConfigError(`vsock guest CID must be a whole number from ${MIN_GUEST_CID} to ${MAX_GUEST_CID}, got ${d.vsock.guestCid}`);
    const bytes = Buffer.byteLength(d.vsock.udsPath);
    if (bytes === 0 || bytes > MAX_UDS_PATH_BYTES) throw new ConfigError(`vsock uds_path must be 1 to ${MAX_UDS_PATH_BYTES} bytes (a Unix socket path, with room for _<port>), got ${bytes}`);
  }
  for (const fs of d.fsShares) claim(fs.fsId, 'fs share');
  checkFsShares(d.fsShares);
  for (const net of d.networkInterfaces) claim(net.ifaceId, 'network interface');
  return d;
}

/** The drives in the order the guest sees them: the root device first (/dev/vda), then as given. */
export function drivesInGuestOrder(d: VmDescription): DriveDescription[] {
  return [...d.drives.filter((x) => x.isRootDevice), ...d.drives.filter((x) => !x.isRootDevice)];
}
