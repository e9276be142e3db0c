// vmm/pvclock.ts: the guest's kvm-clock read from its pvclock page, for a stuck-guest report.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { describeKvmClock, pvclockNs, pvclockTicksPerNs, readPvclock } from '../../src/vmm/pvclock.js';

// A 2.5 GHz TSC: ns = ticks * 0.4 = (ticks << 0) * (0.4 * 2^32) >> 32.
const MUL_2500MHZ = Math.round(0.4 * 2 ** 32);

function memoryWithPage(gpa: number, fields: { tsc: bigint; ns: bigint; mul: number; shift: number; flags: number }): GuestMemory {
  const bytes = new Uint8Array(0x2000);
  const v = new DataView(bytes.buffer);
  v.setUint32(gpa, 4, true);
  v.setBigUint64(gpa + 8, fields.tsc, true);
  v.setBigUint64(gpa + 16, fields.ns, true);
  v.setUint32(gpa + 24, fields.mul, true);
  v.setInt8(gpa + 28, fields.shift);
  v.setUint8(gpa + 29, fields.flags);
  return new GuestMemory([{ guestPhysAddr: 0, bytes }]);
}

test('pvclockNs scales the TSC delta as the guest does (shift, then the 32.32 multiplier)', () => {
  const m = memoryWithPage(0x1040, { tsc: 1_000_000n, ns: 5_000_000_000n, mul: MUL_2500MHZ, shift: 0, flags: 1 });
  const info = readPvclock(m, 0x1040);
  assert.is(info.systemTimeNs, 5_000_000_000n);
  // 2.5e9 ticks later: one second later.
  const ns = pvclockNs(info, 1_000_000n + 2_500_000_000n);
  assert.ok(ns >= 5_999_999_999n && ns <= 6_000_000_001n, String(ns));
  // A negative shift halves the delta first.
  const halved = pvclockNs({ ...info, tscShift: -1, tscToSystemMul: MUL_2500MHZ * 2 }, 1_000_000n + 2_500_000_000n);
  assert.ok(halved >= 5_999_999_999n && halved <= 6_000_000_001n, String(halved));
  assert.ok(Math.abs(pvclockTicksPerNs(info) - 2.5) < 1e-6);
});

test('describeKvmClock: the clock, its stability, and where a TSC deadline falls on it', () => {
  const m = memoryWithPage(0x1040, { tsc: 0n, ns: 10_000_000_000n, mul: MUL_2500MHZ, shift: 0, flags: 1 });
  const text = describeKvmClock(m, 0x1041n, 25_000_000_000n, 25_000_000_000n + 250_000_000_000n);
  assert.match(text, /guest kvm-clock 20\.000 s \(stable, last updated by KVM at 10\.000 s, version 4\)/);
  assert.match(text, /TSC deadline at kvm-clock 120\.000 s/);
  assert.is(describeKvmClock(m, 0x1040n, 0n), 'kvm-clock not enabled by the guest');
  assert.match(describeKvmClock(m, 0x10_0001n, 0n), /unreadable/);
});

test.run();
