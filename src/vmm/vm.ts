// One KVM virtual machine: memory slots, the in-kernel irqchip and PIT, ioeventfds, irqfds and
// vCPU creation. Owns the VM fd.
import { native as addon } from './native.js';
import { DisposedError, native } from './errors.js';
import { EventFd } from './eventfd.js';
import { HostMapping } from './mapping.js';
import { Vcpu } from './vcpu.js';

export type IoSpace = 'pio' | 'mmio';

export interface IoeventfdSpec {
  space: IoSpace;
  address: bigint;
  /** Access width that triggers it: 1, 2, 4 or 8 bytes (0 = any width, needs IOEVENTFD_ANY_LENGTH). */
  length: 0 | 1 | 2 | 4 | 8;
  /** Only a write of exactly this value triggers it. */
  datamatch?: bigint;
}

export interface MemoryRegion {
  slot: number;
  guestPhysAddr: bigint;
  mapping: HostMapping;
  offset?: number;
  size?: number;
  readOnly?: boolean;
}

/** The IRQ chips KVM_GET_IRQCHIP can read. */
export type IrqChipId = 'pic-master' | 'pic-slave' | 'ioapic';

export class Vm {
  private fdValue: number;

  /** Created by Kvm.createVm(). */
  constructor(fd: number, readonly vcpuMmapSize: number) {
    this.fdValue = fd;
  }

  get fd(): number {
    if (this.fdValue < 0) throw new DisposedError('Vm');
    return this.fdValue;
  }

  /** KVM_SET_TSS_ADDR: three pages of guest-physical space KVM uses on Intel for real mode. */
  setTssAddress(addr: number): void {
    native(() => addon().ioctl(this.fd, 'KVM_SET_TSS_ADDR', addr));
  }

  setIdentityMapAddress(addr: bigint): void {
    const buf = new Uint8Array(8);
    new DataView(buf.buffer).setBigUint64(0, addr, true);
    native(() => addon().ioctl(this.fd, 'KVM_SET_IDENTITY_MAP_ADDR', buf));
  }

  /** In-kernel PIC + IOAPIC + LAPICs (KVM_CREATE_IRQCHIP). */
  createIrqchip(): void {
    native(() => addon().ioctl(this.fd, 'KVM_CREATE_IRQCHIP'));
  }

  /** In-kernel i8254 PIT (KVM_CREATE_PIT2) with the speaker port left to user space as a dummy. */
  createPit2(): void {
    const cfg = new Uint8Array(addon().structSizes().kvm_pit_config ?? 64);
    new DataView(cfg.buffer).setUint32(0, addon().constants.KVM_PIT_SPEAKER_DUMMY ?? 1, true);
    native(() => addon().ioctl(this.fd, 'KVM_CREATE_PIT2', cfg));
  }

  setMemoryRegion(r: MemoryRegion): void {
    const offset = r.offset ?? 0;
    const size = r.size ?? r.mapping.size - offset;
    const flags = r.readOnly ? addon().constants.KVM_MEM_READONLY ?? 2 : 0;
    native(() => addon().setUserMemoryRegion(this.fd, r.slot, flags, r.guestPhysAddr, r.mapping.native, offset, size));
  }

  /** struct kvm_ioeventfd { u64 datamatch; u64 addr; u32 len; s32 fd; u32 flags; u8 pad[36]; } */
  private ioeventfd(spec: IoeventfdSpec, efd: EventFd, deassign: boolean): void {
    const c = addon().constants;
    const buf = new Uint8Array(64);
    const dv = new DataView(buf.buffer);
    dv.setBigUint64(0, spec.datamatch ?? 0n, true);
    dv.setBigUint64(8, spec.address, true);
    dv.setUint32(16, spec.length, true);
    dv.setInt32(20, efd.fd, true);
    let flags = 0;
    if (spec.datamatch !== undefined) flags |= c.KVM_IOEVENTFD_FLAG_DATAMATCH ?? 1;
    if (spec.space === 'pio') flags |= c.KVM_IOEVENTFD_FLAG_PIO ?? 2;
    if (deassign) flags |= c.KVM_IOEVENTFD_FLAG_DEASSIGN ?? 4;
    dv.setUint32(24, flags, true);
    native(() => addon().ioctl(this.fd, 'KVM_IOEVENTFD', buf));
  }

  registerIoeventfd(spec: IoeventfdSpec, efd: EventFd): void {
    this.ioeventfd(spec, efd, false);
  }

  unregisterIoeventfd(spec: IoeventfdSpec, efd: EventFd): void {
    this.ioeventfd(spec, efd, true);
  }

  /** struct kvm_irqfd { u32 fd; u32 gsi; u32 flags; u32 resamplefd; u8 pad[16]; } */
  private irqfd(efd: EventFd, gsi: number, deassign: boolean): void {
    const buf = new Uint8Array(32);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, efd.fd, true);
    dv.setUint32(4, gsi, true);
    dv.setUint32(8, deassign ? addon().constants.KVM_IRQFD_FLAG_DEASSIGN ?? 1 : 0, true);
    native(() => addon().ioctl(this.fd, 'KVM_IRQFD', buf));
  }

  registerIrqfd(efd: EventFd, gsi: number): void {
    this.irqfd(efd, gsi, false);
  }

  unregisterIrqfd(efd: EventFd, gsi: number): void {
    this.irqfd(efd, gsi, true);
  }

  /** KVM_IRQ_LINE: drive an interrupt line of the in-kernel irqchip high or low. */
  setIrqLine(irq: number, level: boolean): void {
    const buf = new Uint8Array(8);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, irq, true);
    dv.setUint32(4, level ? 1 : 0, true);
    native(() => addon().ioctl(this.fd, 'KVM_IRQ_LINE', buf));
  }

  /** KVM_GET_IRQCHIP raw state (struct kvm_irqchip: u32 chip_id, u32 pad, 512-byte union). */
  getIrqchip(chip: IrqChipId): Uint8Array {
    const c = addon().constants;
    const id = { 'pic-master': c.KVM_IRQCHIP_PIC_MASTER, 'pic-slave': c.KVM_IRQCHIP_PIC_SLAVE, ioapic: c.KVM_IRQCHIP_IOAPIC }[chip];
    const buf = new Uint8Array(addon().structSizes().kvm_irqchip ?? 520);
    new DataView(buf.buffer).setUint32(0, id ?? 0, true);
    native(() => addon().ioctl(this.fd, 'KVM_GET_IRQCHIP', buf));
    return buf;
  }

  /** Interrupt request register of a PIC (struct kvm_pic_state: last_irr, irr, ...). */
  picIrr(chip: 'pic-master' | 'pic-slave'): number {
    return this.getIrqchip(chip)[8 + 1] ?? 0;
  }

  /**
   * KVM_GET_CLOCK: the VM's kvm-clock in ns as the host kernel computes it now, and whether KVM
   * keeps it TSC-stable (struct kvm_clock_data { u64 clock; u32 flags; ... }, flag 2).
   */
  getClock(): { ns: bigint; tscStable: boolean } {
    const buf = new Uint8Array(addon().structSizes().kvm_clock_data ?? 48);
    native(() => addon().ioctl(this.fd, 'KVM_GET_CLOCK', buf));
    const dv = new DataView(buf.buffer);
    return { ns: dv.getBigUint64(0, true), tscStable: (dv.getUint32(8, true) & 2) !== 0 };
  }

  createVcpu(index: number): Vcpu {
    return Vcpu.create(this.fd, index, this.vcpuMmapSize);
  }

  dispose(): void {
    if (this.fdValue >= 0) {
      addon().closeFd(this.fdValue);
      this.fdValue = -1;
    }
  }
}
