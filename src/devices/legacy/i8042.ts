// The i8042 keyboard controller, just enough for a guest to reset the machine: Linux with
// `reboot=k` writes 0xFE (pulse the CPU reset line) to port 0x64, and tsvmm ends the VM — the
// guest's way to power off without ACPI, as in Firecracker. The control and output-port bytes
// are kept (a guest that probes the controller reads back what it wrote), shared by all vCPUs.
import type { BusDevice } from '../../vmm/bus.js';
import { lock, unlock } from '../../vmm/spinlock.js';

export const I8042_PORT = 0x60;
/** Ports 0x60 (data) to 0x64 (status/command); 0x61 belongs to the in-kernel PIT speaker dummy. */
export const I8042_PORT_LENGTH = 5;

const OFS_DATA = 0;
const OFS_STATUS = 4;
const CMD_READ_CTR = 0x20;
const CMD_WRITE_CTR = 0x60;
const CMD_READ_OUTP = 0xd0;
const CMD_WRITE_OUTP = 0xd1;
const CMD_RESET_CPU = 0xfe;
const SB_OUT_DATA_AVAIL = 0x01;
const SB_I8042_CMD_DATA = 0x08;
const SB_KBD_ENABLED = 0x10;

const C_LOCK = 0;
const C_STATUS = 1;
const C_CTR = 2;
const C_OUTP = 3;
const C_DATA = 4;
const C_CMD = 5;
const CELLS = 6;

export interface ResetSink {
  /** The guest asked for a CPU reset: end the VM. */
  reset(): void;
}

export class I8042 implements BusDevice {
  private readonly cells: Int32Array;

  static createState(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(CELLS * 4);
    const c = new Int32Array(sab);
    c[C_STATUS] = SB_KBD_ENABLED;
    c[C_CTR] = 0x47; // keyboard interrupt + translation enabled, as after firmware
    c[C_OUTP] = 0x01; // bit 0: CPU reset line inactive; bit 1 (A20 gate) off
    return sab;
  }

  constructor(
    state: SharedArrayBuffer,
    private readonly sink: ResetSink,
  ) {
    this.cells = new Int32Array(state);
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (data.byteLength !== 1) return;
    const c = this.cells;
    lock(c, C_LOCK);
    try {
      if (offset === OFS_STATUS) {
        data[0] = c[C_STATUS] as number;
      } else if (offset === OFS_DATA) {
        data[0] = c[C_DATA] as number;
        c[C_STATUS] = (c[C_STATUS] as number) & ~SB_OUT_DATA_AVAIL;
      }
    } finally {
      unlock(c, C_LOCK);
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (data.byteLength !== 1) return;
    const value = data[0] as number;
    const c = this.cells;
    let reset = false;
    lock(c, C_LOCK);
    try {
      if (offset === OFS_STATUS) {
        switch (value) {
          case CMD_RESET_CPU:
            reset = true;
            break;
          case CMD_READ_CTR:
            this.output(c[C_CTR] as number);
            break;
          case CMD_READ_OUTP:
            this.output(c[C_OUTP] as number);
            break;
          case CMD_WRITE_CTR:
          case CMD_WRITE_OUTP:
            c[C_CMD] = value; // the next byte on the data port is the operand
            c[C_STATUS] = (c[C_STATUS] as number) | SB_I8042_CMD_DATA;
            break;
          default:
            break; // other controller commands: accepted, no effect
        }
      } else if (offset === OFS_DATA) {
        const cmd = c[C_CMD] as number;
        if (cmd === CMD_WRITE_CTR) c[C_CTR] = value;
        else if (cmd === CMD_WRITE_OUTP) c[C_OUTP] = value;
        c[C_CMD] = 0;
        c[C_STATUS] = (c[C_STATUS] as number) & ~SB_I8042_CMD_DATA;
      }
    } finally {
      unlock(c, C_LOCK);
    }
    if (reset) this.sink.reset();
  }

  private output(byte: number): void {
    this.cells[C_DATA] = byte;
    this.cells[C_STATUS] = (this.cells[C_STATUS] as number) | SB_OUT_DATA_AVAIL;
  }
}
