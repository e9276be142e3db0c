// Each device kind of a VM description opened by its own factory, in the order the guest sees
// them, with the user's id as the device's name. A device that fails to open releases the ones
// opened before it (they are on the caller's DisposalStack). What a device needs from outside
// the description (virtio-fs's FUSE server) comes in DeviceFactoryOptions.
import { VirtioBlock } from '../devices/virtio/block/index.js';
import { VirtioFs, type FuseRequestHandler } from '../devices/virtiofs/index.js';
import { PassthroughServer } from '../devices/virtiofs/server/index.js';
import { VirtioVsock } from '../devices/vsock/device.js';
import { HybridVsockBackend } from '../devices/vsock/hybrid-backend.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import type { DisposalStack } from './disposal-stack.js';
import { debugLog } from './debug-log.js';
import { ConfigError, drivesInGuestOrder, type DriveDescription, type FsShareDescription, type VmDescription, type VsockDescription } from './vm-description.js';

export type DeviceKind = 'virtio-blk' | 'virtio-vsock' | 'virtio-fs';

/**
 * Starts the FUSE server for one share (its directory opened, confined, read-only where asked).
 * The device owns what it returns: handler.dispose() runs when the device is disposed, or at once
 * when the device cannot be built.
 */
export type FuseServerFactory = (share: FsShareDescription) => Promise<FuseRequestHandler>;

export interface DeviceFactoryOptions {
  /** The virtio-fs server behind each share (default: passthroughFuseServer; tests inject fakes). */
  fuseServer?: FuseServerFactory;
}

export interface OpenedDevice {
  /** The user's id (drive_id, vsock_id): the device's name in reports, metrics and the API. */
  id: string;
  kind: DeviceKind;
  device: VirtioDevice;
}

/** A device that cannot be opened (its backend file, socket ...): names the device and the cause. */
export class DeviceOpenError extends Error {
  constructor(id: string, kind: DeviceKind, cause: unknown) {
    super(`${kind} ${id}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'DeviceOpenError';
  }
}

async function openDrive(d: DriveDescription): Promise<VirtioDevice> {
  return VirtioBlock.open({ path: d.pathOnHost, readOnly: d.isReadOnly, direct: d.direct, ...(d.ioEngine ? { engine: d.ioEngine } : {}) });
}

async function openVsock(v: VsockDescription): Promise<VirtioDevice> {
  // The muxer logs every guest packet when asked to: only pass a log when debugging is on.
  const log = debugLog(v.vsockId);
  const backend = await HybridVsockBackend.listen(v.udsPath, log);
  try {
    return new VirtioVsock(BigInt(v.guestCid), backend, log ? { log } : {});
  } catch (e) {
    await backend.dispose();
    throw e;
  }
}

/**
 * The FUSE server a share gets unless the caller injects another (tests): the confined in-process
 * passthrough server over the share's directory. The DAX window (FUSE_SETUPMAPPING into a KVM
 * memory slot above RAM) is not built yet, so a share asking for one is refused rather than
 * offered a window the guest could not use.
 */
export const passthroughFuseServer: FuseServerFactory = async (share) => {
  if (share.daxWindowMiB > 0) {
    throw new ConfigError(`fs share ${share.fsId}: a DAX window (dax=${share.daxWindowMiB}) is not part of this build yet; share without :dax=`);
  }
  return new PassthroughServer({ sharedDir: share.sharedDir, readOnly: share.readOnly, log: debugLog(share.fsId) ?? (() => undefined) });
};

async function openFsShare(share: FsShareDescription, fuseServer: FuseServerFactory): Promise<VirtioDevice> {
  const handler = await fuseServer(share);
  try {
    return new VirtioFs(handler, { tag: share.tag, daxWindowMiB: share.daxWindowMiB });
  } catch (e) {
    await handler.dispose();
    throw e;
  }
}

/** Opens every device of `d`; each one's dispose() goes on `stack` as soon as it is open. */
export async function openDevices(d: VmDescription, stack: DisposalStack, options: DeviceFactoryOptions = {}): Promise<OpenedDevice[]> {
  const fuseServer = options.fuseServer ?? passthroughFuseServer;
  if (d.networkInterfaces.length > 0) throw new ConfigError(`network interface ${d.networkInterfaces[0]?.ifaceId}: virtio-net is not part of this build yet`);
  const out: OpenedDevice[] = [];
  const open = async (id: string, kind: DeviceKind, make: () => Promise<VirtioDevice>): Promise<void> => {
    let device: VirtioDevice;
    try {
      device = await make();
    } catch (e) {
      throw new DeviceOpenError(id, kind, e);
    }
    stack.defer(`${kind} ${id}`, () => device.dispose());
    out.push({ id, kind, device });
  };
  for (const drive of drivesInGuestOrder(d)) await open(drive.driveId, 'virtio-blk', () => openDrive(drive));
  const vsock = d.vsock;
  if (vsock) await open(vsock.vsockId, 'virtio-vsock', () => openVsock(vsock));
  for (const share of d.fsShares) await open(share.fsId, 'virtio-fs', () => openFsShare(share, fuseServer));
  return out;
}
