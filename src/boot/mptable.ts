// Intel MultiProcessor Specification 1.4 tables at the EBDA (0x9fc00), as Firecracker's
// mptable.rs, so that an SMP guest without ACPI finds its vCPUs, the IOAPIC and the IRQ routing.
//
//   MP floating pointer (16 bytes, '_MP_')  physptr -> the configuration table right after it
//   configuration table header (44 bytes, 'PCMP'), then its entries:
//     N processor entries (20 bytes): APIC id 0..N-1, enabled, BSP flag on 0
//     1 bus entry (8): bus 0, 'ISA   '
//     1 IOAPIC entry (8): id N, version 0x14, usable, at 0xfec00000
//     24 I/O interrupt entries (8): ISA IRQ i -> IOAPIC pin i, i = 0..23 (KVM's default routing)
//     2 local interrupt entries (8): ExtINT -> LINT0 of APIC 0, NMI -> LINT1 of all APICs
// Both checksums make their structure's bytes sum to 0 mod 256. The table for more than ~37 vCPUs
// runs past 0xa0000 into the area e820 marks reserved, which Linux maps to read it (as Firecracker).

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError, hex } from './errors.js';
import { IOAPIC_ADDR, IOAPIC_NUM_PINS, LAPIC_ADDR, MPTABLE_ADDR } from './layout.js';

/** xAPIC ids are 8 bits, 0xff is broadcast, and the IOAPIC takes one: 254 vCPUs at most. */
export const MAX_MPTABLE_CPUS = 254;

export const MPF_INTEL_SIZE = 16;
export const MPC_TABLE_SIZE = 44;
export const MPC_CPU_SIZE = 20;
export const MPC_BUS_SIZE = 8;
export const MPC_IOAPIC_SIZE = 8;
export const MPC_INTSRC_SIZE = 8;
export const MPC_LINTSRC_SIZE = 8;

export const MP_PROCESSOR = 0;
export const MP_BUS = 1;
export const MP_IOAPIC = 2;
export const MP_INTSRC = 3;
export const MP_LINTSRC = 4;

export const CPU_ENABLED = 1;
export const CPU_BOOTPROCESSOR = 2;
export const MPC_APIC_USABLE = 1;
export const MP_IRQTYPE_INT = 0;
export const MP_IRQTYPE_NMI = 1;
export const MP_IRQTYPE_EXTINT = 3;
export const MP_IRQPOL_DEFAULT = 0;
export const APIC_VERSION = 0x14;
export const CPU_STEPPING = 0x600;
export const CPU_FEATURE_APIC = 0x200;
export const CPU_FEATURE_FPU = 0x001;

export interface MpTableInfo {
  /** Address of the floating pointer. */
  addr: number;
  /** Address and length of the configuration table. */
  tableAddr: number;
  tableLength: number;
  /** Total bytes written (floating pointer + table). */
  size: number;
  ioapicId: number;
  entryCount: number;
}

/** Bytes the MP table takes for `cpus` vCPUs. */
export function mptableSize(cpus: number): number {
  return (
    MPF_INTEL_SIZE +
    MPC_TABLE_SIZE +
    MPC_CPU_SIZE * cpus +
    MPC_BUS_SIZE +
    MPC_IOAPIC_SIZE +
    MPC_INTSRC_SIZE * IOAPIC_NUM_PINS +
    MPC_LINTSRC_SIZE * 2
  );
}

export function checkVcpuCount(cpus: number): void {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_MPTABLE_CPUS) {
    throw new BootError(
      'bad-vcpu-count',
      `${cpus} vCPUs cannot be described: give 1 to ${MAX_MPTABLE_CPUS} (xAPIC ids are 8 bits and the IOAPIC takes one)`,
    );
  }
}

function sum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}

function ascii(buf: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) buf[at + i] = s.charCodeAt(i);
}

/** Builds the MP floating pointer and configuration table for `cpus` vCPUs, to lie at `addr`. */
export function buildMptable(cpus: number, addr: number = MPTABLE_ADDR): { bytes: Uint8Array; info: MpTableInfo } {
  checkVcpuCount(cpus);
  const size = mptableSize(cpus);
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  const tableAt = MPF_INTEL_SIZE;
  const ioapicId = cpus;
  let p = tableAt + MPC_TABLE_SIZE;
  let entries = 0;

  for (let id = 0; id < cpus; id++) {
    dv.setUint8(p, MP_PROCESSOR);
    dv.setUint8(p + 1, id);
    dv.setUint8(p + 2, APIC_VERSION);
    dv.setUint8(p + 3, CPU_ENABLED | (id === 0 ? CPU_BOOTPROCESSOR : 0));
    dv.setUint32(p + 4, CPU_STEPPING, true);
    dv.setUint32(p + 8, CPU_FEATURE_APIC | CPU_FEATURE_FPU, true);
    p += MPC_CPU_SIZE;
    entries++;
  }
  dv.setUint8(p, MP_BUS);
  dv.setUint8(p + 1, 0);
  ascii(buf, p + 2, 'ISA   ');
  p += MPC_BUS_SIZE;
  entries++;

  dv.setUint8(p, MP_IOAPIC);
  dv.setUint8(p + 1, ioapicId);
  dv.setUint8(p + 2, APIC_VERSION);
  dv.setUint8(p + 3, MPC_APIC_USABLE);
  dv.setUint32(p + 4, IOAPIC_ADDR, true);
  p += MPC_IOAPIC_SIZE;
  entries++;

  for (let irq = 0; irq < IOAPIC_NUM_PINS; irq++) {
    dv.setUint8(p, MP_INTSRC);
    dv.setUint8(p + 1, MP_IRQTYPE_INT);
    dv.setUint16(p + 2, MP_IRQPOL_DEFAULT, true);
    dv.setUint8(p + 4, 0); // source bus
    dv.setUint8(p + 5, irq); // source bus IRQ
    dv.setUint8(p + 6, ioapicId);
    dv.setUint8(p + 7, irq); // IOAPIC pin
    p += MPC_INTSRC_SIZE;
    entries++;
  }
  const lint = (type: number, destApic: number, destLint: number): void => {
    dv.setUint8(p, MP_LINTSRC);
    dv.setUint8(p + 1, type);
    dv.setUint16(p + 2, MP_IRQPOL_DEFAULT, true);
    dv.setUint8(p + 4, 0);
    dv.setUint8(p + 5, 0);
    dv.setUint8(p + 6, destApic);
    dv.setUint8(p + 7, destLint);
    p += MPC_LINTSRC_SIZE;
    entries++;
  };
  lint(MP_IRQTYPE_EXTINT, 0, 0);
  lint(MP_IRQTYPE_NMI, 0xff, 1);

  // Configuration table header.
  const tableLength = p - tableAt;
  ascii(buf, tableAt, 'PCMP');
  dv.setUint16(tableAt + 4, tableLength, true);
  dv.setUint8(tableAt + 6, 4); // spec revision 1.4
  ascii(buf, tableAt + 8, 'TSVMM   '); // OEM id, 8 bytes
  ascii(buf, tableAt + 16, '000000000000'); // product id, 12 bytes
  dv.setUint16(tableAt + 34, entries, true); // entry count
  dv.setUint32(tableAt + 36, LAPIC_ADDR, true);
  dv.setUint8(tableAt + 7, (256 - sum(buf.subarray(tableAt, tableAt + tableLength))) & 0xff);

  // Floating pointer.
  ascii(buf, 0, '_MP_');
  dv.setUint32(4, addr + tableAt, true); // physptr
  dv.setUint8(8, 1); // length in 16-byte units
  dv.setUint8(9, 4); // spec revision 1.4
  dv.setUint8(10, (256 - sum(buf.subarray(0, MPF_INTEL_SIZE))) & 0xff);

  return { bytes: buf, info: { addr, tableAddr: addr + tableAt, tableLength, size, ioapicId, entryCount: entries } };
}

/** Writes the MP table at 0x9fc00. Throws bad-vcpu-count or bad-memory-layout before writing. */
export function writeMptable(memory: GuestMemory, cpus: number, addr: number = MPTABLE_ADDR): MpTableInfo {
  const { bytes, info } = buildMptable(cpus, addr);
  if (!memory.contains(addr, bytes.byteLength)) {
    throw new BootError('bad-memory-layout', `the MP table for ${cpus} vCPUs (${bytes.byteLength} bytes at ${hex(addr)}) is not inside guest RAM`);
  }
  memory.write(addr, bytes);
  return info;
}
