// Input for the guest's serial console (COM1): bytes given by whoever drives the VM (the CLI's
// stdin, an API's console socket later) go into the UART's 64-byte receive FIFO as the guest
// drains it; what does not fit yet waits here and is retried shortly.
import { Serial8250 } from '../devices/legacy/serial.js';

/** How soon the rest of the input is offered again when the FIFO was full. */
const RETRY_MS = 2;

export class ConsoleInput {
  private readonly serial: Serial8250;
  private pending = new Uint8Array(0);
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(serialState: SharedArrayBuffer, raiseInterrupt: () => void) {
    this.serial = new Serial8250(serialState, { write: () => {} }, { trigger: raiseInterrupt });
  }

  /** Queues `bytes` for the guest; they reach its FIFO in order, as it makes room. */
  push(bytes: Uint8Array): void {
    if (this.closed || bytes.byteLength === 0) return;
    const merged = new Uint8Array(this.pending.byteLength + bytes.byteLength);
    merged.set(this.pending);
    merged.set(bytes, this.pending.byteLength);
    this.pending = merged;
    if (!this.timer) this.feed();
  }

  private feed(): void {
    this.timer = undefined;
    if (this.closed) return;
    const n = this.serial.enqueueInput(this.pending);
    this.pending = this.pending.subarray(n);
    if (this.pending.byteLength > 0) this.timer = setTimeout(() => this.feed(), RETRY_MS);
  }

  /** For a stuck-guest report. */
  describe(): string {
    return `console input waiting for the FIFO: ${this.pending.byteLength} bytes${this.timer ? ', retry armed' : ''}`;
  }

  /** Drops what is still queued and stops retrying. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = new Uint8Array(0);
  }
}
