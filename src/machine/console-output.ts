// The guest console's bytes to an fd, from a vCPU thread.
import { writeSync } from 'node:fs';

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `bytes` to the console fd, waiting while it is full. Node makes a pipe on stdout
 * non-blocking, so a slow reader (a test harness, a terminal being scrolled) makes write(2) fail
 * with EAGAIN; the vCPU then waits, as a guest waits on a real UART whose FIFO is full, instead
 * of dying on the error.
 */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) {
    try {
      off += writeSync(fd, bytes, off, bytes.byteLength - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1); // on a vCPU's worker thread this blocks only that vCPU
    }
  }
}
