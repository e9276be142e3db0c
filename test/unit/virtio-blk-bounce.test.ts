// The virtio-blk read bounce-buffer pool.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BouncePool, sizeClass } from '../../src/devices/virtio/block/bounce-pool.js';

test('size classes: powers of two from one page', () => {
  assert.equal([0, 1, 4096, 4097, 65536, 1 << 20, (1 << 20) + 512].map(sizeClass), [4096, 4096, 4096, 8192, 65536, 1 << 20, 2 << 20]);
  assert.throws(() => sizeClass(-1), (e: unknown) => e instanceof RangeError);
});

test('a buffer given back is reused for the next read of its class, and never handed out twice', () => {
  const pool = new BouncePool();
  const a = pool.take(512);
  assert.is(a.byteLength, 512);
  const b = pool.take(4096);
  assert.is.not(a.buffer, b.buffer, 'two reads in flight get two buffers');
  pool.give(a);
  assert.is(pool.pooled, 4096);
  const c = pool.take(4000);
  assert.is(c.buffer, a.buffer, 'reused');
  assert.is(c.byteLength, 4000);
  assert.is(pool.pooled, 0);
  assert.is.not(pool.take(4096).buffer, a.buffer, 'taken again before it was given back: a new one');
  assert.is.not(pool.take(8192).buffer, b.buffer);
});

test('the pool keeps at most its cap; what does not fit is dropped', () => {
  const pool = new BouncePool(3 * 4096);
  const bufs = [pool.take(4096), pool.take(4096), pool.take(4096), pool.take(4096)];
  for (const b of bufs) pool.give(b);
  assert.is(pool.pooled, 3 * 4096);
  pool.give(new Uint8Array(4096)); // over the cap
  assert.is(pool.pooled, 3 * 4096);
  const odd = new Uint8Array(5000);
  new BouncePool().give(odd); // not from take(): not a size class, ignored
});

test.run();
