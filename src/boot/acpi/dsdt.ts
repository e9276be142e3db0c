// The DSDT (ACPI 6.5 §5.2.11.1): a header and an AML definition block. tsvmm's declares
//
//   Name (\_S5_, Package () { ACPI_S5_SLP_TYP, 0, 0, 0 })   soft-off, so Linux registers acpi_power_off
//   Scope (\_SB_) {
//     Device (COM0) { _HID PNP0501, _UID 0, _CRS { IO 0x3f8/8, Interrupt GSI 4 } }      each UART
//     Device (V000) { _HID "LNRO0005", _UID 0, _CRS { Memory32Fixed, Interrupt GSI } } each virtio-mmio slot
//   }
//
// Why the devices: a hardware-reduced platform has no 8259 PIC, so Linux (acpi_generic_reduced_hw_init)
// maps no ISA IRQ by itself and numbers IOAPIC interrupts dynamically; a device gets an interrupt
// only through a _CRS that names its GSI. The UART and the virtio-mmio transports are described
// here for that reason (as Firecracker, Cloud Hypervisor and QEMU microvm do); with acpi=off the
// kernel uses the MP table and the virtio_mmio.device= command line instead.
import { concat, device, eisaId, int, interrupt, ioPort, memory32Fixed, name, pkg, resourceTemplate, scope, string } from './aml.js';
import { newTable, SDT_HEADER_SIZE, sealTable } from './sdt.js';

/** Revision 2: integers in the definition block are 64-bit (§5.2.11.1). */
export const DSDT_REVISION = 2;

export interface AcpiSerialPort {
  /** First I/O port (e.g. 0x3f8) and how many (8). */
  port: number;
  length: number;
  gsi: number;
}

export interface AcpiVirtioMmio {
  base: number;
  size: number;
  gsi: number;
}

/** What the DSDT describes besides \_S5_. */
export interface AcpiDevices {
  serial?: readonly AcpiSerialPort[];
  virtioMmio?: readonly AcpiVirtioMmio[];
}

/** Device names: COM0.., V000.. (NameSegs are 4 characters). */
const MAX_SERIAL = 10;
const MAX_VIRTIO = 1000;

/** The AML definition block (the DSDT's body). */
export function dsdtAml(s5SlpTyp: number, devices: AcpiDevices = {}): Uint8Array {
  const serial = devices.serial ?? [];
  const virtio = devices.virtioMmio ?? [];
  if (serial.length > MAX_SERIAL) throw new RangeError(`${serial.length} serial ports: the DSDT names at most ${MAX_SERIAL}`);
  if (virtio.length > MAX_VIRTIO) throw new RangeError(`${virtio.length} virtio-mmio devices: the DSDT names at most ${MAX_VIRTIO}`);
  // \_S5_: SLP_TYPa, SLP_TYPb and two reserved values (§7.4.2); a hardware-reduced OSPM uses only
  // the first (it goes to SLEEP_CONTROL_REG.SLP_TYP).
  const s5 = name('\\_S5_', pkg([int(s5SlpTyp), int(0), int(0), int(0)]));
  const sb: Uint8Array[] = [];
  serial.forEach((u, i) =>
    sb.push(
      device(`COM${i}`, [
        name('_HID', eisaId('PNP0501')),
        name('_UID', int(i)),
        name('_CRS', resourceTemplate([ioPort(u.port, u.length), interrupt(u.gsi)])),
      ]),
    ),
  );
  virtio.forEach((v, i) =>
    sb.push(
      device(`V${String(i).padStart(3, '0')}`, [
        name('_HID', string('LNRO0005')),
        name('_UID', int(i)),
        name('_CRS', resourceTemplate([memory32Fixed(v.base, v.size), interrupt(v.gsi)])),
      ]),
    ),
  );
  return sb.length > 0 ? concat([s5, scope('\\_SB_', sb)]) : s5;
}

export function buildDsdt(s5SlpTyp: number, devices: AcpiDevices = {}): Uint8Array {
  const aml = dsdtAml(s5SlpTyp, devices);
  const { bytes } = newTable('DSDT', DSDT_REVISION, SDT_HEADER_SIZE + aml.byteLength);
  bytes.set(aml, SDT_HEADER_SIZE);
  return sealTable(bytes);
}
