// The FADT ("FACP", ACPI 6.5 §5.2.9), revision 6.5, for a hardware-reduced platform: no PM1/GPE
// register blocks, no SCI, no FACS; what it does carry is X_DSDT, the sleep control and status
// registers (power-off), the reset register (reboot=a), and the IA-PC boot flags saying which
// legacy hardware is really there.
import { ioByteRegister, newTable, putAscii, putGas, sealTable } from './sdt.js';

export const FADT_REVISION = 6;
export const FADT_MINOR_REVISION = 5;
/** Length of a revision 6 FADT (through Hypervisor Vendor Identity). */
export const FADT_SIZE = 276;

/** Field offsets (§5.2.9, Table 5.9). */
export const FADT = {
  firmwareCtrl: 36, // u32 FACS (none)
  dsdt: 40, // u32 (0: X_DSDT is used)
  preferredPmProfile: 45, // u8
  sciInt: 46, // u16 (ignored when hardware-reduced)
  iapcBootArch: 109, // u16
  flags: 112, // u32
  resetReg: 116, // GAS
  resetValue: 128, // u8
  armBootArch: 129, // u16
  minorVersion: 131, // u8: bits 0..3 minor, 4..7 errata
  xFirmwareCtrl: 132, // u64
  xDsdt: 140, // u64
  sleepControlReg: 244, // GAS
  sleepStatusReg: 256, // GAS
  hypervisorVendorId: 268, // u64
} as const;

/** Fixed feature flags (§5.2.9, Table 5.10). */
export const FADT_FLAG = {
  /** No fixed-feature power button: a hardware-reduced platform has none. */
  PWR_BUTTON: 1 << 4,
  /** No fixed-feature sleep button. */
  SLP_BUTTON: 1 << 5,
  /** RESET_REG/RESET_VALUE are valid. */
  RESET_REG_SUP: 1 << 10,
  /** Hardware-reduced ACPI: no fixed hardware; sleep through SLEEP_CONTROL_REG. */
  HW_REDUCED_ACPI: 1 << 20,
} as const;

/** IA-PC Boot Architecture Flags (§5.2.9.3, Table 5.11). */
export const IAPC_BOOT_ARCH = {
  /** Legacy (ISA/LPC) devices the OS may not enumerate itself: the 8250 UART at 0x3f8. */
  LEGACY_DEVICES: 1 << 0,
  /** An 8042 keyboard controller at 0x60/0x64 (tsvmm's i8042, which is how reboot=k resets). */
  I8042: 1 << 1,
  VGA_NOT_PRESENT: 1 << 2,
  MSI_NOT_SUPPORTED: 1 << 3,
  PCIE_ASPM_CONTROLS: 1 << 4,
  CMOS_RTC_NOT_PRESENT: 1 << 5,
} as const;

/** The hypervisor vendor identity field (8 bytes, §5.2.9). */
export const HYPERVISOR_VENDOR_ID = 'TSVMMKVM';

export interface FadtOptions {
  dsdtAddr: number;
  sleepControlPort: number;
  sleepStatusPort: number;
  resetPort: number;
  resetValue: number;
}

/**
 * The boot flags are tsvmm's hardware: the UART and the i8042 are there (LEGACY_DEVICES, 8042);
 * no VGA, no MSI (no PCI devices at all), no CMOS RTC (nothing answers ports 0x70/0x71; the
 * clock is kvm-clock).
 */
export const TSVMM_IAPC_BOOT_ARCH =
  IAPC_BOOT_ARCH.LEGACY_DEVICES | IAPC_BOOT_ARCH.I8042 | IAPC_BOOT_ARCH.VGA_NOT_PRESENT | IAPC_BOOT_ARCH.MSI_NOT_SUPPORTED | IAPC_BOOT_ARCH.CMOS_RTC_NOT_PRESENT;

export const TSVMM_FADT_FLAGS = FADT_FLAG.HW_REDUCED_ACPI | FADT_FLAG.PWR_BUTTON | FADT_FLAG.SLP_BUTTON | FADT_FLAG.RESET_REG_SUP;

export function buildFadt(o: FadtOptions): Uint8Array {
  const { bytes, dv } = newTable('FACP', FADT_REVISION, FADT_SIZE);
  dv.setUint32(FADT.dsdt, 0, true);
  dv.setBigUint64(FADT.xDsdt, BigInt(o.dsdtAddr), true);
  dv.setUint16(FADT.iapcBootArch, TSVMM_IAPC_BOOT_ARCH, true);
  dv.setUint32(FADT.flags, TSVMM_FADT_FLAGS, true);
  putGas(dv, FADT.resetReg, ioByteRegister(o.resetPort));
  dv.setUint8(FADT.resetValue, o.resetValue);
  dv.setUint8(FADT.minorVersion, FADT_MINOR_REVISION);
  putGas(dv, FADT.sleepControlReg, ioByteRegister(o.sleepControlPort));
  putGas(dv, FADT.sleepStatusReg, ioByteRegister(o.sleepStatusPort));
  putAscii(bytes, FADT.hypervisorVendorId, HYPERVISOR_VENDOR_ID, 8);
  return sealTable(bytes);
}
