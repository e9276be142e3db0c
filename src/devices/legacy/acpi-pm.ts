// ACPI power management for a hardware-reduced platform: the three one-byte registers the FADT
// points at (src/boot/acpi/fadt.ts; ports in src/boot/layout.ts), so that a guest can power off
// and reset the machine the ACPI way.
//
//   +0 (0x600) SLEEP_CONTROL_REG (ACPI 6.5 §4.8.3.7.1), write-only: bits 2..4 SLP_TYP, bit 5 SLP_EN.
//      SLP_EN with the DSDT's \_S5_ type ends the VM as a power-off. SLP_EN with another type is
//      not supported (the DSDT offers no other sleep state): it is counted and the machine
//      "wakes" at once, setting WAK_STS, so a guest that waits for the wake (ACPICA's
//      acpi_hw_extended_sleep loops on it) goes on instead of spinning forever.
//   +1 (0x601) SLEEP_STATUS_REG (§4.8.3.7.2): bit 7 WAK_STS, write 1 to clear. ACPICA clears it
//      before it writes the sleep control register.
//   +2 (0x602) RESET_REG (§4.8.3.6): writing RESET_VALUE resets the machine (Linux reboot=a).
// Other bits, other values and accesses wider than a byte are ignored; reads of write-only
// registers return 0. State (WAK_STS, counters) is shared by every vCPU thread.
import type { BusDevice } from '../../vmm/bus.js';
import { ACPI_RESET_VALUE, ACPI_S5_SLP_TYP } from '../../boot/layout.js';

export { ACPI_PM_PORT, ACPI_PM_PORT_LENGTH } from '../../boot/layout.js';

export const OFS_SLEEP_CONTROL = 0;
export const OFS_SLEEP_STATUS = 1;
export const OFS_RESET = 2;
export const SLP_TYP_SHIFT = 2;
export const SLP_TYP_MASK = 0x1c;
export const SLP_EN = 0x20;
export const WAK_STS = 0x80;

const C_STATUS = 0;
const C_UNSUPPORTED_SLEEPS = 1;
const CELLS = 2;

export interface AcpiPmSink {
  /** The guest entered S5 (soft-off): end the VM as a power-off. */
  powerOff(): void;
  /** The guest wrote RESET_VALUE to the reset register: end the VM as a reset. */
  reset(): void;
}

export class AcpiPm implements BusDevice {
  private readonly cells: Int32Array;

  static createState(): SharedArrayBuffer {
    return new SharedArrayBuffer(CELLS * 4);
  }

  constructor(
    state: SharedArrayBuffer,
    private readonly sink: AcpiPmSink,
  ) {
    this.cells = new Int32Array(state);
  }

  /** Sleep requests for a type other than S5 (each answered with an immediate wake). */
  get unsupportedSleeps(): number {
    return Atomics.load(this.cells, C_UNSUPPORTED_SLEEPS);
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (data.byteLength === 1 && offset === OFS_SLEEP_STATUS) data[0] = Atomics.load(this.cells, C_STATUS) & WAK_STS;
  }

  write(offset: number, data: Uint8Array): void {
    if (data.byteLength !== 1) return;
    const value = data[0] as number;
    switch (offset) {
      case OFS_SLEEP_CONTROL:
        if ((value & SLP_EN) === 0) return;
        if ((value & SLP_TYP_MASK) >> SLP_TYP_SHIFT === ACPI_S5_SLP_TYP) {
          this.sink.powerOff();
        } else {
          Atomics.add(this.cells, C_UNSUPPORTED_SLEEPS, 1);
          Atomics.or(this.cells, C_STATUS, WAK_STS);
        }
        return;
      case OFS_SLEEP_STATUS:
        if (value & WAK_STS) Atomics.and(this.cells, C_STATUS, ~WAK_STS);
        return;
      case OFS_RESET:
        if (value === ACPI_RESET_VALUE) this.sink.reset();
        return;
      default:
        return;
    }
  }
}
