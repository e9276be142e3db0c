// Boot page tables: an identity map of [0, 1 GiB) with 2 MiB pages (as Firecracker's regs.rs).
// PML4[0] -> PDPT at 0xa000, PDPT[0] -> PD at 0xb000, PD[i] = i * 2 MiB | PS | RW | P.
// The 64-bit boot protocol needs the kernel's [load, load + init_size), the zero page and the
// command line identity-mapped; everything the layout puts there lies below 1 GiB (setupBoot checks
// the kernel's end). Linux builds its own page tables right after entry.

import type { GuestMemory } from '../vmm/guest-memory.js';
import { PAGE_SIZE, PD_ADDR, PDPT_ADDR, PML4_ADDR } from './layout.js';

export const PTE_PRESENT = 0x1n;
export const PTE_WRITABLE = 0x2n;
export const PTE_PAGE_SIZE = 0x80n; // PS: a 2 MiB page in a PD entry
export const PAGE_2M = 2 * 1024 * 1024;
export const PD_ENTRIES = 512;

/** Writes the three tables (zeroing the rest of each page) and returns CR3 (the PML4 address). */
export function writeIdentityPageTables(memory: GuestMemory): bigint {
  memory.fill(PML4_ADDR, PAGE_SIZE);
  memory.fill(PDPT_ADDR, PAGE_SIZE);
  memory.writeU64(PML4_ADDR, BigInt(PDPT_ADDR) | PTE_PRESENT | PTE_WRITABLE);
  memory.writeU64(PDPT_ADDR, BigInt(PD_ADDR) | PTE_PRESENT | PTE_WRITABLE);
  for (let i = 0; i < PD_ENTRIES; i++) {
    memory.writeU64(PD_ADDR + i * 8, BigInt(i * PAGE_2M) | PTE_PAGE_SIZE | PTE_PRESENT | PTE_WRITABLE);
  }
  return BigInt(PML4_ADDR);
}
