// The vCPU loop with real devices on its buses, driven by a real-mode guest under KVM.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus } from '../../src/vmm/bus.js';
import { runVcpuLoop, requestStop, CONTROL_CELLS } from '../../src/vmm/vcpu-loop.js';
import { Serial8250, SERIAL_PORT_COM1, SERIAL_PORT_LENGTH } from '../../src/devices/legacy/serial.js';
import { I8042, I8042_PORT, I8042_PORT_LENGTH } from '../../src/devices/legacy/i8042.js';
import { whereLabel } from '../helpers/where.js';
import { realModeGuest } from '../helpers/realmode.js';
import { packageRoot } from '../../src/package-root.js';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';

const test = suite(`vcpu loop [${whereLabel()}]`);

function machine(code: number[]) {
  const g = realModeGuest(code, { ram: 0x10000, codeAt: 0x1000 });
  const out: number[] = [];
  const control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_CELLS));
  const pio = new Bus('pio');
  const mmio = new Bus('mmio');
  pio.insert('serial', SERIAL_PORT_COM1, SERIAL_PORT_LENGTH, new Serial8250(Serial8250.createState(), { write: (b) => out.push(...b) }, { trigger: () => {} }));
  pio.insert('i8042', I8042_PORT, I8042_PORT_LENGTH, new I8042(I8042.createState(), { reset: () => requestStop(control, 2) }));
  return { vcpu: g.vcpu, mem: g.mem, pio, mmio, control, out, dispose: () => g.dispose() };
}

test('a guest prints through the UART (byte and rep outsb) and resets through the i8042', () => {
  // mov dx,0x3f8; mov al,'h'; out dx,al; mov al,'i'; out dx,al;
  // mov si,0x1100; mov cx,3; rep outsb          (string I/O: one exit carrying "!!\n")
  // in al,0x80                                   (a port no device claims: reads 0xff)
  // mov al,0xfe; out 0x64,al; jmp $              (i8042 CPU reset)
  const code = [0xba, 0xf8, 0x03, 0xb0, 0x68, 0xee, 0xb0, 0x69, 0xee, 0xbe, 0x00, 0x11, 0xb9, 0x03, 0x00, 0xf3, 0x6e, 0xe4, 0x80, 0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe];
  const m = machine(code);
  try {
    m.mem.bytes().set([0x21, 0x21, 0x0a], 0x1100);
    const stop = runVcpuLoop({ vcpu: m.vcpu, pio: m.pio, mmio: m.mmio, control: m.control });
    assert.is(stop.kind, 'reset');
    assert.is(String.fromCharCode(...m.out), 'hi!!\n');
    assert.is((m.vcpu.getRegs().rax & 0xffn), 0xfen);
    const stats = m.pio.stats();
    assert.equal(stats.unknown, [{ address: 0x80, reads: 1, writes: 0 }]);
    assert.equal(stats.devices.find((d) => d.name === 'serial')?.writes, 5);
    // rep outsb may reach user space as one exit with count 3 or as three (KVM's choice).
    assert.ok(stop.exits >= 5 && stop.exits <= 7, `${stop.exits} exits`);
  } finally {
    m.dispose();
  }
});

test('a stop request from another thread ends the loop of a spinning guest', async () => {
  const m = machine([0xeb, 0xfe]); // jmp $
  try {
    // KVM_RUN blocks this thread, so the stop comes from a worker: set the control word, kick.
    const addonPath = join(packageRoot(), 'build', 'Release', 'tsvmm.node');
    const kicker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const addon = require(workerData.addonPath);
       setTimeout(() => { Atomics.store(workerData.control, 0, 1); addon.Vcpu.attach(workerData.vcpuId).kick(); }, 100);`,
      { eval: true, workerData: { control: m.control, addonPath, vcpuId: m.vcpu.id } },
    );
    const done = new Promise((r) => kicker.once('exit', r));
    const stop = runVcpuLoop({ vcpu: m.vcpu, pio: m.pio, mmio: m.mmio, control: m.control });
    assert.is(stop.kind, 'stop-requested');
    await done;
  } finally {
    m.dispose();
  }
});

test('a report request describes the spinning vCPU, which then runs on until it is stopped', async () => {
  const m = machine([0xeb, 0xfe]); // jmp $ at 0x1000
  try {
    // From a worker, as the main thread does on SIGUSR2: bump the report counter and kick; then,
    // later, stop. One report line must come, naming the instruction the guest spins on.
    const addonPath = join(packageRoot(), 'build', 'Release', 'tsvmm.node');
    const kicker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const addon = require(workerData.addonPath);
       const vcpu = addon.Vcpu.attach(workerData.vcpuId);
       setTimeout(() => { Atomics.add(workerData.control, 1, 1); vcpu.kick(); }, 100);
       setTimeout(() => { Atomics.store(workerData.control, 0, 1); vcpu.kick(); }, 400);`,
      { eval: true, workerData: { control: m.control, addonPath, vcpuId: m.vcpu.id } },
    );
    const done = new Promise((r) => kicker.once('exit', r));
    const lines: string[] = [];
    const stop = runVcpuLoop({ vcpu: m.vcpu, pio: m.pio, mmio: m.mmio, control: m.control, onReport: (l) => lines.push(l) });
    assert.is(stop.kind, 'stop-requested', 'the report did not end the loop; the stop did');
    assert.is(lines.length, 1, lines.join('\n'));
    assert.match(lines[0] as string, /^rip 0x1000 rsp 0x[0-9a-f]+ rflags 0x[0-9a-f]+ \(interrupts o(n|ff)\) cr3 0x0 mp_state runnable, \d+ exits so far; LAPIC (unreadable: .*|on, .*)$/);
    await done;
  } finally {
    m.dispose();
  }
});

test.run();
