// The boot timer (after Firecracker's): the guest's /init writes one byte to this port when it
// starts, and tsvmm records the time from process start to that write — the figure every boot
// benchmark uses. Stateless: the sink decides what the first write means.
import type { BusDevice } from '../../vmm/bus.js';

export const BOOT_TIMER_PORT = 0x440;
export const BOOT_TIMER_PORT_LENGTH = 1;
/** The value /init writes (Firecracker's magic boot-complete value). */
export const BOOT_TIMER_MAGIC = 123;

export interface BootTimerSink {
  /** The guest reached its init (called for each magic write; the sink keeps the first). */
  bootComplete(): void;
}

export class BootTimer implements BusDevice {
  constructor(private readonly sink: BootTimerSink) {}

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(_offset: number, data: Uint8Array): void {
    if (data.byteLength === 1 && data[0] === BOOT_TIMER_MAGIC) this.sink.bootComplete();
  }
}
