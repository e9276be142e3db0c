// Property: random sequences of IN/OUT requests (some beyond capacity, some with data not a
// multiple of 512, split over random descriptors) against a shadow model of the disk. After each
// request the status is what the model predicts, every IN returned the model's bytes, and at the
// end the file equals the model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { SplitQueue } from '../../src/devices/virtio/queue.js';
import { VirtqDriver, type GuestBuffer } from '../helpers/virtq-driver.js';
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlock } from '../../src/devices/virtio/block/index.js';

const SECTOR = 512;
const SECTORS = 48;
const dir = mkdtempSync(join(tmpdir(), 'tsvmm-blk-prop-'));

interface Op {
  write: boolean;
  sector: number;
  /** Data bytes: mostly whole sectors, sometimes not. */
  length: number;
  /** How the data is split over descriptors (fractions), and whether the status shares the last one. */
  cuts: number[];
  statusAlone: boolean;
  indirect: boolean;
  fill: number;
}

const opArb: fc.Arbitrary<Op> = fc.record({
  write: fc.boolean(),
  sector: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: SECTORS - 1 }) }, { weight: 1, arbitrary: fc.integer({ min: SECTORS - 4, max: SECTORS + 8 }) }),
  length: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 8 }).map((n) => n * SECTOR) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 4096 }) },
  ),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
  statusAlone: fc.boolean(),
  indirect: fc.boolean(),
  fill: fc.integer({ min: 0, max: 255 }),
});

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}

/** Splits n bytes into pieces at the given fractions (some pieces may be empty). */
function split(n: number, cuts: number[]): number[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * n)))].sort((a, b) => a - b);
  const out: number[] = [];
  let at = 0;
  for (const p of points) {
    out.push(p - at);
    at = p;
  }
  out.push(n - at);
  return out.filter((x) => x > 0);
}

function pattern(len: number, seed: number): Uint8Array {
  const d = new Uint8Array(len);
  for (let i = 0; i < len; i++) d[i] = (seed + i * 31) & 0xff;
  return d;
}

/** The deadline only catches a hang: a slow machine just polls longer. */
async function waitOne(driver: VirtqDriver): Promise<{ head: number; len: number }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = driver.collectUsed();
    if (got.length > 0) {
      assert.is(got.length, 1);
      return got[0] as { head: number; len: number };
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for a used entry');
    await new Promise((res) => setTimeout(res, 1));
  }
}

test('IN/OUT sequences agree with a shadow model of the disk', async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 255 }), async (ops, seed) => {
      const path = join(dir, `prop${run++}.img`);
      const model = pattern(SECTORS * SECTOR, seed);
      writeFileSync(path, model);
      const dev = await VirtioBlock.open({ path });
      const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x40000 }]);
      const driver = new VirtqDriver(memory, { size: 16, ringBase: 0x1000, bufferBase: 0x4000, bufferEnd: 0x40000 });
      const queue = new SplitQueue(memory, { ...driver.layout, index: 0, maxSize: 256, eventIdx: false, indirectDesc: true });
      const resets: string[] = [];
      dev.activate({ memory, queues: [queue], features: dev.features, interrupt: () => undefined, needsReset: (r) => resets.push(r) });
      try {
        for (const op of ops) {
          driver.resetBuffers();
          const inRange = op.sector * SECTOR + op.length <= model.length;
          const valid = inRange && op.length % SECTOR === 0;
          const expected = valid ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
          const pieces = split(op.length, op.cuts);
          let head: number;
          let writable: GuestBuffer[];
          if (op.write) {
            const data = pattern(op.length, op.fill);
            let at = 0;
            const readable = [header(VIRTIO_BLK_T_OUT, op.sector), ...pieces.map((p) => data.subarray(at, (at += p)))];
            head = driver.post(readable, [1], { indirect: op.indirect });
            writable = driver.buffersOf(head)?.writable ?? [];
            if (valid) model.set(data, op.sector * SECTOR);
          } else {
            const lens = [...pieces];
            if (op.statusAlone || lens.length === 0) lens.push(1);
            else lens[lens.length - 1] = (lens[lens.length - 1] as number) + 1;
            head = driver.post([header(VIRTIO_BLK_T_IN, op.sector)], lens, { indirect: op.indirect });
            writable = driver.buffersOf(head)?.writable ?? [];
          }
          dev.notify(0);
          const used = await waitOne(driver);
          assert.is(used.head, head);
          const total = writable.reduce((n, b) => n + b.len, 0);
          assert.is(used.len, total);
          const last = writable[writable.length - 1] as GuestBuffer;
          assert.is(memory.readU8(last.addr + last.len - 1), expected, `op ${JSON.stringify(op)}`);
          if (!op.write && valid) {
            const got = new Uint8Array(op.length);
            let at = 0;
            for (const b of writable) {
              const n = Math.min(b.len, op.length - at);
              if (n > 0) got.set(memory.slice(b.addr, n), at);
              at += n;
            }
            assert.equal(got, model.subarray(op.sector * SECTOR, op.sector * SECTOR + op.length));
          }
        }
      } finally {
        await dev.dispose();
      }
      assert.equal(resets, []);
      assert.equal(new Uint8Array(readFileSync(path)), model);
      rmSync(path);
    }),
    { numRuns: 60 },
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
