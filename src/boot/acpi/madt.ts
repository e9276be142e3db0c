// The MADT ("APIC", ACPI 6.5 §5.2.12): the interrupt controllers, saying what the MP table
// (mptable.ts) says for a guest booted with acpi=off:
//   header + local APIC address 0xfee00000 + flags PCAT_COMPAT (KVM's in-kernel irqchip does
//   include a dual 8259, which the OS must mask);
//   one Processor Local APIC entry per vCPU: ACPI processor UID = APIC id = vCPU index, enabled;
//   one I/O APIC entry: the MP table's IOAPIC id (= vCPU count), 0xfec00000, GSI base 0;
//   one Local APIC NMI entry: NMI on LINT1 of every processor (the MP table's NMI entry).
// No Interrupt Source Overrides: the MP table routes ISA IRQ n to IOAPIC pin n with the bus's
// default polarity and trigger, which is what ACPI assumes where no override is given (§5.2.12.5).
// Linux on a hardware-reduced platform takes device interrupts from the DSDT's _CRS anyway.
import { IOAPIC_ADDR, LAPIC_ADDR } from '../layout.js';
import { newTable, SDT_HEADER_SIZE, sealTable } from './sdt.js';

/** MADT revision 6 (ACPI 6.5). */
export const MADT_REVISION = 6;
export const MADT_FLAG_PCAT_COMPAT = 1;

/** Interrupt controller structure types and lengths (§5.2.12, Table 5.21). */
export const MADT_LOCAL_APIC = 0;
export const MADT_LOCAL_APIC_SIZE = 8;
export const MADT_IO_APIC = 1;
export const MADT_IO_APIC_SIZE = 12;
export const MADT_LOCAL_APIC_NMI = 4;
export const MADT_LOCAL_APIC_NMI_SIZE = 6;
export const LOCAL_APIC_ENABLED = 1;
/** "All processors" in a Local APIC NMI structure. */
export const ALL_PROCESSORS = 0xff;

export function madtSize(cpus: number): number {
  return SDT_HEADER_SIZE + 8 + cpus * MADT_LOCAL_APIC_SIZE + MADT_IO_APIC_SIZE + MADT_LOCAL_APIC_NMI_SIZE;
}

/** `cpus` is checked by the caller (1..254, as for the MP table); `ioapicId` is the MP table's. */
export function buildMadt(cpus: number, ioapicId: number): Uint8Array {
  const { bytes, dv } = newTable('APIC', MADT_REVISION, madtSize(cpus));
  dv.setUint32(SDT_HEADER_SIZE, LAPIC_ADDR, true);
  dv.setUint32(SDT_HEADER_SIZE + 4, MADT_FLAG_PCAT_COMPAT, true);
  let p = SDT_HEADER_SIZE + 8;
  for (let id = 0; id < cpus; id++) {
    dv.setUint8(p, MADT_LOCAL_APIC);
    dv.setUint8(p + 1, MADT_LOCAL_APIC_SIZE);
    dv.setUint8(p + 2, id); // ACPI processor UID
    dv.setUint8(p + 3, id); // APIC id (cpuid.ts gives vCPU i initial APIC id i)
    dv.setUint32(p + 4, LOCAL_APIC_ENABLED, true);
    p += MADT_LOCAL_APIC_SIZE;
  }
  dv.setUint8(p, MADT_IO_APIC);
  dv.setUint8(p + 1, MADT_IO_APIC_SIZE);
  dv.setUint8(p + 2, ioapicId);
  dv.setUint8(p + 3, 0);
  dv.setUint32(p + 4, IOAPIC_ADDR, true);
  dv.setUint32(p + 8, 0, true); // global system interrupt base
  p += MADT_IO_APIC_SIZE;
  dv.setUint8(p, MADT_LOCAL_APIC_NMI);
  dv.setUint8(p + 1, MADT_LOCAL_APIC_NMI_SIZE);
  dv.setUint8(p + 2, ALL_PROCESSORS);
  dv.setUint16(p + 3, 0, true); // flags: conforms to the bus
  dv.setUint8(p + 5, 1); // LINT1
  return sealTable(bytes);
}
