// The boot GDT and IDT (as Firecracker's gdt.rs/regs.rs): four 8-byte descriptors at 0x500 —
// null, 64-bit code (flags 0xa09b), data (0xc093), TSS (0x808b) — and one zero IDT entry at 0x520
// (limit 7: no usable gates; the kernel runs with interrupts off until it loads its own IDT).
// Selectors are index * 8: code 0x08, data 0x10, TSS 0x18. The kernel replaces all of it at once.

import type { GuestMemory } from '../vmm/guest-memory.js';
import type { DescriptorTable, Segment } from '../vmm/kvm-structs.js';
import { BOOT_GDT_ADDR, BOOT_IDT_ADDR } from './layout.js';

/** A segment descriptor from the kernel's GDT_ENTRY(flags, base, limit) (asm/segment.h). */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit >>> 0);
  const f = BigInt(flags & 0xffff);
  return (
    ((b & 0xff00_0000n) << 32n) |
    ((f & 0xf0ffn) << 40n) |
    ((l & 0x000f_0000n) << 32n) |
    ((b & 0x00ff_ffffn) << 16n) |
    (l & 0xffffn)
  );
}

export const GDT_CODE_FLAGS = 0xa09b; // G, L (64-bit), P, S, type 0xb: execute/read, accessed
export const GDT_DATA_FLAGS = 0xc093; // G, D/B, P, S, type 0x3: read/write, accessed
export const GDT_TSS_FLAGS = 0x808b; // G, P, type 0xb: busy 64-bit TSS

/** The boot GDT: null, code, data, TSS. */
export const BOOT_GDT: readonly bigint[] = [
  gdtEntry(0, 0, 0),
  gdtEntry(GDT_CODE_FLAGS, 0, 0xfffff),
  gdtEntry(GDT_DATA_FLAGS, 0, 0xfffff),
  gdtEntry(GDT_TSS_FLAGS, 0, 0xfffff),
];
export const CODE_SELECTOR = 1 * 8;
export const DATA_SELECTOR = 2 * 8;
export const TSS_SELECTOR = 3 * 8;

/**
 * The kvm_segment a descriptor loads as (selector = index * 8). The limit is scaled when G is set:
 * KVM takes the byte-granular 32-bit limit, not the 20-bit field.
 */
export function segmentFromGdt(entry: bigint, index: number): Segment {
  const bit = (n: number): number => Number((entry >> BigInt(n)) & 1n);
  const base = ((entry >> 32n) & 0xff00_0000n) | ((entry >> 16n) & 0x00ff_ffffn);
  const rawLimit = Number(((entry >> 32n) & 0x000f_0000n) | (entry & 0xffffn));
  const g = bit(55);
  const present = bit(47);
  return {
    base,
    limit: g ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit,
    selector: index * 8,
    type: Number((entry >> 40n) & 0xfn),
    present,
    dpl: Number((entry >> 45n) & 3n),
    db: bit(54),
    s: bit(44),
    l: bit(53),
    g,
    avl: bit(52),
    unusable: present ? 0 : 1,
  };
}

/** Writes the GDT at 0x500 and the empty IDT at 0x520; returns the tables for sregs. */
export function writeGdtAndIdt(memory: GuestMemory): { gdt: DescriptorTable; idt: DescriptorTable } {
  BOOT_GDT.forEach((e, i) => memory.writeU64(BOOT_GDT_ADDR + i * 8, e));
  memory.writeU64(BOOT_IDT_ADDR, 0n);
  return {
    gdt: { base: BigInt(BOOT_GDT_ADDR), limit: BOOT_GDT.length * 8 - 1 },
    idt: { base: BigInt(BOOT_IDT_ADDR), limit: 8 - 1 },
  };
}
