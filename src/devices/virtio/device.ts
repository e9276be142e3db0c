// What a virtio device implements (virtio 1.2 §2, device-type chapters). The transport
// (mmio.ts) owns status, feature negotiation and queue set-up; the device owns its config space
// and its queues once the driver sets DRIVER_OK. Devices run on the main thread: they are
// activated with the queues the driver made ready and told when a queue is notified (through an
// ioeventfd); they raise used-buffer interrupts through ctx.interrupt (an irqfd).
import type { GuestMemory } from '../../vmm/guest-memory.js';
import type { SplitQueue } from './queue.js';

export interface ActivateContext {
  memory: GuestMemory;
  /** By queue index; undefined where the driver did not make the queue ready. */
  queues: readonly (SplitQueue | undefined)[];
  /** The features the driver accepted (VIRTIO_F_* and device bits). */
  features: bigint;
  /** Sets InterruptStatus "used buffer" and signals the device's interrupt. */
  interrupt(): void;
  /** The device found a driver error it cannot recover from (§2.1.2): NEEDS_RESET. */
  needsReset(reason: string): void;
}

/** A device's counters for `--stats`, reports and (with the API) Firecracker-style metrics. */
export type DeviceMetrics = Readonly<Record<string, number | string | boolean>>;

/** A shared-memory region the device offers (virtio 1.2 §2.10), e.g. virtio-fs's DAX window (shmid 0). */
export interface SharedMemoryRequest {
  /** The shmid the driver selects it by (SHMSel). */
  id: number;
  /** Bytes; the VMM places it in guest-physical space above RAM, aligned to `align`. */
  length: bigint;
  align: bigint;
}

/** Where the VMM put a requested shared-memory region. */
export interface SharedMemoryGrant {
  id: number;
  guestPhysAddr: bigint;
  length: bigint;
}

/** What the VMM gives a device once it is placed in a VM (VirtioDevice.attach). */
export interface DeviceHost {
  /**
   * The device changed its configuration space: `update` edits it (under the transport's lock,
   * with the config generation bumped, §2.5.1/§4.2.2) and the driver gets a configuration-change
   * interrupt (§2.1.2 / §4.2.2 InterruptStatus bit 1).
   */
  updateConfig(update: (config: Uint8Array) => void): void;
  /** The shared-memory regions the device asked for, placed. */
  readonly sharedMemory: readonly SharedMemoryGrant[];
  /** A line for the VMM's debug log. */
  log(line: string): void;
}

export interface VirtioDevice {
  /** virtio device ID (§5): 2 block, 1 net, 19 vsock, 26 fs, 4 rng. */
  readonly deviceId: number;
  /** Feature bits offered (the transport adds VIRTIO_F_VERSION_1). */
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  /** Device-specific configuration space, as the driver first reads it. */
  readonly config: Uint8Array;
  /** Config-space byte ranges the driver may write (absent: all read-only); see configWritten. */
  readonly writableConfig?: readonly { offset: number; length: number }[];
  /** Shared-memory regions to place (absent or empty: none; the transport then reads length ~0, §4.2.2). */
  readonly sharedMemory?: readonly SharedMemoryRequest[];
  /** Called once, when the VMM places the device, before the driver can see it. */
  attach?(host: DeviceHost): void;
  /** The driver wrote a writable part of the config space; `config` is the whole space now. */
  configWritten?(config: Uint8Array): void;
  /** Counters, a snapshot. */
  metrics(): DeviceMetrics;
  /** DRIVER_OK: start serving the queues. */
  activate(ctx: ActivateContext): void;
  /** The driver notified queue `index`. */
  notify(index: number): void;
  /** The driver reset the device: stop using the queues at once (no used entry, status byte or
   * interrupt for a request of the earlier activation). Backend work in flight may still be
   * moving data to or from the guest's buffers until quiesce() resolves. */
  reset(): void;
  /** Resolves once no work started before the last reset() can touch guest memory any more
   * (the transport holds the driver's reset until then: ResetBarrier, mmio.ts). Absent: at once. */
  quiesce?(): Promise<void>;
  /** Release backend resources (files, sockets). */
  dispose(): Promise<void>;
}
