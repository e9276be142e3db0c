// The boot vCPU's registers for the 64-bit boot protocol (as Firecracker's regs.rs/msr.rs/
// interrupts.rs), as pure functions over the src/vmm struct types. src/vmm applies them with
// KVM_SET_REGS / KVM_SET_SREGS / KVM_SET_FPU / KVM_SET_MSRS / KVM_SET_LAPIC.
//
// Only the boot vCPU (index 0) starts at the kernel entry. Application processors keep KVM's reset
// state (real mode, wait-for-SIPI with the in-kernel LAPIC) and are started by the kernel with
// INIT/SIPI, as on hardware; they get the same CPUID (with their own APIC id), MSRs, FPU and LINTs.

import type { MsrEntry, Regs, Segment, Sregs } from '../vmm/kvm-structs.js';
import { REG_NAMES } from '../vmm/kvm-structs.js';
import { BOOT_GDT, segmentFromGdt } from './gdt.js';
import { BOOT_GDT_ADDR, BOOT_IDT_ADDR, BOOT_STACK_POINTER, PML4_ADDR, ZERO_PAGE_ADDR } from './layout.js';

export const X86_CR0_PE = 0x1n;
export const X86_CR0_ET = 0x10n;
export const X86_CR0_PG = 0x8000_0000n;
export const X86_CR4_PAE = 0x20n;
export const EFER_LME = 0x100n;
export const EFER_LMA = 0x400n;
/** RFLAGS with only the always-one bit 1 set: interrupts disabled. */
export const BOOT_RFLAGS = 0x2n;

/**
 * General registers of the boot vCPU: RIP = the 64-bit entry, RSI = the zero page (the boot
 * protocol's only argument), RSP = RBP = BOOT_STACK_POINTER, RFLAGS = 2; everything else 0.
 */
export function bootRegs(entry: number | bigint, zeroPage: number = ZERO_PAGE_ADDR): Regs {
  const regs = {} as Regs;
  for (const name of REG_NAMES) regs[name] = 0n;
  regs.rip = BigInt(entry);
  regs.rsi = BigInt(zeroPage);
  regs.rsp = BigInt(BOOT_STACK_POINTER);
  regs.rbp = BigInt(BOOT_STACK_POINTER);
  regs.rflags = BOOT_RFLAGS;
  return regs;
}

/**
 * Long-mode special registers, starting from what KVM_GET_SREGS returned for the vCPU (so that
 * fields we do not own, such as apic_base, keep KVM's values). Returns a new object:
 * CS = the 64-bit code segment (selector 0x08), DS/ES/FS/GS/SS = data (0x10), TR = TSS (0x18),
 * GDTR = 0x500/31, IDTR = 0x520/7, CR0 |= PE|ET|PG, CR3 = PML4 (0x9000), CR4 |= PAE,
 * EFER |= LME|LMA. The GDT and page tables themselves are written by writeGdtAndIdt and
 * writeIdentityPageTables.
 */
export function longModeSregs(base: Sregs, cr3: bigint = BigInt(PML4_ADDR)): Sregs {
  const code = segmentFromGdt(BOOT_GDT[1] as bigint, 1);
  const data = segmentFromGdt(BOOT_GDT[2] as bigint, 2);
  const tss = segmentFromGdt(BOOT_GDT[3] as bigint, 3);
  const copy = (s: Segment): Segment => ({ ...s });
  return {
    ...base,
    cs: code,
    ds: copy(data),
    es: copy(data),
    fs: copy(data),
    gs: copy(data),
    ss: copy(data),
    tr: tss,
    ldt: { ...base.ldt },
    gdt: { base: BigInt(BOOT_GDT_ADDR), limit: BOOT_GDT.length * 8 - 1 },
    idt: { base: BigInt(BOOT_IDT_ADDR), limit: 8 - 1 },
    cr0: base.cr0 | X86_CR0_PE | X86_CR0_ET | X86_CR0_PG,
    cr3,
    cr4: base.cr4 | X86_CR4_PAE,
    efer: base.efer | EFER_LME | EFER_LMA,
    interruptBitmap: [...base.interruptBitmap] as Sregs['interruptBitmap'],
  };
}

/** FPU state for every vCPU (KVM_SET_FPU): x87 control word and MXCSR at their reset values. */
export const BOOT_FPU = { fcw: 0x37f, mxcsr: 0x1f80 } as const;

export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_IA32_MISC_ENABLE_FAST_STRING = 0x1n;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_STAR = 0xc000_0081;
export const MSR_LSTAR = 0xc000_0082;
export const MSR_CSTAR = 0xc000_0083;
export const MSR_SYSCALL_MASK = 0xc000_0084;
export const MSR_KERNEL_GS_BASE = 0xc000_0102;
/** MTRRdefType: MTRRs enabled (bit 11), default type write-back (6). */
export const MTRR_ENABLE_WB_DEFAULT = (1n << 11n) | 6n;

/** The MSRs Firecracker sets on every vCPU before boot, in its order. */
export const BOOT_MSRS: readonly MsrEntry[] = [
  { index: MSR_IA32_SYSENTER_CS, data: 0n },
  { index: MSR_IA32_SYSENTER_ESP, data: 0n },
  { index: MSR_IA32_SYSENTER_EIP, data: 0n },
  { index: MSR_STAR, data: 0n },
  { index: MSR_CSTAR, data: 0n },
  { index: MSR_KERNEL_GS_BASE, data: 0n },
  { index: MSR_SYSCALL_MASK, data: 0n },
  { index: MSR_LSTAR, data: 0n },
  { index: MSR_IA32_TSC, data: 0n },
  { index: MSR_IA32_MISC_ENABLE, data: MSR_IA32_MISC_ENABLE_FAST_STRING },
  { index: MSR_MTRR_DEF_TYPE, data: MTRR_ENABLE_WB_DEFAULT },
];

/**
 * The boot MSRs that KVM offers (KVM_GET_MSR_INDEX_LIST), so that KVM_SET_MSRS is never asked for
 * one it does not know (a kvm-pvm /dev/kvm lacks some). `skipped` names the ones left out, for a
 * debug line. Pass `offered` undefined to get them all.
 */
export function bootMsrs(offered?: Iterable<number>): { entries: MsrEntry[]; skipped: number[] } {
  if (offered === undefined) return { entries: BOOT_MSRS.map((m) => ({ ...m })), skipped: [] };
  const set = new Set(offered);
  const entries: MsrEntry[] = [];
  const skipped: number[] = [];
  for (const m of BOOT_MSRS) {
    if (set.has(m.index)) entries.push({ ...m });
    else skipped.push(m.index);
  }
  return { entries, skipped };
}

/** Offsets into struct kvm_lapic_state.regs (1 KiB, the xAPIC register page). */
export const APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360;
export const APIC_MODE_NMI = 0x4;
export const APIC_MODE_EXTINT = 0x7;
export const KVM_LAPIC_STATE_SIZE = 1024;

function setDeliveryMode(reg: number, mode: number): number {
  return ((reg & ~0x700) | (mode << 8)) >>> 0;
}

/**
 * LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, on the KVM_GET_LAPIC buffer, in place
 * (every vCPU, before KVM_SET_LAPIC). Returns the buffer.
 */
export function setLapicLints(lapic: Uint8Array): Uint8Array {
  if (lapic.byteLength < KVM_LAPIC_STATE_SIZE) {
    throw new RangeError(`kvm_lapic_state buffer is ${lapic.byteLength} bytes, not ${KVM_LAPIC_STATE_SIZE}`);
  }
  const dv = new DataView(lapic.buffer, lapic.byteOffset, lapic.byteLength);
  dv.setUint32(APIC_LVT_LINT0, setDeliveryMode(dv.getUint32(APIC_LVT_LINT0, true), APIC_MODE_EXTINT), true);
  dv.setUint32(APIC_LVT_LINT1, setDeliveryMode(dv.getUint32(APIC_LVT_LINT1, true), APIC_MODE_NMI), true);
  return lapic;
}
