// The segment FIFO of a vsock connection (src/devices/vsock/byte-queue.ts): bytes come out in
// order, views handed out are never overwritten, and the memory held stays within the stated
// bound whatever the chunk sizes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ByteQueue, COALESCE_BELOW } from '../../src/devices/vsock/byte-queue.js';

type Step = { push: number; owned: boolean } | { take: number } | { peekConsume: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ push: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 3 * COALESCE_BELOW })), owned: fc.boolean() }),
  fc.record({ take: fc.integer({ min: 0, max: 3 * COALESCE_BELOW }) }),
  fc.record({ peekConsume: fc.integer({ min: 0, max: 3 * COALESCE_BELOW }) }),
);

test('bytes come out in order; handed-out views keep their bytes; memory stays within 2 * length + segment + head', () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
      const q = new ByteQueue();
      const model: number[] = [];
      const out: number[] = [];
      const handedOut: { view: Uint8Array; copy: number[] }[] = [];
      let next = 0;
      for (const s of steps) {
        if ('push' in s) {
          const chunk = Uint8Array.from({ length: s.push }, () => next++ & 0xff);
          model.push(...chunk);
          q.push(chunk, s.owned);
          if (!s.owned) chunk.fill(0xee); // a guest-memory view may change after the call
        } else if ('take' in s) {
          const queued = model.length - out.length;
          const got = q.take(s.take);
          assert.is(got.byteLength, Math.min(s.take, queued));
          handedOut.push({ view: got, copy: [...got] });
          out.push(...got);
        } else {
          const head = q.peek();
          if (!head) {
            assert.is(q.length, 0);
            continue;
          }
          const n = Math.min(s.peekConsume, head.byteLength);
          handedOut.push({ view: head.subarray(0, n), copy: [...head.subarray(0, n)] });
          out.push(...head.subarray(0, n));
          q.consume(n);
        }
        assert.is(q.length, model.length - out.length);
        // The largest segment a push can make is its own chunk (3 * COALESCE_BELOW here).
        assert.ok(q.allocatedBytes <= 2 * q.length + COALESCE_BELOW + 3 * COALESCE_BELOW, `allocated ${q.allocatedBytes} for ${q.length}`);
        assert.ok(q.segmentCount <= (2 * q.length) / COALESCE_BELOW + 2);
      }
      out.push(...q.take(q.length));
      assert.equal(out, model.map((x) => x & 0xff));
      for (const h of handedOut) assert.equal([...h.view], h.copy, 'a view handed out was overwritten');
    }),
    { numRuns: 300 },
  );
});

test('one byte at a time coalesces into shared segments', () => {
  const q = new ByteQueue();
  for (let i = 0; i < 10_000; i++) q.push(Uint8Array.of(i & 0xff), false);
  assert.is(q.length, 10_000);
  assert.is(q.segmentCount, Math.ceil(10_000 / COALESCE_BELOW));
  assert.is(q.take(5000).byteLength, 5000);
  assert.is(q.clear(), 5000);
  assert.is(q.length, 0);
  assert.is(q.peek(), undefined);
});

test('a large owned chunk is kept by reference, a large borrowed one copied', () => {
  const q = new ByteQueue();
  const owned = new Uint8Array(COALESCE_BELOW);
  const borrowed = new Uint8Array(COALESCE_BELOW).fill(1);
  q.push(owned, true);
  q.push(borrowed, false);
  assert.is(q.peek()?.buffer, owned.buffer);
  q.consume(COALESCE_BELOW);
  assert.is.not(q.peek()?.buffer, borrowed.buffer);
  assert.is(q.peek()?.[0], 1);
});

test.run();
