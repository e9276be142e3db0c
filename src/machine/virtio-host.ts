// The main-thread half of a virtio-mmio device in a VM. The register file (MmioTransport) runs
// on the vCPU threads over shared state; this side reacts to what the driver did there:
//   - status changes arrive through an eventfd the transport signals: DRIVER_OK activates the
//     device with the queues the driver made ready, status 0 resets it;
//   - queue notifications arrive through ioeventfds KVM signals on the QueueNotify register
//     (datamatch = queue index), so a notify costs the vCPU no exit to user space;
//   - interrupts go out through an irqfd on the device's GSI.
import type { VirtioDevice } from '../devices/virtio/device.js';
import { TransportState } from '../devices/virtio/mmio.js';
import { INT_USED_BUFFER, REG, STATUS, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from '../devices/virtio/mmio-regs.js';
import { SplitQueue } from '../devices/virtio/queue.js';
import { EventFd } from '../vmm/eventfd.js';
import type { GuestMemory } from '../vmm/guest-memory.js';
import type { Vm } from '../vmm/vm.js';

export const VIRTIO_MMIO_SIZE = 0x1000;

/** What a vCPU worker needs to serve this device's registers. */
export interface VirtioWorkerDevice {
  name: string;
  base: number;
  state: SharedArrayBuffer;
  statusFd: number;
  /** One per queue: signalled for a QueueNotify write that reached user space. */
  queueFds: number[];
  irqFd: number;
}

export class VirtioMmioHost {
  readonly state: TransportState;
  private readonly irq = new EventFd();
  private readonly statusEvent = new EventFd();
  private readonly queueEvents: EventFd[];
  private active = false;

  constructor(
    readonly name: string,
    readonly device: VirtioDevice,
    readonly base: number,
    readonly gsi: number,
    private readonly vm: Vm,
    private readonly memory: GuestMemory,
  ) {
    this.state = new TransportState(
      TransportState.create({ deviceId: device.deviceId, features: device.features, queueMaxSizes: device.queueMaxSizes, config: device.config }),
    );
    this.queueEvents = device.queueMaxSizes.map(() => new EventFd());
    vm.registerIrqfd(this.irq, gsi);
    this.queueEvents.forEach((efd, i) => {
      vm.registerIoeventfd(this.notifySpec(i), efd);
      efd.watch(() => this.onNotify(i));
    });
    this.statusEvent.watch(() => this.onStatus());
  }

  private notifySpec(queue: number): { space: 'mmio'; address: bigint; length: 4; datamatch: bigint } {
    return { space: 'mmio', address: BigInt(this.base + REG.queueNotify), length: 4, datamatch: BigInt(queue) };
  }

  /** The kernel command-line word that announces this device (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). */
  get cmdline(): string {
    return `virtio_mmio.device=${VIRTIO_MMIO_SIZE / 1024}K@0x${this.base.toString(16)}:${this.gsi}`;
  }

  get worker(): VirtioWorkerDevice {
    return {
      name: this.name,
      base: this.base,
      state: this.state.buffer,
      statusFd: this.statusEvent.fd,
      queueFds: this.queueEvents.map((e) => e.fd),
      irqFd: this.irq.fd,
    };
  }

  private interrupt(): void {
    this.state.raise(INT_USED_BUFFER);
    this.irq.signal();
  }

  private onStatus(): void {
    const status = this.state.status;
    if (status === 0 && this.active) {
      this.active = false;
      this.device.reset();
    } else if (status & STATUS.DRIVER_OK && !(status & STATUS.NEEDS_RESET) && !this.active) {
      this.activate();
    }
  }

  private activate(): void {
    const features = this.state.driverFeatures;
    const queues: (SplitQueue | undefined)[] = [];
    try {
      for (const q of this.state.readyQueues()) {
        queues[q.index] = new SplitQueue(this.memory, {
          ...q,
          maxSize: this.device.queueMaxSizes[q.index] ?? 0,
          eventIdx: (features & (1n << VIRTIO_F_EVENT_IDX)) !== 0n,
          indirectDesc: (features & (1n << VIRTIO_F_INDIRECT_DESC)) !== 0n,
        });
      }
    } catch (e) {
      this.needsReset(e instanceof Error ? e.message : String(e));
      return;
    }
    this.active = true;
    this.device.activate({
      memory: this.memory,
      queues,
      features,
      interrupt: () => this.interrupt(),
      needsReset: (reason) => this.needsReset(reason),
    });
  }

  private needsReset(reason: string): void {
    if (process.env.TSVMM_DEBUG) process.stderr.write(`[tsvmm] ${this.name}: needs reset: ${reason}\n`);
    this.state.needsReset();
    this.irq.signal();
  }

  private onNotify(queue: number): void {
    // The status eventfd may not have been read yet in this loop turn: activate first.
    if (!this.active) this.onStatus();
    if (this.active) this.device.notify(queue);
  }

  async dispose(): Promise<void> {
    this.statusEvent.dispose();
    this.queueEvents.forEach((efd, i) => {
      this.vm.unregisterIoeventfd(this.notifySpec(i), efd);
      efd.dispose();
    });
    this.vm.unregisterIrqfd(this.irq, this.gsi);
    this.irq.dispose();
    await this.device.dispose();
  }
}

