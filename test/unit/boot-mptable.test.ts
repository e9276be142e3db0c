// MP table (Intel MultiProcessor Specification 1.4) at the EBDA.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { BootError, buildMptable, MAX_MPTABLE_CPUS, mptableSize, writeMptable } from '../../src/boot/index.js';

const ENTRY_SIZE: Record<number, number> = { 0: 20, 1: 8, 2: 8, 3: 8, 4: 8 };

function sum(m: GuestMemory, addr: number, len: number): number {
  let s = 0;
  for (const b of m.slice(addr, len)) s = (s + b) & 0xff;
  return s;
}

interface Parsed {
  cpus: { apicId: number; flags: number; version: number }[];
  buses: string[];
  ioapics: { id: number; addr: number; flags: number }[];
  intsrc: { type: number; bus: number; busIrq: number; dstApic: number; pin: number }[];
  lintsrc: { type: number; dstApic: number; lint: number }[];
  entryCount: number;
}

/** Walks the table as Linux's smp_read_mpc does: floating pointer -> header -> entries by type. */
function parse(m: GuestMemory, at = 0x9fc00): Parsed {
  assert.is(Buffer.from(m.slice(at, 4)).toString('latin1'), '_MP_');
  assert.is(m.readU8(at + 8), 1, 'floating pointer length (16-byte units)');
  assert.is(m.readU8(at + 9), 4, 'spec rev 1.4');
  assert.is(sum(m, at, 16), 0, 'floating pointer checksum');
  assert.is(m.readU8(at + 11), 0, 'feature byte 1: 0 = a configuration table is present');
  const table = m.readU32(at + 4);
  assert.is(Buffer.from(m.slice(table, 4)).toString('latin1'), 'PCMP');
  const length = m.readU16(table + 4);
  assert.is(m.readU8(table + 6), 4);
  assert.is(sum(m, table, length), 0, 'configuration table checksum');
  assert.is(m.readU32(table + 36), 0xfee00000, 'local APIC address');
  const out: Parsed = { cpus: [], buses: [], ioapics: [], intsrc: [], lintsrc: [], entryCount: m.readU16(table + 34) };
  let p = table + 44;
  let n = 0;
  while (p < table + length) {
    const type = m.readU8(p);
    const size = ENTRY_SIZE[type];
    assert.ok(size !== undefined, `unknown entry type ${type}`);
    if (type === 0) out.cpus.push({ apicId: m.readU8(p + 1), version: m.readU8(p + 2), flags: m.readU8(p + 3) });
    if (type === 1) out.buses.push(Buffer.from(m.slice(p + 2, 6)).toString('latin1'));
    if (type === 2) out.ioapics.push({ id: m.readU8(p + 1), flags: m.readU8(p + 3), addr: m.readU32(p + 4) });
    if (type === 3) out.intsrc.push({ type: m.readU8(p + 1), bus: m.readU8(p + 4), busIrq: m.readU8(p + 5), dstApic: m.readU8(p + 6), pin: m.readU8(p + 7) });
    if (type === 4) out.lintsrc.push({ type: m.readU8(p + 1), dstApic: m.readU8(p + 6), lint: m.readU8(p + 7) });
    p += size as number;
    n++;
  }
  assert.is(p, table + length, 'entries end exactly at the table length');
  assert.is(n, out.entryCount, 'entry count in the header');
  return out;
}

for (const cpus of [1, 2, 4, 64]) {
  test(`MP table for ${cpus} vCPU(s): checksums, processor/bus/IOAPIC/interrupt entries`, () => {
    const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 2 * 1024 * 1024 }]);
    const info = writeMptable(m, cpus);
    assert.is(info.addr, 0x9fc00);
    assert.is(info.tableAddr, 0x9fc10);
    assert.is(info.size, mptableSize(cpus));
    assert.is(info.size, 16 + 44 + 20 * cpus + 8 + 8 + 24 * 8 + 2 * 8);
    const t = parse(m);
    assert.is(t.cpus.length, cpus);
    t.cpus.forEach((c, i) => {
      assert.is(c.apicId, i);
      assert.is(c.flags, i === 0 ? 3 : 1, 'enabled, BSP on 0');
      assert.is(c.version, 0x14);
    });
    assert.equal(t.buses, ['ISA   ']);
    assert.equal(t.ioapics, [{ id: cpus, addr: 0xfec00000, flags: 1 }]);
    assert.is(t.intsrc.length, 24);
    t.intsrc.forEach((s, i) => assert.equal(s, { type: 0, bus: 0, busIrq: i, dstApic: cpus, pin: i }));
    assert.equal(t.lintsrc, [
      { type: 3, dstApic: 0, lint: 0 }, // ExtINT -> LINT0 of the BSP
      { type: 1, dstApic: 0xff, lint: 1 }, // NMI -> LINT1 of every APIC
    ]);
    assert.is(t.entryCount, info.entryCount);
  });
}

test('MP table: the vCPU count is capped with a typed error; nothing is written', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 2 * 1024 * 1024 }]);
  for (const bad of [0, -1, 1.5, MAX_MPTABLE_CPUS + 1, 1000]) {
    assert.throws(() => writeMptable(m, bad), (e: unknown) => e instanceof BootError && e.reason === 'bad-vcpu-count', String(bad));
  }
  assert.ok(m.slice(0x9fc00, 0x1000).every((b) => b === 0));
  const max = writeMptable(m, MAX_MPTABLE_CPUS);
  assert.is(max.ioapicId, 254);
  assert.is(parse(m).cpus.length, 254);
});

test('MP table: too little guest memory is a typed error, not a crash', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x9fc00 + 100 }]);
  assert.throws(() => writeMptable(m, 4), (e: unknown) => e instanceof BootError && e.reason === 'bad-memory-layout' && /not inside guest RAM/.test(e.message));
});

test('property: both checksums are zero for every vCPU count', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: MAX_MPTABLE_CPUS }), (cpus) => {
      const { bytes, info } = buildMptable(cpus);
      let a = 0;
      for (const b of bytes.subarray(0, 16)) a = (a + b) & 0xff;
      let t = 0;
      for (const b of bytes.subarray(16, 16 + info.tableLength)) t = (t + b) & 0xff;
      assert.is(a, 0);
      assert.is(t, 0);
      assert.is(bytes.byteLength, 16 + info.tableLength);
    }),
  );
});

test.run();
