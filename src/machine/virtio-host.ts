// The main-thread half of a virtio-mmio device in a VM. The register file (MmioTransport) runs
// on the vCPU threads over shared state; this side reacts to what the driver did there:
//   - status changes arrive through an eventfd the transport signals: DRIVER_OK activates the
//     device with the queues the driver made ready, status 0 resets it;
//   - queue notifications arrive through ioeventfds KVM signals on the QueueNotify register
//     (datamatch = queue index), so a notify costs the vCPU no exit to user space;
//   - interrupts go out through an irqfd on the device's GSI, and the driver's usual
//     acknowledgement (InterruptACK = 1) lands in another ioeventfd (an AckDoorbell, mmio.ts),
//     so of the two register accesses an interrupt costs, only the InterruptStatus read exits;
//   - with a register-page slot, KVM serves every register read from a read-only page the
//     transport keeps current (RegisterPage, mmio.ts), so that read does not exit either.
import type { VirtioDevice } from '../devices/virtio/device.js';
import { ACK_DOORBELL_VALUE, TransportState, type AckDoorbell, type RegisterPage } from '../devices/virtio/mmio.js';
import { REG } from '../devices/virtio/mmio-regs.js';
import { VirtioActivation } from '../devices/virtio/activation.js';
import { EventFd } from '../vmm/eventfd.js';
import { HostMapping } from '../vmm/mapping.js';
import type { GuestMemory } from '../vmm/guest-memory.js';
import type { MemoryRegion, Vm } from '../vmm/vm.js';

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
  /** The ioeventfd KVM signals for InterruptACK = ACK_DOORBELL_VALUE (see AckDoorbell), if any. */
  ackFd: number | undefined;
  /** The register page's HostMapping id (see RegisterPage), when KVM maps one. */
  pageMappingId: number | undefined;
}

/** An eventfd as an AckDoorbell: the counter is non-zero when the driver acknowledged. */
export function eventFdDoorbell(efd: EventFd): AckDoorbell {
  return { take: () => efd.drain() !== 0n };
}

export class VirtioMmioHost {
  readonly state: TransportState;
  private readonly irq = new EventFd();
  private readonly statusEvent = new EventFd();
  /** The ACK doorbell's ioeventfd, if the host uses one. */
  private readonly ackEvent: EventFd | undefined;
  private readonly queueEvents: EventFd[];
  private readonly activation: VirtioActivation;
  /** The register page and the read-only memory slot KVM maps it with, if any. */
  private readonly page: { mapping: HostMapping; region: MemoryRegion } | undefined;

  /**
   * opts.pageSlot: a free KVM memory slot for the register page (the VM must have
   * KVM_CAP_READONLY_MEM); undefined: every register read exits to the transport.
   * opts.ackDoorbell (default true): InterruptACK = 1 goes to an ioeventfd, not to user space.
   */
  constructor(
    readonly name: string,
    readonly device: VirtioDevice,
    readonly base: number,
    readonly gsi: number,
    private readonly vm: Vm,
    memory: GuestMemory,
    opts: { pageSlot?: number | undefined; ackDoorbell?: boolean } = {},
  ) {
    const pageSlot = opts.pageSlot;
    this.ackEvent = opts.ackDoorbell ?? true ? new EventFd() : undefined;
    let page: RegisterPage | undefined;
    if (pageSlot !== undefined) {
      const mapping = HostMapping.allocate(VIRTIO_MMIO_SIZE);
      const region: MemoryRegion = { slot: pageSlot, guestPhysAddr: BigInt(base), mapping, readOnly: true };
      this.page = { mapping, region };
      page = {
        bytes: mapping.bytes(),
        // A memory slot of size 0 deletes it (KVM_SET_USER_MEMORY_REGION).
        suspend: () => vm.setMemoryRegion({ ...region, size: 0 }),
        resume: () => vm.setMemoryRegion(region),
      };
    }
    this.state = new TransportState(
      TransportState.create({ deviceId: device.deviceId, features: device.features, queueMaxSizes: device.queueMaxSizes, config: device.config }),
      { ackDoorbell: this.ackEvent && eventFdDoorbell(this.ackEvent), page },
    );
    if (this.page) {
      this.state.renderPage();
      vm.setMemoryRegion(this.page.region);
    }
    this.queueEvents = device.queueMaxSizes.map(() => new EventFd());
    this.activation = new VirtioActivation(this.state, device, memory, () => this.irq.signal(), (line) => {
      if (process.env.TSVMM_DEBUG) process.stderr.write(`[tsvmm] ${name}: ${line}\n`);
    });
    vm.registerIrqfd(this.irq, gsi);
    if (this.ackEvent) vm.registerIoeventfd(this.ackSpec, this.ackEvent);
    this.queueEvents.forEach((efd, i) => {
      vm.registerIoeventfd(this.notifySpec(i), efd);
      efd.watch(() => this.activation.onNotify(i));
    });
    this.statusEvent.watch(() => this.activation.onStatus());
  }

  private notifySpec(queue: number): { space: 'mmio'; address: bigint; length: 4; datamatch: bigint } {
    return { space: 'mmio', address: BigInt(this.base + REG.queueNotify), length: 4, datamatch: BigInt(queue) };
  }

  private get ackSpec(): { space: 'mmio'; address: bigint; length: 4; datamatch: bigint } {
    return { space: 'mmio', address: BigInt(this.base + REG.interruptAck), length: 4, datamatch: BigInt(ACK_DOORBELL_VALUE) };
  }

  /**
   * The kernel parameter that announces this device, virtio_mmio.device=<size>@<base>:<irq>
   * (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, kernel-parameters.rst).
   */
  get cmdlineParam(): { name: string; value: string } {
    return { name: 'virtio_mmio.device', value: `${VIRTIO_MMIO_SIZE / 1024}K@0x${this.base.toString(16)}:${this.gsi}` };
  }

  /** For a stuck-guest report: the transport, its queues and, where the device keeps them, its metrics. */
  describe(): string[] {
    const lines = this.activation.describe().map((l) => `${this.name}: ${l}`);
    const metrics = (this.device as { metrics?: unknown }).metrics;
    if (metrics !== undefined) lines.push(`${this.name}: ${JSON.stringify(metrics)}`);
    return lines;
  }

  get worker(): VirtioWorkerDevice {
    return {
      name: this.name,
      base: this.base,
      state: this.state.buffer,
      statusFd: this.statusEvent.fd,
      queueFds: this.queueEvents.map((e) => e.fd),
      irqFd: this.irq.fd,
      ackFd: this.ackEvent?.fd,
      pageMappingId: this.page?.mapping.id,
    };
  }

  async dispose(): Promise<void> {
    this.statusEvent.dispose();
    this.queueEvents.forEach((efd, i) => {
      this.vm.unregisterIoeventfd(this.notifySpec(i), efd);
      efd.dispose();
    });
    if (this.page) {
      this.vm.setMemoryRegion({ ...this.page.region, size: 0 });
      this.page.mapping.dispose();
    }
    if (this.ackEvent) {
      this.vm.unregisterIoeventfd(this.ackSpec, this.ackEvent);
      this.ackEvent.dispose();
    }
    this.vm.unregisterIrqfd(this.irq, this.gsi);
    this.irq.dispose();
    await this.device.dispose();
  }
}

