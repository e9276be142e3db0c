// 8250/16550A UART (the console on 0x3f8, IRQ 4), shared by every vCPU thread: its registers live
// in a SharedArrayBuffer behind a lock, so whichever vCPU touches the port handles the exit
// itself — no thread hop on the hottest exit of a Linux boot. Behaviour follows the 16550A data
// sheet as Linux's 8250 driver and vm-superio use it: a transmit that is always ready, a 64-byte
// receive FIFO, IIR priorities (receive data over THR empty), loopback, divisor latch.
import type { BusDevice } from '../../vmm/bus.js';
import type { Interrupt } from '../interrupt.js';
import { lock, unlock } from '../../vmm/spinlock.js';

export const SERIAL_PORT_COM1 = 0x3f8;
export const SERIAL_IRQ_COM1 = 4;
export const SERIAL_PORT_LENGTH = 8;
export const SERIAL_FIFO_SIZE = 64;

// Register offsets (DLAB = LCR bit 7 switches 0/1 to the divisor latch).
const DATA = 0;
const IER = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const LCR_DLAB = 0x80;
const IER_RDI = 0x01; // receive data available interrupt
const IER_THRI = 0x02; // transmit holding register empty interrupt
const IIR_NONE = 0x01;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_FIFO_BITS = 0xc0;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MCR_LOOP = 0x10;
const MSR_DEFAULT = 0xb0; // DCD | DSR | CTS: a line that is always ready

// Int32 cells of the shared state.
const C_LOCK = 0;
const C_IER = 1;
const C_LCR = 2;
const C_MCR = 3;
const C_SCR = 4;
const C_DLL = 5;
const C_DLM = 6;
const C_THR_PENDING = 7;
const C_FIFO_HEAD = 8;
const C_FIFO_COUNT = 9;
const C_TX_BYTES = 10;
/** Interrupts raised (irqfd writes) and bytes the host queued into the receive FIFO, for reports. */
const C_IRQS_RAISED = 11;
const C_RX_BYTES = 12;
const CELLS = 13;

export interface SerialOutput {
  write(bytes: Uint8Array): void;
}

export class Serial8250 implements BusDevice {
  private readonly cells: Int32Array;
  private readonly fifo: Uint8Array;
  private readonly one = new Uint8Array(1);

  /** The shared state; pass the same buffer to every thread's Serial8250. */
  static createState(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(CELLS * 4 + SERIAL_FIFO_SIZE);
    const cells = new Int32Array(sab, 0, CELLS);
    cells[C_LCR] = 0x03; // 8n1
    cells[C_MCR] = 0x08; // OUT2
    cells[C_DLL] = 0x0c; // 9600 baud
    return sab;
  }

  constructor(
    state: SharedArrayBuffer,
    private readonly output: SerialOutput,
    private readonly irq: Interrupt,
  ) {
    this.cells = new Int32Array(state, 0, CELLS);
    this.fifo = new Uint8Array(state, CELLS * 4, SERIAL_FIFO_SIZE);
  }

  /** The shared registers in one line, for a stuck-guest report (read without the lock). */
  static describeState(state: SharedArrayBuffer): string {
    const c = new Int32Array(state, 0, CELLS);
    const hex = (i: number): string => `0x${(Atomics.load(c, i) >>> 0).toString(16)}`;
    const n = (i: number): number => Atomics.load(c, i);
    return `IER ${hex(C_IER)} LCR ${hex(C_LCR)} MCR ${hex(C_MCR)}, THR-empty interrupt pending ${n(C_THR_PENDING)}, receive FIFO ${n(C_FIFO_COUNT)} bytes, ${n(C_RX_BYTES)} bytes received from the host, ${n(C_TX_BYTES)} bytes transmitted, ${n(C_IRQS_RAISED)} interrupts raised, lock ${n(C_LOCK)}`;
  }

  /** Bytes the guest has transmitted so far (all threads). */
  get transmitted(): number {
    return Atomics.load(this.cells, C_TX_BYTES);
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (data.byteLength !== 1) return; // the 8250 has byte registers only
    const c = this.cells;
    lock(c, C_LOCK);
    try {
      data[0] = this.readRegister(offset);
    } finally {
      unlock(c, C_LOCK);
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (data.byteLength !== 1) return;
    const c = this.cells;
    let raise = false;
    let out = -1;
    lock(c, C_LOCK);
    try {
      [raise, out] = this.writeRegister(offset, data[0] as number);
    } finally {
      unlock(c, C_LOCK);
    }
    // Output and interrupt after unlocking: neither needs the state, and both are syscalls.
    if (out >= 0) {
      this.one[0] = out;
      this.output.write(this.one);
    }
    if (raise) this.raise();
  }

  private raise(): void {
    Atomics.add(this.cells, C_IRQS_RAISED, 1);
    this.irq.trigger();
  }

  /** Queues input from the host (stdin); returns how many bytes fit in the FIFO. */
  enqueueInput(bytes: Uint8Array): number {
    const c = this.cells;
    let accepted = 0;
    let raise = false;
    lock(c, C_LOCK);
    try {
      accepted = this.pushFifo(bytes);
      c[C_RX_BYTES] = ((c[C_RX_BYTES] as number) + accepted) | 0;
      raise = accepted > 0 && ((c[C_IER] as number) & IER_RDI) !== 0;
    } finally {
      unlock(c, C_LOCK);
    }
    if (raise) this.raise();
    return accepted;
  }

  private pushFifo(bytes: Uint8Array): number {
    const c = this.cells;
    let n = 0;
    while (n < bytes.byteLength && (c[C_FIFO_COUNT] as number) < SERIAL_FIFO_SIZE) {
      const tail = ((c[C_FIFO_HEAD] as number) + (c[C_FIFO_COUNT] as number)) % SERIAL_FIFO_SIZE;
      this.fifo[tail] = bytes[n] as number;
      c[C_FIFO_COUNT] = (c[C_FIFO_COUNT] as number) + 1;
      n++;
    }
    return n;
  }

  private readRegister(offset: number): number {
    const c = this.cells;
    const dlab = ((c[C_LCR] as number) & LCR_DLAB) !== 0;
    switch (offset) {
      case DATA: {
        if (dlab) return c[C_DLL] as number;
        if ((c[C_FIFO_COUNT] as number) === 0) return 0;
        const head = c[C_FIFO_HEAD] as number;
        const byte = this.fifo[head] as number;
        c[C_FIFO_HEAD] = (head + 1) % SERIAL_FIFO_SIZE;
        c[C_FIFO_COUNT] = (c[C_FIFO_COUNT] as number) - 1;
        return byte;
      }
      case IER:
        return dlab ? (c[C_DLM] as number) : (c[C_IER] as number);
      case IIR_FCR: {
        const ier = c[C_IER] as number;
        if ((ier & IER_RDI) && (c[C_FIFO_COUNT] as number) > 0) return IIR_RDI | IIR_FIFO_BITS;
        if ((ier & IER_THRI) && c[C_THR_PENDING]) {
          c[C_THR_PENDING] = 0; // reading IIR acknowledges the THR-empty interrupt
          return IIR_THRI | IIR_FIFO_BITS;
        }
        return IIR_NONE | IIR_FIFO_BITS;
      }
      case LCR:
        return c[C_LCR] as number;
      case MCR:
        return c[C_MCR] as number;
      case LSR:
        return LSR_THRE | LSR_TEMT | ((c[C_FIFO_COUNT] as number) > 0 ? LSR_DR : 0);
      case MSR: {
        const mcr = c[C_MCR] as number;
        if (mcr & MCR_LOOP) {
          // Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
          return ((mcr & 0x02) << 3) | ((mcr & 0x01) << 5) | ((mcr & 0x04) << 4) | ((mcr & 0x08) << 4);
        }
        return MSR_DEFAULT;
      }
      case SCR:
        return c[C_SCR] as number;
      default:
        return 0xff;
    }
  }

  /** Returns [raise interrupt, byte to output or -1]. */
  private writeRegister(offset: number, value: number): [boolean, number] {
    const c = this.cells;
    const dlab = ((c[C_LCR] as number) & LCR_DLAB) !== 0;
    switch (offset) {
      case DATA: {
        if (dlab) {
          c[C_DLL] = value;
          return [false, -1];
        }
        const ier = c[C_IER] as number;
        if ((c[C_MCR] as number) & MCR_LOOP) {
          this.one[0] = value;
          this.pushFifo(this.one);
          c[C_THR_PENDING] = 1;
          return [(ier & (IER_RDI | IER_THRI)) !== 0, -1];
        }
        c[C_TX_BYTES] = ((c[C_TX_BYTES] as number) + 1) | 0;
        c[C_THR_PENDING] = 1; // transmission is instantaneous: THR is empty again at once
        return [(ier & IER_THRI) !== 0, value];
      }
      case IER: {
        if (dlab) {
          c[C_DLM] = value;
          return [false, -1];
        }
        const before = c[C_IER] as number;
        c[C_IER] = value & 0x0f;
        // Enabling THRI while THR is empty raises it at once (Linux's 8250 driver counts on it).
        if (!(before & IER_THRI) && (value & IER_THRI)) {
          c[C_THR_PENDING] = 1;
          return [true, -1];
        }
        return [(value & IER_RDI) !== 0 && (c[C_FIFO_COUNT] as number) > 0, -1];
      }
      case IIR_FCR:
        if (value & 0x02) {
          c[C_FIFO_HEAD] = 0; // FCR: clear the receive FIFO
          c[C_FIFO_COUNT] = 0;
        }
        return [false, -1];
      case LCR:
        c[C_LCR] = value;
        return [false, -1];
      case MCR:
        c[C_MCR] = value & 0x1f;
        return [false, -1];
      case SCR:
        c[C_SCR] = value;
        return [false, -1];
      default:
        return [false, -1]; // LSR and MSR are read-only
    }
  }
}
