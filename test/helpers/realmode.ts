// A one-vCPU VM in real mode about to run `code`: what the toy-guest KVM tests and the probe
// need, on any /dev/kvm that runs a real-mode guest (kvm-pvm included).
import { Kvm } from '../../src/vmm/kvm.js';
import { HostMapping } from '../../src/vmm/mapping.js';
import type { Vcpu } from '../../src/vmm/vcpu.js';
import type { Vm } from '../../src/vmm/vm.js';

export interface RealModeGuest {
  kvm: Kvm;
  vm: Vm;
  mem: HostMapping;
  vcpu: Vcpu;
  dispose(): void;
}

export interface RealModeOptions {
  /** Guest RAM from 0 (default 512 KiB). */
  ram?: number;
  /** Where the code goes and execution starts (default 0x1000). */
  codeAt?: number;
  /** Create the in-kernel irqchip before the vCPU. */
  irqchip?: boolean;
  /** Real-mode DS base (a multiple of 16). */
  ds?: number;
}

export function realModeGuest(code: readonly number[], opts: RealModeOptions = {}): RealModeGuest {
  const codeAt = opts.codeAt ?? 0x1000;
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  if (opts.irqchip) vm.createIrqchip();
  const mem = HostMapping.allocate(opts.ram ?? 0x80000);
  mem.bytes().set(code, codeAt);
  vm.setMemoryRegion({ slot: 0, guestPhysAddr: 0n, mapping: mem });
  const vcpu = vm.createVcpu(0);
  const sregs = vcpu.getSregs();
  sregs.cs.base = 0n;
  sregs.cs.selector = 0;
  sregs.ds.base = BigInt(opts.ds ?? 0);
  sregs.ds.selector = (opts.ds ?? 0) >> 4;
  vcpu.setSregs(sregs);
  const regs = vcpu.getRegs();
  regs.rip = BigInt(codeAt);
  regs.rflags = 2n;
  vcpu.setRegs(regs);
  return {
    kvm,
    vm,
    mem,
    vcpu,
    dispose() {
      vcpu.dispose();
      vm.dispose();
      mem.dispose();
      kvm.dispose();
    },
  };
}
