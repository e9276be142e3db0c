// What the main thread and the vCPU worker threads tell each other.
import type { BusStats } from '../vmm/bus.js';
import type { VcpuStop } from '../vmm/vcpu-loop.js';
import type { VirtioWorkerDevice } from './virtio-host.js';

/** Everything a vCPU worker needs, all of it transferable to a worker_thread. */
export interface VcpuWorkerInit {
  /** Nice value this thread sets itself to first (it inherited the event loop's raised one). */
  nice?: number;
  vcpuId: number;
  index: number;
  /** Shared control word (see vcpu-loop.ts). */
  control: SharedArrayBuffer;
  serialState: SharedArrayBuffer;
  i8042State: SharedArrayBuffer;
  /** ACPI sleep/reset registers (WAK_STS). */
  acpiPmState: SharedArrayBuffer;
  /** eventfd registered as the UART's irqfd (owned by the main thread). */
  serialIrqFd: number;
  /** fd the guest console writes to. */
  consoleFd: number;
  /** Guest RAM as (mapping id, guest-physical address): transports validate queue addresses. */
  memory: { mappingId: number; guestPhysAddr: number }[];
  /** virtio-mmio devices whose registers this vCPU serves. */
  virtio: VirtioWorkerDevice[];
}

export type VcpuWorkerMessage =
  /** The worker is set up and about to enter KVM_RUN for the first time. */
  | { type: 'running'; index: number; atEpochMs: number }
  /** Where the vCPU was when the main thread asked (SIGUSR2, see Machine.report). */
  | { type: 'report'; index: number; line: string }
  | { type: 'boot-complete'; index: number; atEpochMs: number }
  | { type: 'stopped'; index: number; stop: VcpuStop; pio: BusStats; mmio: BusStats }
  | { type: 'failed'; index: number; error: string };
