import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Bus, BusOverlapError, type BusDevice } from '../../src/vmm/bus.js';

class Recorder implements BusDevice {
  log: string[] = [];
  read(offset: number, data: Uint8Array): void {
    this.log.push(`r${offset}/${data.length}`);
    data.fill(offset);
  }
  write(offset: number, data: Uint8Array): void {
    this.log.push(`w${offset}=${Array.from(data).join(',')}`);
  }
}

test('routes accesses with offsets relative to the range base', () => {
  const bus = new Bus('pio');
  const uart = new Recorder();
  bus.insert('uart', 0x3f8, 8, uart);
  const d = new Uint8Array(1);
  assert.ok(bus.read(0x3fd, d));
  assert.is(d[0], 5);
  assert.ok(bus.write(0x3f8, Uint8Array.of(0x41)));
  assert.equal(uart.log, ['r5/1', 'w0=65']);
});

test('unknown accesses read all-ones, drop writes and are counted per address', () => {
  const bus = new Bus('pio');
  bus.insert('uart', 0x3f8, 8, new Recorder());
  const d = new Uint8Array(2);
  assert.not.ok(bus.read(0x80, d));
  assert.equal(Array.from(d), [0xff, 0xff]);
  assert.not.ok(bus.write(0x80, Uint8Array.of(1)));
  assert.not.ok(bus.write(0x3ff, Uint8Array.of(1, 2)), 'an access running past the range end is not the device\'s');
  const s = bus.stats();
  assert.equal(s.unknown, [{ address: 0x80, reads: 1, writes: 1 }, { address: 0x3ff, reads: 0, writes: 1 }]);
  assert.equal(s.devices, [{ name: 'uart', base: 0x3f8, reads: 0, writes: 0 }]);
});

test('overlapping inserts are refused, adjacent ones accepted', () => {
  const bus = new Bus('mmio');
  bus.insert('a', 0x1000, 0x1000, new Recorder());
  bus.insert('b', 0x2000, 0x1000, new Recorder());
  assert.throws(() => bus.insert('c', 0x1fff, 2, new Recorder()), (e: unknown) => e instanceof BusOverlapError && /overlaps a/.test(e.message));
  assert.throws(() => bus.insert('d', 0x0, 0, new Recorder()), (e: unknown) => e instanceof RangeError && /bad mmio range for d/.test(e.message));
});

test('unknown-address bookkeeping is bounded', () => {
  const bus = new Bus('mmio');
  for (let i = 0; i < 1000; i++) bus.write(i * 4, Uint8Array.of(0));
  const s = bus.stats();
  assert.is(s.unknown.length, 256);
  assert.is(s.unknownDropped, 1000 - 256);
});

test('property: lookup agrees with a linear scan', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 20 }), fc.array(fc.integer({ min: 0, max: 0x1100 }), { maxLength: 50 }), (slots, probes) => {
      const bus = new Bus('mmio');
      for (const s of slots) bus.insert(`d${s}`, s * 0x40, 0x40, new Recorder());
      for (const p of probes) {
        const expected = slots.includes(Math.floor(p / 0x40)) && p < 64 * 0x40;
        assert.is(bus.read(p, new Uint8Array(1)), expected);
      }
    }),
  );
});

test.run();
