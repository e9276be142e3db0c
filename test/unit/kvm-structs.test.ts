import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  KVM_REGS_SIZE,
  KVM_SREGS_SIZE,
  REG_NAMES,
  decodeCpuid,
  decodeMsrs,
  decodeRegs,
  decodeSregs,
  encodeCpuid,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
  exitReasonName,
  type Regs,
  type Segment,
  type Sregs,
} from '../../src/vmm/kvm-structs.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });

const regsArb: fc.Arbitrary<Regs> = fc.tuple(...REG_NAMES.map(() => u64)).map((vals) => {
  const r = {} as Regs;
  REG_NAMES.forEach((n, i) => {
    r[n] = vals[i] as bigint;
  });
  return r;
});

const segArb: fc.Arbitrary<Segment> = fc.record({
  base: u64, limit: u32, selector: u16, type: u8, present: u8, dpl: u8, db: u8, s: u8, l: u8, g: u8, avl: u8, unusable: u8,
});

const sregsArb: fc.Arbitrary<Sregs> = fc.record({
  cs: segArb, ds: segArb, es: segArb, fs: segArb, gs: segArb, ss: segArb, tr: segArb, ldt: segArb,
  gdt: fc.record({ base: u64, limit: u16 }),
  idt: fc.record({ base: u64, limit: u16 }),
  cr0: u64, cr2: u64, cr3: u64, cr4: u64, cr8: u64, efer: u64, apicBase: u64,
  interruptBitmap: fc.tuple(u64, u64, u64, u64),
});

test('kvm_regs round-trips and has the kernel size', () => {
  fc.assert(fc.property(regsArb, (r) => {
    const buf = encodeRegs(r);
    assert.is(buf.byteLength, KVM_REGS_SIZE);
    assert.equal(decodeRegs(buf), r);
  }));
});

test('kvm_sregs round-trips and has the kernel size', () => {
  fc.assert(fc.property(sregsArb, (s) => {
    const buf = encodeSregs(s);
    assert.is(buf.byteLength, KVM_SREGS_SIZE);
    assert.equal(decodeSregs(buf), structuredClone(s)); // fast-check records have a null prototype
  }));
});

test('kvm_msrs and kvm_cpuid2 round-trip', () => {
  fc.assert(fc.property(fc.array(fc.record({ index: u32, data: u64 }), { maxLength: 40 }), (m) => {
    assert.equal(decodeMsrs(encodeMsrs(m)), structuredClone(m));
  }));
  const entry = fc.record({ function: u32, index: u32, flags: u32, eax: u32, ebx: u32, ecx: u32, edx: u32 });
  fc.assert(fc.property(fc.array(entry, { maxLength: 40 }), (c) => {
    assert.equal(decodeCpuid(encodeCpuid(c)), structuredClone(c));
  }));
});

test('decoders never read past a buffer whose count lies', () => {
  fc.assert(fc.property(u32, fc.integer({ min: 8, max: 200 }), (count, len) => {
    const buf = new Uint8Array(len);
    new DataView(buf.buffer).setUint32(0, count, true);
    assert.ok(decodeMsrs(buf).length <= Math.floor((len - 8) / 16));
    assert.ok(decodeCpuid(buf).length <= Math.floor((len - 8) / 40));
  }));
});

test('exit reason names', () => {
  assert.is(exitReasonName(2), 'IO');
  assert.is(exitReasonName(17), 'INTERNAL_ERROR');
  assert.is(exitReasonName(999), 'exit reason 999');
});

test.run();
