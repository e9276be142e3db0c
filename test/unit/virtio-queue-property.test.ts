// Property tests of the split virtqueue (issue 6, point 2):
// (a) well-formed chains posted by the test driver pop with exactly the posted buffers;
// (b) garbage rings only ever yield chains or the typed errors, and the device never touches memory
//     outside guest RAM nor guest memory the guest did not hand it as device-writable;
// (c) used entries pushed by the device (in any completion order) read back exactly, across wrap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { SplitQueue } from '../../src/devices/virtio/queue.js';
import type { DescriptorChain } from '../../src/devices/virtio/chain.js';
import { VirtioChainError, VirtioQueueError } from '../../src/devices/virtio/errors.js';
import { VirtqDriver, type RawDescriptor } from '../helpers/virtq-driver.js';

/** Guest RAM in two regions with a gap, carved out of one host buffer with canary bytes around. */
const GUARD = 0x1000;
const A = { gpa: 0, size: 0x10000 };
const B = { gpa: 0x20000, size: 0x4000 };
const A_OFF = GUARD;
const B_OFF = GUARD + A.size + GUARD;
const TOTAL = B_OFF + B.size + GUARD;
const CANARY = 0x5a;

function guardedMemory(): { memory: GuestMemory; backing: Uint8Array } {
  const backing = new Uint8Array(TOTAL).fill(CANARY);
  backing.fill(0, A_OFF, A_OFF + A.size);
  backing.fill(0, B_OFF, B_OFF + B.size);
  const memory = new GuestMemory([
    { guestPhysAddr: A.gpa, bytes: backing.subarray(A_OFF, A_OFF + A.size) },
    { guestPhysAddr: B.gpa, bytes: backing.subarray(B_OFF, B_OFF + B.size) },
  ]);
  return { memory, backing };
}

function inRegion(off: number, len: number): boolean {
  return (off >= A_OFF && off + len <= A_OFF + A.size) || (off >= B_OFF && off + len <= B_OFF + B.size);
}

function assertGuardsIntact(backing: Uint8Array): void {
  for (let i = 0; i < TOTAL; i++) {
    if (!inRegion(i, 1) && backing[i] !== CANARY) assert.unreachable(`canary byte at host offset ${i} changed`);
  }
}

function popOrThrow(q: SplitQueue): DescriptorChain {
  const c = q.popAvail();
  if (!c) throw new Error('expected a chain');
  return c;
}

// --- (a) well-formed chains ---------------------------------------------------------------------

interface Request {
  readable: Uint8Array[];
  writable: number[];
  indirect: boolean;
  written: number;
}

const request: fc.Arbitrary<Request> = fc.record({
  readable: fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 4 }),
  writable: fc.array(fc.integer({ min: 1, max: 80 }), { maxLength: 4 }),
  indirect: fc.boolean(),
  written: fc.nat(),
});

test('(a) well-formed chains pop with exactly the posted buffers and lengths', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 4, 8, 16, 32),
      fc.boolean(),
      fc.array(fc.array(request, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
      (size, eventIdx, batches) => {
        const { memory, backing } = guardedMemory();
        const driver = new VirtqDriver(memory, { size, ringBase: 0x1000, bufferBase: 0x4000, bufferEnd: A.size, eventIdx });
        const queue = new SplitQueue(memory, { ...driver.layout, maxSize: 256, eventIdx, indirectDesc: true });
        for (const batch of batches) {
          driver.resetBuffers();
          const posted: { head: number; req: Request }[] = [];
          for (const req of batch) {
            const n = req.readable.length + req.writable.length;
            if (n === 0) continue;
            const indirect = req.indirect || n > size;
            if (driver.freeCount < (indirect ? 1 : n)) break;
            posted.push({ head: driver.post(req.readable, req.writable, { indirect, publish: false }), req });
          }
          driver.publish();
          const pushed: { head: number; len: number }[] = [];
          for (const { head, req } of posted) {
            const chain = popOrThrow(queue);
            assert.is(chain.head, head);
            assert.equal(chain.readable.map((v) => [...v]), req.readable.map((v) => [...v]));
            assert.equal(chain.writable.map((v) => v.byteLength), req.writable);
            assert.is(chain.readableLength, req.readable.reduce((s, v) => s + v.byteLength, 0));
            assert.is(chain.writableLength, req.writable.reduce((s, v) => s + v, 0));
            for (const v of [...chain.readable, ...chain.writable]) assert.is(v.buffer, backing.buffer);
            // (c) in passing: what the device writes and reports is what the driver reads.
            const len = req.writable.length === 0 ? 0 : req.written % (chain.writableLength + 1);
            const data = Uint8Array.from({ length: len }, (_, i) => (head * 31 + i) & 0xff);
            const w = chain.writer();
            assert.is(w.write(data), len);
            queue.pushUsed(chain.head, w.written);
            pushed.push({ head, len });
            assert.equal([...driver.readWritten(head, len)], [...data]);
          }
          assert.is(queue.popAvail(), undefined);
          assert.equal(driver.collectUsed(), pushed);
        }
        assertGuardsIntact(backing);
      },
    ),
    { numRuns: 150 },
  );
});

// --- (b) garbage ---------------------------------------------------------------------------------

const SIZES = [1, 2, 4, 8, 16] as const;
const DESC = 0x1000;
const DRIVER = 0x2000;
const DEVICE = 0x3000;
const TABLE = 0x8000; // structured garbage for indirect tables
const NOISE = 0x8400; // random bytes
const NOISE_LEN = 0x400;

const interestingAddr = fc.constantFrom(
  0, 1, 0xff0, DESC, DRIVER, DEVICE, TABLE, TABLE + 0x10, TABLE + 0x40, NOISE,
  A.size - 16, A.size - 1, A.size, 0x18000, B.gpa - 16, B.gpa, B.gpa + B.size - 16, B.gpa + B.size,
  2 ** 32, 2 ** 53 - 16, 2 ** 53,
);
const anyAddr: fc.Arbitrary<number | bigint> = fc.oneof(
  interestingAddr,
  fc.integer({ min: 0, max: B.gpa + B.size + 0x100 }),
  fc.integer({ min: 0, max: 63 }).map((k) => TABLE + 16 * k),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
);
const anyLen = fc.oneof(
  fc.constantFrom(0, 1, 15, 16, 17, 32, 64, 0x100, 0x1000, 0x10000, 0xffff_ffff, 0x8000_0000),
  fc.integer({ min: 0, max: 0x800 }),
  fc.integer({ min: 0, max: 70 }).map((k) => 16 * k),
);
const anyFlags = fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffff }));
const anyNext = fc.oneof(fc.integer({ min: 0, max: 17 }), fc.integer({ min: 0, max: 0xffff }));
const anyDesc: fc.Arbitrary<RawDescriptor> = fc.record({ addr: anyAddr, len: anyLen, flags: anyFlags, next: anyNext });
const anyU16 = fc.integer({ min: 0, max: 0xffff });

const garbage = fc.record({
  sizeIndex: fc.integer({ min: 0, max: SIZES.length - 1 }),
  maxSize: fc.constantFrom(16, 32, 64),
  indirectDesc: fc.boolean(),
  eventIdx: fc.boolean(),
  descs: fc.array(anyDesc, { minLength: 16, maxLength: 16 }),
  table: fc.array(anyDesc, { minLength: 64, maxLength: 64 }),
  noise: fc.uint8Array({ minLength: NOISE_LEN, maxLength: NOISE_LEN }),
  heads: fc.array(fc.oneof(fc.integer({ min: 0, max: 17 }), anyU16), { minLength: 16, maxLength: 16 }),
  availIdx: fc.oneof(fc.integer({ min: 0, max: 17 }), anyU16),
  availFlags: anyU16,
  usedEvent: anyU16,
});

test('(b) garbage rings yield chains or typed errors only, and writes stay inside what the guest offered', () => {
  let chains = 0;
  let chainErrors = 0;
  let overruns = 0;
  fc.assert(
    fc.property(garbage, (g) => {
      const size = SIZES[g.sizeIndex] as number;
      const { memory, backing } = guardedMemory();
      const queue = new SplitQueue(memory, {
        size,
        maxSize: Math.max(size, g.maxSize),
        desc: DESC,
        driver: DRIVER,
        device: DEVICE,
        eventIdx: g.eventIdx,
        indirectDesc: g.indirectDesc,
      });
      // Only its raw pokes are used: the rings are laid out by hand above.
      const driver = new VirtqDriver(memory, { size, ringBase: DESC, bufferBase: TABLE, bufferEnd: TABLE });
      for (let i = 0; i < size; i++) driver.writeDesc(i, g.descs[i] as RawDescriptor);
      g.table.forEach((d, i) => driver.writeDescAt(TABLE + 16 * i, d));
      memory.write(NOISE, g.noise);
      for (let i = 0; i < size; i++) memory.writeU16(DRIVER + 4 + 2 * i, g.heads[i] as number);
      memory.writeU16(DRIVER, g.availFlags);
      memory.writeU16(DRIVER + 2, g.availIdx);
      memory.writeU16(DRIVER + 4 + 2 * size, g.usedEvent);

      const before = backing.slice();
      // Host offsets the device may legitimately change: writable buffers of the chains it popped,
      // and its own used ring.
      const allowed = new Uint8Array(TOTAL);
      const allow = (gpa: number, len: number): void => {
        const off = gpa < B.gpa ? A_OFF + gpa : B_OFF + (gpa - B.gpa);
        allowed.fill(1, off, off + len);
      };
      allow(DEVICE, 6 + 8 * size);

      const typed = (e: unknown): boolean => e instanceof VirtioChainError || e instanceof VirtioQueueError;
      for (let n = 0; ; n++) {
        if (n > 2 * size + 2) assert.unreachable(`more pops than the ring can hold (${n})`);
        let chain: DescriptorChain | undefined;
        try {
          chain = queue.popAvail();
        } catch (e) {
          if (!typed(e)) throw e;
          assert.ok((e as Error).message.length > 0);
          if (e instanceof VirtioQueueError) {
            assert.is(e.reason, 'avail-overrun');
            overruns++;
            break;
          }
          const ce = e as VirtioChainError;
          chainErrors++;
          if (ce.returnable) queue.pushUsed(ce.head, 0);
          continue;
        }
        if (!chain) break;
        chains++;
        for (const v of [...chain.readable, ...chain.writable]) {
          assert.is(v.buffer, backing.buffer);
          assert.ok(inRegion(v.byteOffset, v.byteLength), `view at host offset ${v.byteOffset} + ${v.byteLength} outside guest RAM`);
        }
        for (const v of chain.writable) allowed.fill(1, v.byteOffset, v.byteOffset + v.byteLength);
        assert.ok(chain.descriptorCount <= Math.max(size, g.maxSize));
        const w = chain.writer();
        w.write(new Uint8Array(chain.writableLength).fill(0xee));
        queue.pushUsed(chain.head, w.written);
      }
      for (const op of [() => queue.needsNotification(), () => queue.enableNotification(), () => queue.disableNotification()]) {
        try {
          op();
        } catch (e) {
          if (!typed(e)) throw e;
        }
      }

      assertGuardsIntact(backing);
      for (let i = 0; i < TOTAL; i++) {
        if (backing[i] !== before[i] && !allowed[i]) {
          assert.unreachable(`host offset ${i} changed (${before[i]} -> ${backing[i]}) outside writable buffers and the used ring`);
        }
      }
    }),
    { numRuns: 400 },
  );
  // The generators reach all three outcomes (otherwise the property says little).
  assert.ok(chains > 0, 'no well-formed chain was generated');
  assert.ok(chainErrors > 0, 'no malformed chain was generated');
  assert.ok(overruns > 0, 'no avail overrun was generated');
});

test('(b) every chain error reason is reachable from the garbage generator', () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(garbage, (g) => {
      const size = SIZES[g.sizeIndex] as number;
      const { memory } = guardedMemory();
      const queue = new SplitQueue(memory, {
        size, maxSize: Math.max(size, g.maxSize), desc: DESC, driver: DRIVER, device: DEVICE, eventIdx: false, indirectDesc: g.indirectDesc,
      });
      const driver = new VirtqDriver(memory, { size, ringBase: DESC, bufferBase: TABLE, bufferEnd: TABLE });
      for (let i = 0; i < size; i++) driver.writeDesc(i, g.descs[i] as RawDescriptor);
      g.table.forEach((d, i) => driver.writeDescAt(TABLE + 16 * i, d));
      for (let i = 0; i < size; i++) memory.writeU16(DRIVER + 4 + 2 * i, g.heads[i] as number);
      memory.writeU16(DRIVER + 2, size);
      for (let i = 0; i < size; i++) {
        try {
          queue.popAvail();
        } catch (e) {
          if (!(e instanceof VirtioChainError)) throw e;
          seen.add(e.reason);
        }
      }
    }),
    { numRuns: 400, seed: 6 },
  );
  // 'too-long' by byte count needs > 4 GiB of guest RAM; by descriptor count it needs long valid
  // chains, which random garbage rarely builds: both are covered by the unit tests.
  for (const r of ['loop', 'out-of-range', 'nested-indirect', 'bad-indirect-length', 'direction', 'index', 'indirect-not-negotiated']) {
    assert.ok(seen.has(r), `reason ${r} never produced; seen: ${[...seen].join(', ')}`);
  }
});

// --- (c) used ring ------------------------------------------------------------------------------

test('(c) used entries pushed in any completion order read back exactly, across the 16-bit wrap', () => {
  const { memory } = guardedMemory();
  const size = 8;
  const driver = new VirtqDriver(memory, { size, ringBase: 0x1000, bufferBase: 0x4000, bufferEnd: A.size });
  const queue = new SplitQueue(memory, { ...driver.layout, maxSize: size, eventIdx: false, indirectDesc: false });
  // Bring both indices near the wrap so that runs cross it. The queue and driver carry over from
  // run to run (each run returns everything it took), so a failure's shrunk case may mislead:
  // read the first failing run.
  for (let i = 0; i < 65530; i++) {
    driver.postBuffers([{ addr: 0x4000, len: 1 }], []);
    queue.pushUsed(popOrThrow(queue).head, 0);
    driver.collectUsed();
  }
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 0xffff_ffff)), { minLength: 1, maxLength: size / 2 }),
      fc.array(fc.nat(), { minLength: size, maxLength: size }),
      (lens, order) => {
        const heads = lens.map(() => driver.postBuffers([{ addr: 0x4000, len: 1 }], [{ addr: 0x5000, len: 4 }], { publish: false }));
        driver.publish();
        const chains = heads.map(() => popOrThrow(queue));
        // A device completes requests in any order: a permutation from the random keys.
        const perm = chains.map((c, i) => ({ c, key: order[i] as number, i })).sort((x, y) => x.key - y.key || x.i - y.i);
        const pushed = perm.map(({ c }, k) => ({ head: c.head, len: lens[k] as number }));
        for (const p of pushed) queue.pushUsed(p.head, p.len);
        assert.equal(driver.collectUsed(), pushed);
        assert.is(driver.usedIdx, queue.nextUsed);
        assert.is(queue.inFlight, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test.run();
