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
import type { SharedMemoryGrant, VirtioDevice } from '../devices/virtio/device.js';
import { ACK_DOORBELL_VALUE, TransportState, shmTable, type AckDoorbell, type RegisterPage } from '../devices/virtio/mmio.js';
import { REG } from '../devices/virtio/mmio-regs.js';
import { VirtioActivation } from '../devices/virtio/activation.js';
import { EventFd } from '../vmm/eventfd.js';
import { HostMapping } from '../vmm/mapping.js';
import type { GuestMemory } from '../vmm/guest-memory.js';
import type { MemoryRegion, Vm } from '../vmm/vm.js';
import type { DisposalStack } from './disposal-stack.js';
import { debugLog } from './debug-log.js';

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

/** Where the VMM placed a device (ResourceAllocator) and how its transport is served. */
export interface VirtioPlacement {
  base: number;
  gsi: number;
  /** A free KVM memory slot for the register page (the VM must have KVM_CAP_READONLY_MEM);
   * undefined: every register read exits to the transport. */
  pageSlot?: number | undefined;
  /** InterruptACK = 1 goes to an ioeventfd, not to user space (default true). */
  ackDoorbell?: boolean;
  /** The device's shared-memory regions, placed (VirtioDevice.sharedMemory). */
  sharedMemory?: readonly SharedMemoryGrant[];
}

export class VirtioMmioHost {
  readonly state: TransportState;
  readonly base: number;
  readonly gsi: number;
  private readonly irq: EventFd;
  private readonly statusEvent: EventFd;
  /** The ACK doorbell's ioeventfd, if the host uses one. */
  private readonly ackEvent: EventFd | undefined;
  private readonly queueEvents: EventFd[] = [];
  private readonly activation: VirtioActivation;
  /** The register page's mapping, if any. */
  private readonly pageMapping: HostMapping | undefined;

  /**
   * Sets the transport up for `device` at `placement`. Every fd, mapping, KVM registration and
   * watcher it makes goes on `stack` as it is made, so a failure part-way leaks nothing and the
   * VM's disposal releases it all (before the device itself, which was opened earlier).
   */
  constructor(
    readonly name: string,
    readonly device: VirtioDevice,
    placement: VirtioPlacement,
    vm: Vm,
    memory: GuestMemory,
    stack: DisposalStack,
  ) {
    this.base = placement.base;
    this.gsi = placement.gsi;
    const debug = debugLog(name);
    const log = (line: string): void => debug?.(line);
    this.irq = stack.use(`${name} irqfd`, new EventFd());
    this.statusEvent = stack.use(`${name} status eventfd`, new EventFd());
    this.ackEvent = placement.ackDoorbell ?? true ? stack.use(`${name} ack eventfd`, new EventFd()) : undefined;
    let page: RegisterPage | undefined;
    let pageRegion: MemoryRegion | undefined;
    if (placement.pageSlot !== undefined) {
      const mapping = stack.use(`${name} register page`, HostMapping.allocate(VIRTIO_MMIO_SIZE));
      this.pageMapping = mapping;
      const region: MemoryRegion = { slot: placement.pageSlot, guestPhysAddr: BigInt(this.base), mapping, readOnly: true };
      pageRegion = region;
      page = {
        bytes: mapping.bytes(),
        // A memory slot of size 0 deletes it (KVM_SET_USER_MEMORY_REGION).
        suspend: () => vm.setMemoryRegion({ ...region, size: 0 }),
        resume: () => vm.setMemoryRegion(region),
      };
    }
    const shm = placement.sharedMemory ?? [];
    this.state = new TransportState(
      TransportState.create({
        deviceId: device.deviceId,
        features: device.features,
        queueMaxSizes: device.queueMaxSizes,
        config: device.config,
        ...(device.writableConfig ? { writableConfig: device.writableConfig } : {}),
        shm: shmTable(name, shm),
      }),
      { ackDoorbell: this.ackEvent && eventFdDoorbell(this.ackEvent), page },
    );
    if (pageRegion) {
      this.state.renderPage();
      vm.setMemoryRegion(pageRegion);
      const region = pageRegion;
      stack.defer(`${name} register page slot`, () => vm.setMemoryRegion({ ...region, size: 0 }));
    }
    this.activation = new VirtioActivation(this.state, device, memory, () => this.irq.signal(), log);
    vm.registerIrqfd(this.irq, this.gsi);
    stack.defer(`${name} irqfd GSI ${this.gsi}`, () => vm.unregisterIrqfd(this.irq, this.gsi));
    if (this.ackEvent) {
      const ack = this.ackEvent;
      vm.registerIoeventfd(this.ackSpec, ack);
      stack.defer(`${name} ack ioeventfd`, () => vm.unregisterIoeventfd(this.ackSpec, ack));
    }
    device.queueMaxSizes.forEach((_, i) => {
      const efd = stack.use(`${name} queue ${i} eventfd`, new EventFd());
      this.queueEvents.push(efd);
      vm.registerIoeventfd(this.notifySpec(i), efd);
      stack.defer(`${name} queue ${i} ioeventfd`, () => vm.unregisterIoeventfd(this.notifySpec(i), efd));
      efd.watch(() => this.activation.onNotify(i));
    });
    this.statusEvent.watch(() => this.activation.onStatus());
    device.attach?.({
      updateConfig: (update) => this.state.configChanged(update),
      sharedMemory: shm,
      log,
    });
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

  /** For a stuck-guest report: the transport, its queues and the device's metrics. */
  describe(): string[] {
    return [...this.activation.describe().map((l) => `${this.name}: ${l}`), `${this.name}: ${JSON.stringify(this.device.metrics())}`];
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
      pageMappingId: this.pageMapping?.id,
    };
  }
}
