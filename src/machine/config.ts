// What a user asks for when booting a VM, validated before anything is created.

import { MAX_EVENT_LOOP_BOOST } from './thread-priority.js';

export interface MachineConfig {
  kernelPath: string;
  initrdPath?: string;
  /**
   * The kernel command line with the caller's defaults applied (root=, console=); Machine.build
   * parses it (src/boot/cmdline.ts Cmdline) and adds each virtio device's announcement before its `--`.
   */
  cmdline: string;
  vcpus: number;
  memoryMiB: number;
  /** fd the guest console (ttyS0) writes to; stdin feeds it when `consoleInput` is set. */
  consoleFd: number;
  consoleInput: boolean;
  /**
   * Serve virtio-mmio register reads from read-only register pages, without exits (RegisterPage
   * in src/devices/virtio/mmio.ts). Default: on where KVM has KVM_CAP_READONLY_MEM. The CLI turns
   * it off with TSVMM_MMIO_REGISTER_PAGES=0 (for measuring what it saves).
   */
  mmioRegisterPages?: boolean;
  /**
   * Take the driver's InterruptACK = 1 in an ioeventfd (AckDoorbell in
   * src/devices/virtio/mmio.ts) instead of an exit. Default on; the CLI turns it off with
   * TSVMM_MMIO_ACK_DOORBELL=0.
   */
  mmioAckDoorbell?: boolean;
  /**
   * Nice steps the event-loop thread runs above the vCPU threads while the VM runs
   * (thread-priority.ts); default DEFAULT_EVENT_LOOP_BOOST, 0 for none.
   */
  eventLoopBoost?: number;
}

/** Memory slots from here on hold virtio-mmio register pages (guest RAM takes slots 0, 1). */
export const REGISTER_PAGE_SLOT_BASE = 16;

export const MAX_VCPUS = 32;
export const MIN_MEMORY_MIB = 16;
export const MAX_MEMORY_MIB = 1024 * 1024;

/** Firecracker's defaults (plus console=ttyS0 when the console is on). */
export const DEFAULT_CMDLINE = 'reboot=k panic=1 pci=off nomodule 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function validateConfig(c: MachineConfig): MachineConfig {
  if (!Number.isInteger(c.vcpus) || c.vcpus < 1 || c.vcpus > MAX_VCPUS) {
    throw new ConfigError(`vCPU count must be a whole number from 1 to ${MAX_VCPUS}, got ${c.vcpus}`);
  }
  if (!Number.isInteger(c.memoryMiB) || c.memoryMiB < MIN_MEMORY_MIB || c.memoryMiB > MAX_MEMORY_MIB) {
    throw new ConfigError(`memory must be a whole number of MiB from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB}, got ${c.memoryMiB}`);
  }
  if (c.eventLoopBoost !== undefined && (!Number.isInteger(c.eventLoopBoost) || c.eventLoopBoost < 0 || c.eventLoopBoost > MAX_EVENT_LOOP_BOOST)) {
    throw new ConfigError(`event-loop priority boost must be a whole number of nice steps from 0 to ${MAX_EVENT_LOOP_BOOST}, got ${c.eventLoopBoost}`);
  }
  return c;
}
