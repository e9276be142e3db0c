// Hardware-reduced ACPI tables for a tsvmm guest (pure: bytes and addresses, no I/O):
//
//   0xe0000  RSDP (rev 2)  -> XSDT
//   then, each on a 16-byte boundary:
//            DSDT   \_S5_, the UART(s) and virtio-mmio transports (dsdt.ts)
//            FADT   HW_REDUCED_ACPI, X_DSDT, sleep control/status and reset registers (fadt.ts)
//            MADT   local APICs, the IOAPIC, LINT1 NMI (madt.ts)
//            XSDT   -> FADT, MADT
//
// all inside the BIOS area [0xe0000, 0x100000), which the e820 map reserves. What a guest does
// with them: Linux finds the RSDP through boot_params.acpi_rsdp_addr (or by scanning the area),
// powers off by writing S5|SLP_EN to the sleep control register (devices/legacy/acpi-pm.ts),
// and resets through the reset register when booted with reboot=a.
import { BootError, hex } from '../errors.js';
import {
  ACPI_AREA_END,
  ACPI_AREA_START,
  ACPI_RESET_PORT,
  ACPI_RESET_VALUE,
  ACPI_RSDP_ADDR,
  ACPI_S5_SLP_TYP,
  ACPI_SLEEP_CONTROL_PORT,
  ACPI_SLEEP_STATUS_PORT,
  alignUp,
} from '../layout.js';
import { checkVcpuCount } from '../mptable.js';
import { buildDsdt, type AcpiDevices } from './dsdt.js';
import { buildFadt } from './fadt.js';
import { buildMadt } from './madt.js';
import { buildRsdp, buildXsdt, RSDP_SIZE } from './rsdp.js';

export { type AcpiDevices, type AcpiSerialPort, type AcpiVirtioMmio } from './dsdt.js';

/** Tables start on 16-byte boundaries (the RSDP must; the others are kept tidy). */
export const ACPI_TABLE_ALIGN = 16;

export interface AcpiTable {
  signature: string;
  addr: number;
  bytes: Uint8Array;
}

export interface AcpiTables {
  rsdpAddr: number;
  /** RSDP first, then the tables in address order. */
  tables: AcpiTable[];
  /** One past the last byte used. */
  end: number;
}

export interface AcpiOptions {
  cpus: number;
  /** The IOAPIC id (the MP table's). */
  ioapicId: number;
  devices?: AcpiDevices;
}

/**
 * Builds and places the tables. Throws bad-vcpu-count (as the MP table does: 1..254 xAPIC ids)
 * and acpi-does-not-fit (the tables overflow the BIOS area, or a device cannot be described).
 */
export function buildAcpiTables(o: AcpiOptions): AcpiTables {
  checkVcpuCount(o.cpus);
  if (!Number.isInteger(o.ioapicId) || o.ioapicId < 0 || o.ioapicId > 0xfe || o.ioapicId < o.cpus) {
    throw new BootError('bad-vcpu-count', `IOAPIC id ${o.ioapicId} is not usable with ${o.cpus} vCPUs: it must be an 8-bit id above the local APIC ids 0..${o.cpus - 1}`);
  }
  let dsdt: Uint8Array;
  try {
    dsdt = buildDsdt(ACPI_S5_SLP_TYP, o.devices ?? {});
  } catch (e) {
    throw new BootError('acpi-does-not-fit', `the ACPI DSDT cannot describe the devices: ${(e as Error).message}`);
  }
  const madt = buildMadt(o.cpus, o.ioapicId);
  const dsdtAddr = alignUp(ACPI_RSDP_ADDR + RSDP_SIZE, ACPI_TABLE_ALIGN);
  const fadtAddr = alignUp(dsdtAddr + dsdt.byteLength, ACPI_TABLE_ALIGN);
  const fadt = buildFadt({
    dsdtAddr,
    sleepControlPort: ACPI_SLEEP_CONTROL_PORT,
    sleepStatusPort: ACPI_SLEEP_STATUS_PORT,
    resetPort: ACPI_RESET_PORT,
    resetValue: ACPI_RESET_VALUE,
  });
  const madtAddr = alignUp(fadtAddr + fadt.byteLength, ACPI_TABLE_ALIGN);
  const xsdtAddr = alignUp(madtAddr + madt.byteLength, ACPI_TABLE_ALIGN);
  const xsdt = buildXsdt([fadtAddr, madtAddr]);
  const end = xsdtAddr + xsdt.byteLength;
  if (end > ACPI_AREA_END) {
    throw new BootError(
      'acpi-does-not-fit',
      `the ACPI tables for ${o.cpus} vCPUs take ${end - ACPI_AREA_START} bytes, more than the ${ACPI_AREA_END - ACPI_AREA_START} of the BIOS area ${hex(ACPI_AREA_START)}..${hex(ACPI_AREA_END)}; use fewer vCPUs or devices`,
    );
  }
  return {
    rsdpAddr: ACPI_RSDP_ADDR,
    end,
    tables: [
      { signature: 'RSD PTR ', addr: ACPI_RSDP_ADDR, bytes: buildRsdp(xsdtAddr) },
      { signature: 'DSDT', addr: dsdtAddr, bytes: dsdt },
      { signature: 'FACP', addr: fadtAddr, bytes: fadt },
      { signature: 'APIC', addr: madtAddr, bytes: madt },
      { signature: 'XSDT', addr: xsdtAddr, bytes: xsdt },
    ],
  };
}
