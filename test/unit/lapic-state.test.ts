// vmm/lapic-state.ts: the LAPIC page of KVM_GET_LAPIC read for a stuck-guest report.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeLapic, describeLapic, LAPIC_STATE_SIZE } from '../../src/vmm/lapic-state.js';

function page(regs: Record<number, number>): Uint8Array {
  const b = new Uint8Array(LAPIC_STATE_SIZE);
  const v = new DataView(b.buffer);
  for (const [off, val] of Object.entries(regs)) v.setUint32(Number(off), val >>> 0, true);
  return b;
}

test('decodeLapic: vectors from the 256-bit IRR/ISR/TMR, priorities, the timer', () => {
  // IRR: vector 236 (word 7, bit 12) and 36 (word 1, bit 4); ISR: 48 (word 1, bit 16).
  const s = page({ 0x80: 0x10, 0xa0: 0x30, 0xf0: 0x1ff, 0x210: 1 << 4, 0x270: 1 << 12, 0x110: 1 << 16, 0x320: 0x200ec, 0x380: 1000, 0x390: 250, 0x3e0: 0xb });
  const l = decodeLapic(s);
  assert.equal([l.tpr, l.ppr, l.enabled], [0x10, 0x30, true]);
  assert.equal(l.irr, [36, 236]);
  assert.equal(l.isr, [48]);
  assert.equal(l.tmr, []);
  assert.equal(l.timer, { vector: 236, masked: false, mode: 'periodic', initialCount: 1000, currentCount: 250, divide: 0xb });
  assert.is(describeLapic(s), 'LAPIC on, TPR 16 PPR 48, IRR [36 236] ISR [48] TMR [], timer periodic vector 236 count 250/1000');
  assert.match(describeLapic(page({ 0x320: 0x50000 | 0xef })), /LAPIC software-disabled, .* timer masked tsc-deadline vector 239/);
  assert.throws(() => decodeLapic(new Uint8Array(16)), /1024 bytes, got 16/);
});

test.run();
