// The buses every vCPU thread gets: the legacy devices over their shared state. Each thread has
// its own device objects; the state they act on is shared (see devices/legacy/spinlock.ts).
import { Bus } from '../vmm/bus.js';
import { AcpiPm, ACPI_PM_PORT, ACPI_PM_PORT_LENGTH, type AcpiPmSink } from '../devices/legacy/acpi-pm.js';
import { BootTimer, BOOT_TIMER_PORT, BOOT_TIMER_PORT_LENGTH, type BootTimerSink } from '../devices/legacy/boot-timer.js';
import { I8042, I8042_PORT, I8042_PORT_LENGTH, type ResetSink } from '../devices/legacy/i8042.js';
import { Serial8250, SERIAL_PORT_COM1, SERIAL_PORT_LENGTH, type SerialOutput } from '../devices/legacy/serial.js';
import type { Interrupt } from '../devices/interrupt.js';

export interface LegacySinks {
  console: SerialOutput;
  serialIrq: Interrupt;
  reset: ResetSink;
  bootTimer: BootTimerSink;
  acpiPm: AcpiPmSink;
}

export interface LegacyState {
  serial: SharedArrayBuffer;
  i8042: SharedArrayBuffer;
  acpiPm: SharedArrayBuffer;
}

export function legacyPioBus(state: LegacyState, sinks: LegacySinks): Bus {
  const pio = new Bus('pio');
  pio.insert('serial0', SERIAL_PORT_COM1, SERIAL_PORT_LENGTH, new Serial8250(state.serial, sinks.console, sinks.serialIrq));
  pio.insert('i8042', I8042_PORT, I8042_PORT_LENGTH, new I8042(state.i8042, sinks.reset));
  pio.insert('boot-timer', BOOT_TIMER_PORT, BOOT_TIMER_PORT_LENGTH, new BootTimer(sinks.bootTimer));
  pio.insert('acpi-pm', ACPI_PM_PORT, ACPI_PM_PORT_LENGTH, new AcpiPm(state.acpiPm, sinks.acpiPm));
  return pio;
}
