import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Worker } from 'node:worker_threads';
import { Serial8250, SERIAL_FIFO_SIZE } from '../../src/devices/legacy/serial.js';
import { I8042 } from '../../src/devices/legacy/i8042.js';
import { BootTimer, BOOT_TIMER_MAGIC } from '../../src/devices/legacy/boot-timer.js';
import { AcpiPm, ACPI_PM_PORT, ACPI_PM_PORT_LENGTH } from '../../src/devices/legacy/acpi-pm.js';
import { legacyPioBus } from '../../src/machine/legacy-buses.js';

function serial(): { dev: Serial8250; out: number[]; irqs: { n: number }; state: SharedArrayBuffer } {
  const out: number[] = [];
  const irqs = { n: 0 };
  const state = Serial8250.createState();
  const dev = new Serial8250(state, { write: (b) => out.push(...b) }, { trigger: () => irqs.n++ });
  return { dev, out, irqs, state };
}
const rd = (d: Serial8250, off: number): number => {
  const b = new Uint8Array(1);
  d.read(off, b);
  return b[0] as number;
};
const wr = (d: Serial8250, off: number, v: number): void => d.write(off, Uint8Array.of(v));

test('serial: THR writes go out, LSR always says transmitter empty', () => {
  const { dev, out } = serial();
  for (const ch of 'hi\n') wr(dev, 0, ch.charCodeAt(0));
  assert.is(String.fromCharCode(...out), 'hi\n');
  assert.is(rd(dev, 5) & 0x60, 0x60);
  assert.is(dev.transmitted, 3);
});

test('serial: enabling THRI raises the interrupt; IIR reports and acknowledges it', () => {
  const { dev, irqs } = serial();
  assert.is(rd(dev, 2) & 0x0f, 0x01, 'no interrupt pending');
  wr(dev, 1, 0x02);
  assert.is(irqs.n, 1);
  assert.is(rd(dev, 2) & 0x0f, 0x02, 'THR empty');
  assert.is(rd(dev, 2) & 0x0f, 0x01, 'acknowledged by the IIR read');
  wr(dev, 0, 0x41);
  assert.is(irqs.n, 2, 'each transmit raises THRI again');
});

test('serial: input fills the FIFO, raises RDI, reads drain it in order; FIFO bounded', () => {
  const { dev, irqs } = serial();
  wr(dev, 1, 0x01);
  assert.is(dev.enqueueInput(new TextEncoder().encode('ok')), 2);
  assert.is(irqs.n, 1);
  assert.is(rd(dev, 5) & 0x01, 0x01, 'data ready');
  assert.is(rd(dev, 2) & 0x0f, 0x04, 'receive data available has priority');
  assert.is(rd(dev, 0), 0x6f);
  assert.is(rd(dev, 0), 0x6b);
  assert.is(rd(dev, 5) & 0x01, 0);
  assert.is(dev.enqueueInput(new Uint8Array(100)), SERIAL_FIFO_SIZE);
  wr(dev, 2, 0x02);
  assert.is(rd(dev, 5) & 0x01, 0, 'FCR clears the receive FIFO');
});

test('serial: divisor latch and loopback', () => {
  const { dev, out } = serial();
  wr(dev, 3, 0x83);
  wr(dev, 0, 0x01);
  wr(dev, 1, 0x00);
  assert.is(rd(dev, 0), 0x01, 'DLL');
  wr(dev, 3, 0x03);
  wr(dev, 4, 0x10 | 0x0b);
  wr(dev, 0, 0x55);
  assert.equal(out, [], 'loopback does not transmit');
  assert.is(rd(dev, 0), 0x55, 'loopback receives');
  assert.is(rd(dev, 6) & 0xf0, 0xb0 | 0x00, 'MSR mirrors MCR in loopback');
  wr(dev, 7, 0x99);
  assert.is(rd(dev, 7), 0x99);
});

test('serial: property: any register access sequence keeps the FIFO bounded and never throws', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 255 })), { maxLength: 200 }), (ops) => {
      const { dev } = serial();
      for (const [isWrite, off, v] of ops) {
        if (isWrite) wr(dev, off, v);
        else rd(dev, off);
        dev.enqueueInput(Uint8Array.of(v));
      }
      let drained = 0;
      wr(dev, 3, 0x03);
      wr(dev, 4, 0x08);
      while (rd(dev, 5) & 0x01 && drained < 1000) {
        rd(dev, 0);
        drained++;
      }
      assert.ok(drained <= SERIAL_FIFO_SIZE);
    }),
  );
});

test('serial: state is shared by threads: concurrent writers lose nothing', async () => {
  const { dev, state } = serial();
  const code = `
    const { workerData } = require('node:worker_threads');
    const c = new Int32Array(workerData.state, 0, 11);
    // Same lock protocol as the device (spinlock.ts), bumping the transmit counter.
    for (let i = 0; i < 20000; i++) {
      let v = Atomics.compareExchange(c, 0, 0, 1);
      if (v !== 0) { if (v !== 2) v = Atomics.exchange(c, 0, 2); while (v !== 0) { Atomics.wait(c, 0, 2, 10); v = Atomics.exchange(c, 0, 2); } }
      c[10] = c[10] + 1;
      if (Atomics.sub(c, 0, 1) !== 1) { Atomics.store(c, 0, 0); Atomics.notify(c, 0, 1); }
    }`;
  const workers = [0, 1, 2].map(() => new Worker(code, { eval: true, workerData: { state } }));
  for (let i = 0; i < 20000; i++) wr(dev, 0, 0x2e);
  await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
  assert.is(dev.transmitted, 80000);
});

test('i8042: 0xFE on the command port resets; control byte round-trips', () => {
  let resets = 0;
  const kbd = new I8042(I8042.createState(), { reset: () => resets++ });
  const b = new Uint8Array(1);
  kbd.write(4, Uint8Array.of(0x60));
  kbd.write(0, Uint8Array.of(0x65));
  kbd.write(4, Uint8Array.of(0x20));
  kbd.read(4, b);
  assert.is((b[0] as number) & 0x01, 0x01, 'output buffer full');
  kbd.read(0, b);
  assert.is(b[0], 0x65);
  assert.is(resets, 0);
  kbd.write(4, Uint8Array.of(0xfe));
  assert.is(resets, 1);
});

test('boot timer: only the magic byte counts', () => {
  let n = 0;
  const t = new BootTimer({ bootComplete: () => n++ });
  t.write(0, Uint8Array.of(1));
  t.write(0, Uint8Array.of(BOOT_TIMER_MAGIC, 0));
  assert.is(n, 0);
  t.write(0, Uint8Array.of(BOOT_TIMER_MAGIC));
  assert.is(n, 1);
});

function acpiPm(): { dev: AcpiPm; calls: string[]; state: SharedArrayBuffer } {
  const calls: string[] = [];
  const state = AcpiPm.createState();
  const dev = new AcpiPm(state, { powerOff: () => calls.push('poweroff'), reset: () => calls.push('reset') });
  return { dev, calls, state };
}
const rdb = (d: AcpiPm, off: number): number => {
  const b = new Uint8Array(1);
  d.read(off, b);
  return b[0] as number;
};

test('acpi-pm: what ACPICA does to power off (clear WAK_STS, then S5|SLP_EN) ends the VM once', () => {
  const { dev, calls } = acpiPm();
  // acpi_hw_extended_sleep: write WAK_STS to the status register, then (SLP_TYP << 2) | SLP_EN.
  dev.write(1, Uint8Array.of(0x80));
  assert.equal(calls, []);
  dev.write(0, Uint8Array.of((5 << 2) | 0x20));
  assert.equal(calls, ['poweroff']);
});

test('acpi-pm: S5 without SLP_EN, other sleep types and wide accesses do not power off', () => {
  const { dev, calls } = acpiPm();
  dev.write(0, Uint8Array.of(5 << 2)); // SLP_TYP without SLP_EN
  dev.write(0, Uint8Array.of(0x34, 0)); // 2-byte access
  dev.write(0, Uint8Array.of(0x20)); // S0 + SLP_EN
  dev.write(0, Uint8Array.of((3 << 2) | 0x20)); // S3
  dev.write(0, Uint8Array.of((7 << 2) | 0x20)); // type 7
  dev.write(3, Uint8Array.of(0x34)); // past the registers
  assert.equal(calls, []);
  assert.is(dev.unsupportedSleeps, 3);
});

test('acpi-pm: an unsupported sleep wakes at once (WAK_STS set) so a waiting guest goes on; write 1 clears it', () => {
  const { dev, state } = acpiPm();
  assert.is(rdb(dev, 1), 0, 'WAK_STS clear after power-on');
  dev.write(0, Uint8Array.of((1 << 2) | 0x20)); // S1
  assert.is(rdb(dev, 1), 0x80);
  dev.write(1, Uint8Array.of(0x7f)); // writing 0 to bit 7 leaves it
  assert.is(rdb(dev, 1), 0x80);
  // Shared state: another thread's device object sees the same register.
  const other = new AcpiPm(state, { powerOff: () => {}, reset: () => {} });
  assert.is(rdb(other, 1), 0x80);
  other.write(1, Uint8Array.of(0x80));
  assert.is(rdb(dev, 1), 0);
  assert.is(rdb(dev, 0), 0, 'the control register reads 0 (write-only)');
  assert.is(rdb(dev, 2), 0, 'the reset register reads 0');
  const wide = new Uint8Array(2).fill(0xaa);
  dev.read(1, wide);
  assert.equal(Array.from(wide), [0, 0], 'a wide read returns 0');
});

test('acpi-pm: RESET_VALUE on the reset register resets; other values do not', () => {
  const { dev, calls } = acpiPm();
  dev.write(2, Uint8Array.of(0x00));
  dev.write(2, Uint8Array.of(0xfe));
  dev.write(2, Uint8Array.of(0x01, 0x00));
  assert.equal(calls, []);
  dev.write(2, Uint8Array.of(0x01));
  assert.equal(calls, ['reset']);
});

test('acpi-pm on the legacy PIO bus: ports 0x600..0x602, S5 reaches the power-off sink', () => {
  const calls: string[] = [];
  const pio = legacyPioBus(
    { serial: Serial8250.createState(), i8042: I8042.createState(), acpiPm: AcpiPm.createState() },
    {
      console: { write: () => {} },
      serialIrq: { trigger: () => {} },
      reset: { reset: () => calls.push('i8042 reset') },
      bootTimer: { bootComplete: () => {} },
      acpiPm: { powerOff: () => calls.push('poweroff'), reset: () => calls.push('acpi reset') },
    },
  );
  assert.is(ACPI_PM_PORT, 0x600);
  assert.is(ACPI_PM_PORT_LENGTH, 3);
  pio.write(0x601, Uint8Array.of(0x80));
  pio.write(0x600, Uint8Array.of(0x34));
  pio.write(0x602, Uint8Array.of(0x01));
  assert.equal(calls, ['poweroff', 'acpi reset']);
  const dev = pio.stats().devices.find((d) => d.name === 'acpi-pm');
  assert.equal(dev, { name: 'acpi-pm', base: 0x600, reads: 0, writes: 3 });
});

test('8250: describeState() shows the shared registers for a stuck-guest report', () => {
  const state = Serial8250.createState();
  const uart = new Serial8250(state, { write: () => {} }, { trigger: () => {} });
  uart.write(1, Uint8Array.of(0x02)); // IER: THR-empty interrupt on
  uart.write(0, Uint8Array.of(0x41));
  uart.enqueueInput(Uint8Array.of(1, 2, 3));
  assert.is(Serial8250.describeState(state), 'IER 0x2 LCR 0x3 MCR 0x8, THR-empty interrupt pending 1, receive FIFO 3 bytes, 3 bytes received from the host, 1 bytes transmitted, 2 interrupts raised, lock 0');
});

test.run();
