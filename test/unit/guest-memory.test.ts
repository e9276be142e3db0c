import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory, GuestMemoryError } from '../../src/vmm/guest-memory.js';

// Two regions with a gap, like RAM below and above the 32-bit MMIO hole.
const layout = [
  { guestPhysAddr: 0, size: 0x4000 },
  { guestPhysAddr: 0x10000, size: 0x2000 },
];

test('typed accessors are little-endian and round-trip', () => {
  const m = GuestMemory.fromSizes(layout);
  m.writeU32(0x100, 0x11223344);
  assert.is(m.readU8(0x100), 0x44);
  assert.is(m.readU16(0x102), 0x1122);
  m.writeU64(0x10008, 0xfedcba9876543210n);
  assert.is(m.readU64(0x10008), 0xfedcba9876543210n);
  assert.is(m.readU32(0x1000c), 0xfedcba98);
  m.writeU8(0x3fff, 0xab);
  assert.is(m.readU8(0x3fff), 0xab);
});

test('slice is a zero-copy view', () => {
  const m = GuestMemory.fromSizes(layout);
  const s = m.slice(0x10010, 4);
  s[0] = 7;
  assert.is(m.readU8(0x10010), 7);
  m.writeU8(0x10011, 9);
  assert.is(s[1], 9);
});

test('out of range, crossing a region end, negative and non-integer addresses are errors', () => {
  const m = GuestMemory.fromSizes(layout);
  const bad: [number, number][] = [[0x4000, 1], [0x3ffe, 4], [0x8000, 1], [0x11fff, 2], [-1, 1], [1.5, 1], [0, -1], [2 ** 60, 1], [Number.NaN, 1]];
  for (const [gpa, len] of bad) {
    assert.throws(() => m.slice(gpa, len), (e: unknown) => e instanceof GuestMemoryError, `${gpa}+${len}`);
    assert.is(m.contains(gpa, len), false);
  }
  assert.throws(() => m.readU32(0x3ffd), /crosses the end of the region/);
  assert.throws(() => m.readU8(0x5000), /outside guest memory/);
});

test('overlapping regions are refused', () => {
  assert.throws(() => GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x2000 }, { guestPhysAddr: 0x1000, size: 0x1000 }]), /overlap/);
});

test('property: an access succeeds exactly when it lies inside one region', () => {
  const m = GuestMemory.fromSizes(layout);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0x13000 }), fc.integer({ min: 0, max: 0x5000 }), (gpa, len) => {
      const inside = (gpa + len <= 0x4000) || (gpa >= 0x10000 && gpa + len <= 0x12000);
      let ok = true;
      try {
        m.slice(gpa, len);
      } catch (e) {
        assert.instance(e, GuestMemoryError);
        ok = false;
      }
      assert.is(ok, inside && (gpa < 0x4000 || gpa >= 0x10000));
      assert.is(m.contains(gpa, len), ok);
    }),
  );
});

test('size and end', () => {
  const m = GuestMemory.fromSizes(layout);
  assert.is(m.size, 0x6000);
  assert.is(m.end, 0x12000);
});

test.run();
