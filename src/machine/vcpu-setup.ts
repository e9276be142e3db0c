// Per-vCPU state a Linux guest expects at its 64-bit entry, beyond registers (which src/boot
// computes): boot MSRs, FPU control words and the LAPIC's LINT0/LINT1 wiring. Pure functions on
// the raw KVM structs; the values follow Firecracker's arch/x86_64 (regs.rs, interrupts.rs).
import type { MsrEntry } from '../vmm/kvm-structs.js';

export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_MTRR_DEF_TYPE = 0x2ff;

const MISC_ENABLE_FAST_STRING = 1n;
const MTRR_ENABLE = 1n << 11n;
const MTRR_MEM_TYPE_WB = 6n;

/** The boot MSRs, restricted to those KVM_GET_MSR_INDEX_LIST says this KVM accepts. */
export function bootMsrs(supported: readonly number[]): MsrEntry[] {
  const wanted: MsrEntry[] = [
    { index: MSR_IA32_SYSENTER_CS, data: 0n },
    { index: MSR_IA32_SYSENTER_ESP, data: 0n },
    { index: MSR_IA32_SYSENTER_EIP, data: 0n },
    { index: MSR_STAR, data: 0n },
    { index: MSR_CSTAR, data: 0n },
    { index: MSR_KERNEL_GS_BASE, data: 0n },
    { index: MSR_SYSCALL_MASK, data: 0n },
    { index: MSR_LSTAR, data: 0n },
    { index: MSR_IA32_TSC, data: 0n },
    { index: MSR_IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING },
    { index: MSR_MTRR_DEF_TYPE, data: MTRR_ENABLE | MTRR_MEM_TYPE_WB },
  ];
  const offered = new Set(supported);
  return wanted.filter((m) => offered.has(m.index));
}

/** struct kvm_fpu with x87 control word 0x37f and MXCSR 0x1f80 (the power-on defaults). */
export function bootFpu(size = 416): Uint8Array {
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  dv.setUint16(128, 0x37f, true); // fcw
  dv.setUint32(408, 0x1f80, true); // mxcsr
  return buf;
}

const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_MODE_NMI = 0x4;
const APIC_MODE_EXTINT = 0x7;

function withDeliveryMode(reg: number, mode: number): number {
  return ((reg & ~0x700) | (mode << 8)) >>> 0;
}

/** LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, in a KVM_GET_LAPIC buffer, in place. */
export function wireLapicLints(lapic: Uint8Array): Uint8Array {
  const dv = new DataView(lapic.buffer, lapic.byteOffset, lapic.byteLength);
  dv.setUint32(APIC_LVT_LINT0, withDeliveryMode(dv.getUint32(APIC_LVT_LINT0, true), APIC_MODE_EXTINT), true);
  dv.setUint32(APIC_LVT_LINT1, withDeliveryMode(dv.getUint32(APIC_LVT_LINT1, true), APIC_MODE_NMI), true);
  return lapic;
}
