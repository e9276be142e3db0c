import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { SplitQueue, needEvent, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from '../../src/devices/virtio/queue.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, type DescriptorChain } from '../../src/devices/virtio/chain.js';
import { VirtioChainError, VirtioQueueError, type VirtioChainErrorReason } from '../../src/devices/virtio/errors.js';
import { VirtqDriver } from '../helpers/virtq-driver.js';

const N = VIRTQ_DESC_F_NEXT;
const W = VIRTQ_DESC_F_WRITE;
const I = VIRTQ_DESC_F_INDIRECT;

interface Setup {
  memory: GuestMemory;
  driver: VirtqDriver;
  queue: SplitQueue;
}

function setup(opts: { size?: number; maxSize?: number; eventIdx?: boolean; indirectDesc?: boolean; memory?: GuestMemory } = {}): Setup {
  const memory = opts.memory ?? GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x20000 }]);
  const size = opts.size ?? 8;
  const eventIdx = opts.eventIdx ?? false;
  const driver = new VirtqDriver(memory, { size, ringBase: 0x1000, bufferBase: 0x8000, bufferEnd: 0x20000, eventIdx });
  const queue = new SplitQueue(memory, {
    ...driver.layout,
    index: 0,
    maxSize: opts.maxSize ?? 256,
    eventIdx,
    indirectDesc: opts.indirectDesc ?? true,
  });
  return { memory, driver, queue };
}

function bytes(...v: number[]): Uint8Array {
  return Uint8Array.from(v);
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an exception');
}

function chainError(fn: () => unknown, reason: VirtioChainErrorReason, message?: RegExp): VirtioChainError {
  const e = thrown(fn);
  assert.instance(e, VirtioChainError);
  const err = e as VirtioChainError;
  assert.is(err.reason, reason, err.message);
  if (message) assert.match(err.message, message);
  return err;
}

function queueError(fn: () => unknown, reason: string, message?: RegExp): VirtioQueueError {
  const e = thrown(fn);
  assert.instance(e, VirtioQueueError);
  const err = e as VirtioQueueError;
  assert.is(err.reason, reason, err.message);
  if (message) assert.match(err.message, message);
  return err;
}

function pop(q: SplitQueue): DescriptorChain {
  const c = q.popAvail();
  if (!c) throw new Error('expected a chain');
  return c;
}

// --- configuration -------------------------------------------------------------------------------

test('configuration: size must be a power of two within the maximum', () => {
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 }]);
  const base = { desc: 0x1000, driver: 0x2000, device: 0x3000, eventIdx: false, indirectDesc: false, index: 2 };
  for (const size of [0, 3, 6, 0.5, Number.NaN]) {
    queueError(() => new SplitQueue(memory, { ...base, size, maxSize: 256 }), 'bad-size', /virtqueue 2: size .* is not a power of two/);
  }
  queueError(() => new SplitQueue(memory, { ...base, size: 512, maxSize: 256 }), 'bad-size', /size 512/);
  queueError(() => new SplitQueue(memory, { ...base, size: 256, maxSize: 65536 }), 'bad-size', /maximum size 65536/);
  new SplitQueue(memory, { ...base, size: 256, maxSize: 256 });
  new SplitQueue(memory, { ...base, size: 1, maxSize: 1 });
});

test('configuration: ring parts aligned (16/2/4) and inside guest memory for their full size', () => {
  const memory = GuestMemory.fromSizes([
    { guestPhysAddr: 0, size: 0x10000 },
    { guestPhysAddr: 0x20000, size: 0x10000 },
  ]);
  const ok = { desc: 0x1000, driver: 0x2000, device: 0x3000, size: 256, maxSize: 256, eventIdx: true, indirectDesc: true };
  new SplitQueue(memory, ok);
  new SplitQueue(memory, { ...ok, desc: 0x1010, driver: 0x2002, device: 0x3004 });
  queueError(() => new SplitQueue(memory, { ...ok, desc: 0x1008 }), 'bad-address', /descriptor table at 0x1008 is not 16-byte aligned/);
  queueError(() => new SplitQueue(memory, { ...ok, driver: 0x2001 }), 'bad-address', /available ring .* at 0x2001 is not 2-byte aligned/);
  queueError(() => new SplitQueue(memory, { ...ok, device: 0x3002 }), 'bad-address', /used ring .* at 0x3002 is not 4-byte aligned/);
  // 16*256 = 4096 bytes: one byte short of fitting before the gap.
  queueError(() => new SplitQueue(memory, { ...ok, desc: 0x10000 - 0xff0 }), 'bad-address', /descriptor table \[0xf010, \+4096\)/);
  new SplitQueue(memory, { ...ok, desc: 0x10000 - 0x1000 });
  // avail: 6 + 2*256 = 518 bytes; used: 6 + 8*256 = 2054 bytes.
  queueError(() => new SplitQueue(memory, { ...ok, driver: 0x10000 - 516 }), 'bad-address', /\+518\)/);
  queueError(() => new SplitQueue(memory, { ...ok, device: 0x30000 - 2052 }), 'bad-address', /\+2054\)/);
  queueError(() => new SplitQueue(memory, { ...ok, device: 0x18000 }), 'bad-address', /not inside one guest memory region/);
  queueError(() => new SplitQueue(memory, { ...ok, desc: -16 }), 'bad-address');
  queueError(() => new SplitQueue(memory, { ...ok, desc: 2 ** 60 }), 'bad-address');
});

// --- chains --------------------------------------------------------------------------------------

test('an empty queue pops nothing', () => {
  const { queue } = setup();
  assert.is(queue.popAvail(), undefined);
  assert.is(queue.pending(), 0);
});

test('a readable + writable chain: zero-copy views, lengths, reader/writer, used entry', () => {
  const { memory, driver, queue } = setup();
  const head = driver.post([bytes(1, 2, 3), bytes(4, 5)], [3, 4]);
  assert.is(queue.pending(), 1);
  const chain = pop(queue);
  assert.is(chain.head, head);
  assert.is(chain.readable.length, 2);
  assert.is(chain.writable.length, 2);
  assert.is(chain.readableLength, 5);
  assert.is(chain.writableLength, 7);
  assert.is(chain.descriptorCount, 4);
  assert.equal([...(chain.readable[0] as Uint8Array)], [1, 2, 3]);
  assert.equal([...chain.readAll()], [1, 2, 3, 4, 5]);
  assert.equal([...chain.readAll(4)], [1, 2, 3, 4]);
  assert.equal([...chain.readAll(0)], []);

  const r = chain.reader();
  const two = new Uint8Array(2);
  assert.is(r.read(two), 2);
  assert.equal([...two], [1, 2]);
  assert.is(r.skip(1), 1);
  const rest = new Uint8Array(10);
  assert.is(r.read(rest), 2);
  assert.equal([...rest.subarray(0, 2)], [4, 5]);
  assert.is(r.remaining, 0);
  assert.is(r.consumed, 5);

  const w = chain.writer();
  assert.is(w.write(bytes(9, 8)), 2);
  assert.is(w.write(bytes(7, 6, 5, 4, 3, 2, 1)), 5);
  assert.is(w.written, 7);
  assert.is(w.remaining, 0);
  // Zero-copy: the bytes are in guest memory already.
  const bufs = driver.buffersOf(head);
  assert.ok(bufs);
  assert.equal([...memory.slice(bufs.writable[0]!.addr, 3)], [9, 8, 7]);
  assert.equal([...driver.readWritten(head, 7)], [9, 8, 7, 6, 5, 4, 3]);

  queue.pushUsed(chain.head, w.written);
  assert.is(queue.inFlight, 0);
  assert.equal(driver.collectUsed(), [{ head, len: 7 }]);
  assert.is(driver.freeCount, 8);
});

test('writer.take hands out zero-copy pieces across descriptor boundaries', () => {
  const { driver, queue } = setup();
  const head = driver.post([], [2, 3, 4]);
  const w = pop(queue).writer();
  const pieces = w.take(4);
  assert.equal(pieces.map((p) => p.byteLength), [2, 2]);
  for (const p of pieces) p.fill(0xaa);
  assert.is(w.write(bytes(1, 2, 3, 4, 5, 6)), 5);
  assert.equal([...driver.readWritten(head, 9)], [0xaa, 0xaa, 0xaa, 0xaa, 1, 2, 3, 4, 5]);
});

test('NEXT chains follow next indices in any order', () => {
  const { memory, driver, queue } = setup();
  memory.write(0x9000, bytes(10, 11));
  memory.write(0x9100, bytes(12));
  driver.writeDesc(5, { addr: 0x9000, len: 2, flags: N, next: 2 });
  driver.writeDesc(2, { addr: 0x9100, len: 1, flags: N, next: 7 });
  driver.writeDesc(7, { addr: 0x9200, len: 16, flags: W, next: 1 }); // next ignored without NEXT
  driver.postRawHead(5);
  const chain = pop(queue);
  assert.is(chain.head, 5);
  assert.equal([...chain.readAll()], [10, 11, 12]);
  assert.is(chain.writableLength, 16);
  assert.is(chain.writable[0]!.byteOffset, 0x9200);
});

test('indirect tables: the whole chain in one table, and a direct prefix followed by a table', () => {
  const { memory, driver, queue } = setup();
  const head = driver.post([bytes(1, 2), bytes(3)], [5, 6], { indirect: true });
  assert.is(driver.freeCount, 7);
  const chain = pop(queue);
  assert.is(chain.head, head);
  assert.equal([...chain.readAll()], [1, 2, 3]);
  assert.equal(chain.writable.map((v) => v.byteLength), [5, 6]);
  assert.is(chain.descriptorCount, 4);

  // §2.7.5.3.2: zero or more direct descriptors, then one INDIRECT; WRITE on it is ignored.
  memory.write(0x9000, bytes(7));
  memory.write(0x9010, bytes(8, 9));
  driver.writeDescAt(0xa000, { addr: 0x9010, len: 2, flags: N, next: 1 });
  driver.writeDescAt(0xa010, { addr: 0x9100, len: 8, flags: W, next: 0 });
  driver.writeDesc(3, { addr: 0x9000, len: 1, flags: N, next: 4 });
  driver.writeDesc(4, { addr: 0xa000, len: 32, flags: I | W, next: 0 });
  driver.postRawHead(3);
  const mixed = pop(queue);
  assert.equal([...mixed.readAll()], [7, 8, 9]);
  assert.is(mixed.writableLength, 8);
  assert.is(mixed.descriptorCount, 3);
});

test('a zero-length buffer is a valid (empty) view', () => {
  const { driver, queue } = setup();
  driver.post([new Uint8Array(0)], [0]);
  const c = pop(queue);
  assert.is(c.readableLength, 0);
  assert.is(c.writable.length, 1);
});

// --- malformed chains: every reason ------------------------------------------------------------

test('loop: NEXT links that revisit a descriptor end in an error (direct and indirect)', () => {
  const { driver, queue } = setup();
  driver.writeDesc(0, { addr: 0x9000, len: 1, flags: N, next: 1 });
  driver.writeDesc(1, { addr: 0x9000, len: 1, flags: N, next: 0 });
  driver.postRawHead(0);
  chainError(() => queue.popAvail(), 'loop', /chain at head 0: more than 8 descriptors .* loop/);

  driver.writeDesc(6, { addr: 0x9000, len: 1, flags: N, next: 6 });
  driver.postRawHead(6);
  chainError(() => queue.popAvail(), 'loop');

  driver.writeDescAt(0xa000, { addr: 0x9000, len: 1, flags: N, next: 1 });
  driver.writeDescAt(0xa010, { addr: 0x9000, len: 1, flags: N, next: 0 });
  driver.writeDesc(2, { addr: 0xa000, len: 32, flags: I, next: 0 });
  driver.postRawHead(2);
  chainError(() => queue.popAvail(), 'loop', /indirect descriptor \d \(table at 0xa000, 2 entries\) of the chain at head 2/);
});

test('too-long: more descriptors in one chain than the queue maximum', () => {
  const { driver, queue } = setup({ size: 8, maxSize: 8 });
  for (let i = 0; i < 8; i++) driver.writeDescAt(0xa000 + 16 * i, { addr: 0x9000, len: 1, flags: i < 7 ? N : 0, next: i + 1 });
  driver.writeDesc(0, { addr: 0x9000, len: 1, flags: N, next: 1 });
  driver.writeDesc(1, { addr: 0xa000, len: 128, flags: I, next: 0 });
  driver.postRawHead(0);
  chainError(() => queue.popAvail(), 'too-long', /more than 8 descriptors in one chain/);
  // The same table alone is fine.
  driver.writeDesc(2, { addr: 0xa000, len: 128, flags: I, next: 0 });
  driver.postRawHead(2);
  assert.is(pop(queue).descriptorCount, 8);
});

test('out-of-range: buffers and tables outside guest memory, across the gap, beyond 2^53', () => {
  const memory = GuestMemory.fromSizes([
    { guestPhysAddr: 0, size: 0x10000 },
    { guestPhysAddr: 0x20000, size: 0x1000 },
  ]);
  const { driver, queue } = setup({ memory });
  // Buffer region in setup() is 0x8000..0x20000, but only ..0x10000 exists: we poke by hand.
  const cases: [number | bigint, number, RegExp][] = [
    [0x10000, 1, /descriptor 0 of the chain at head 0: address 0x10000 \+ 1 outside guest memory/],
    [0xf000, 0x1001, /address 0xf000 \+ 4097 outside/],
    [0x18000, 4096, /address 0x18000 \+ 4096/],
    [0x20800, 0x1000, /0x20800/],
    [0xffff_ffff_ffff_f000n, 16, /address 0xfffffffffffff000 \+ 16/],
    [2n ** 53n, 1, /0x20000000000000/],
  ];
  for (const [addr, len, msg] of cases) {
    driver.writeDesc(0, { addr, len, flags: 0, next: 0 });
    driver.postRawHead(0);
    const err = chainError(() => queue.popAvail(), 'out-of-range', msg);
    assert.ok(err.returnable);
    queue.pushUsed(err.head, 0);
  }
  driver.writeDesc(0, { addr: 0xfff0, len: 0x20, flags: I, next: 0 });
  driver.postRawHead(0);
  chainError(() => queue.popAvail(), 'out-of-range', /indirect table 0xfff0 \+ 32 outside guest memory/);
});

test('nested-indirect, bad-indirect-length, indirect-not-negotiated', () => {
  const { driver, queue } = setup({ maxSize: 16 });
  driver.writeDescAt(0xa000, { addr: 0xb000, len: 16, flags: I, next: 0 });
  driver.writeDesc(0, { addr: 0xa000, len: 16, flags: I, next: 0 });
  driver.postRawHead(0);
  chainError(() => queue.popAvail(), 'nested-indirect', /indirect descriptor 0 .* inside an indirect table/);

  for (const [len, msg] of [
    [0, /length 0 is not a non-zero multiple of 16/],
    [17, /length 17/],
    [16 * 17, /17 entries exceeds the queue maximum of 16/],
  ] as const) {
    driver.writeDesc(1, { addr: 0xa000, len, flags: I, next: 0 });
    driver.postRawHead(1);
    chainError(() => queue.popAvail(), 'bad-indirect-length', msg);
  }

  const plain = setup({ indirectDesc: false });
  plain.driver.post([bytes(1)], [1], { indirect: true });
  chainError(() => plain.queue.popAvail(), 'indirect-not-negotiated', /VIRTIO_F_INDIRECT_DESC was not negotiated/);
});

test('direction: a readable descriptor after a writable one (direct and indirect)', () => {
  const { driver, queue } = setup();
  driver.writeDesc(0, { addr: 0x9000, len: 4, flags: N, next: 1 });
  driver.writeDesc(1, { addr: 0x9100, len: 4, flags: N | W, next: 2 });
  driver.writeDesc(2, { addr: 0x9200, len: 4, flags: 0, next: 0 });
  driver.postRawHead(0);
  chainError(() => queue.popAvail(), 'direction', /descriptor 2 of the chain at head 0: device-readable descriptor after a device-writable/);

  driver.writeDescAt(0xa000, { addr: 0x9100, len: 4, flags: N | W, next: 1 });
  driver.writeDescAt(0xa010, { addr: 0x9200, len: 4, flags: 0, next: 0 });
  driver.writeDesc(3, { addr: 0xa000, len: 32, flags: I, next: 0 });
  driver.postRawHead(3);
  chainError(() => queue.popAvail(), 'direction', /indirect descriptor 1/);
});

test('index: a head or next outside its table; a bad head cannot be returned', () => {
  const { driver, queue } = setup();
  driver.postRawHead(8);
  const bad = chainError(() => queue.popAvail(), 'index', /head of the chain at head 8: index 8 is outside the descriptor table of 8 entries/);
  assert.not.ok(bad.returnable);
  queueError(() => queue.pushUsed(bad.head, 0), 'bad-used-entry', /used head 8/);

  driver.writeDesc(0, { addr: 0x9000, len: 4, flags: N, next: 8 });
  driver.postRawHead(0);
  const err = chainError(() => queue.popAvail(), 'index', /descriptor 0 of the chain at head 0: next index 8 is outside the descriptor table/);
  assert.ok(err.returnable);

  driver.writeDescAt(0xa000, { addr: 0x9000, len: 4, flags: N, next: 2 });
  driver.writeDesc(1, { addr: 0xa000, len: 32, flags: I, next: 0 });
  driver.postRawHead(1);
  chainError(() => queue.popAvail(), 'index', /next index 2 is outside the indirect table of 2 entries/);
});

test('a malformed chain consumes its entry: the device fails it and carries on', () => {
  const { driver, queue } = setup();
  driver.writeDesc(7, { addr: 0x9000, len: 1, flags: N, next: 7 });
  driver.postRawHead(7);
  const good = driver.post([bytes(42)], []);
  const err = chainError(() => queue.popAvail(), 'loop');
  queue.pushUsed(err.head, 0);
  const c = pop(queue);
  assert.is(c.head, good);
  queue.pushUsed(c.head, 0);
  assert.equal(driver.collectUsed(), [
    { head: 7, len: 0 },
    { head: good, len: 0 },
  ]);
});

// --- ring indices --------------------------------------------------------------------------------

test('avail-overrun: avail.idx more than size ahead is a queue error and consumes nothing', () => {
  const { driver, queue } = setup();
  driver.setAvailIdx(9);
  queueError(() => queue.popAvail(), 'avail-overrun', /avail.idx 9 is 9 entries ahead of the device's 0, more than the queue size 8/);
  assert.is(queue.nextAvail, 0);
  driver.setAvailIdx(0xffff); // "one behind": as far ahead as it gets
  queueError(() => queue.popAvail(), 'avail-overrun');
  queueError(() => queue.enableNotification(), 'avail-overrun');
  driver.setAvailIdx(8); // exactly size ahead is legal (a full ring)
  for (let i = 0; i < 8; i++) driver.writeDesc(i, { addr: 0x9000, len: 1, flags: 0, next: 0 });
  for (let i = 0; i < 8; i++) driver.writeAvailEntry(i, i);
  for (let i = 0; i < 8; i++) assert.is(pop(queue).head, i);
  assert.is(queue.popAvail(), undefined);
});

test('pushUsed rejects a bad head, a non-u32 length, and returning more than was taken', () => {
  const { driver, queue } = setup();
  queueError(() => queue.pushUsed(0, 0), 'bad-used-entry', /no chain in flight/);
  driver.post([bytes(1)], []);
  pop(queue);
  queueError(() => queue.pushUsed(8, 0), 'bad-used-entry', /used head 8/);
  queueError(() => queue.pushUsed(0, -1), 'bad-used-entry', /used length -1/);
  queueError(() => queue.pushUsed(0, 2 ** 32), 'bad-used-entry');
  queue.pushUsed(0, 0xffff_ffff);
  assert.equal(driver.collectUsed(), [{ head: 0, len: 0xffff_ffff }]);
});

/** Cycles n single-buffer chains through the queue (no allocation: one fixed buffer). */
function cycle(s: Setup, n: number): void {
  for (let i = 0; i < n; i++) {
    const head = s.driver.postBuffers([{ addr: 0x9000, len: 1 }], []);
    const c = pop(s.queue);
    if (c.head !== head) throw new Error(`popped ${c.head}, posted ${head}`);
    s.queue.pushUsed(c.head, i & 0xff);
    const used = s.driver.collectUsed();
    if (used.length !== 1 || used[0]!.head !== head || used[0]!.len !== (i & 0xff)) throw new Error(`bad used entry at ${i}`);
  }
}

test('avail and used indices wrap at 65536, in batches that straddle the wrap', () => {
  const s = setup({ size: 4 });
  cycle(s, 65534);
  assert.is(s.queue.nextAvail, 65534);
  assert.is(s.queue.nextUsed, 65534);
  for (let round = 0; round < 3; round++) {
    s.driver.resetBuffers();
    // Four chains, one queue descriptor each: two direct, two through indirect tables.
    const heads = [0, 1, 2, 3].map((k) => s.driver.post([bytes(round, k)], k < 2 ? [] : [2], { publish: false, indirect: k >= 2 }));
    s.driver.publish();
    assert.is(s.queue.pending(), 4);
    const chains = heads.map(() => pop(s.queue));
    assert.is(s.queue.popAvail(), undefined);
    chains.forEach((c, k) => {
      assert.is(c.head, heads[k]);
      assert.equal([...c.readAll()], [round, k]);
      s.queue.pushUsed(c.head, k);
    });
    assert.equal(s.driver.collectUsed(), heads.map((head, k) => ({ head, len: k })));
  }
  assert.is(s.queue.nextAvail, (65534 + 12) & 0xffff);
  assert.is(s.driver.usedIdx, 10);
});

// --- notifications -------------------------------------------------------------------------------

test('vring_need_event: the event index inside [old, new) modulo 2^16', () => {
  assert.ok(needEvent(0, 1, 0));
  assert.not.ok(needEvent(1, 1, 0));
  assert.ok(needEvent(5, 8, 3));
  assert.ok(needEvent(7, 8, 3));
  assert.not.ok(needEvent(8, 8, 3));
  assert.not.ok(needEvent(2, 8, 3));
  assert.ok(needEvent(65535, 0, 65535));
  assert.ok(needEvent(65534, 1, 65530));
  assert.ok(needEvent(0, 1, 65535));
  assert.not.ok(needEvent(1, 1, 65535));
  assert.not.ok(needEvent(5, 5, 5));
});

test('EVENT_IDX: interrupt exactly when used.idx passes used_event, across 65535', () => {
  const s = setup({ size: 4, eventIdx: true });
  const { driver, queue } = s;
  const push = (n: number): void => {
    for (let i = 0; i < n; i++) {
      driver.postBuffers([{ addr: 0x9000, len: 1 }], []);
      queue.pushUsed(pop(queue).head, 0);
      driver.collectUsed();
    }
  };
  // The first decision always notifies (nothing is known about what the driver has seen).
  push(1);
  assert.ok(queue.needsNotification());
  assert.not.ok(queue.needsNotification(), 'nothing pushed since');
  driver.setUsedEvent(3); // "interrupt me when entry 3 is used", i.e. when used.idx reaches 4
  push(2);
  assert.not.ok(queue.needsNotification(), 'used.idx 3 has not passed used_event 3');
  push(1);
  assert.ok(queue.needsNotification(), 'used.idx 4 passed 3');
  driver.setUsedEvent(1); // behind us
  push(3);
  assert.not.ok(queue.needsNotification());
  // The flag is ignored with EVENT_IDX (§2.7.7).
  driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  driver.setUsedEvent(7);
  push(1);
  assert.ok(queue.needsNotification());
  driver.setAvailFlags(0);

  cycle(s, 65534 - queue.nextUsed);
  assert.is(queue.nextUsed, 65534);
  queue.needsNotification();
  driver.setUsedEvent(65535);
  push(1); // used.idx 65535: entry 65534 written
  assert.not.ok(queue.needsNotification());
  push(1); // used.idx 0: entry 65535 written
  assert.ok(queue.needsNotification());
  driver.setUsedEvent(0);
  push(2); // used.idx 2, passing 0 in a batch
  assert.ok(queue.needsNotification());
});

test('without EVENT_IDX: notify unless VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
  const { driver, queue } = setup();
  driver.post([bytes(1)], []);
  queue.pushUsed(pop(queue).head, 0);
  assert.ok(queue.needsNotification());
  driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.not.ok(queue.needsNotification());
  driver.setUsedEvent(0); // ignored
  assert.not.ok(queue.needsNotification());
});

test('enable/disableNotification without EVENT_IDX toggle VIRTQ_USED_F_NO_NOTIFY; enable reports pending chains', () => {
  const { driver, queue } = setup();
  queue.disableNotification();
  assert.is(driver.usedFlags, VIRTQ_USED_F_NO_NOTIFY);
  assert.not.ok(driver.post([bytes(1)], []) === undefined);
  assert.is(driver.publish(), false, 'driver sees NO_NOTIFY');
  assert.ok(queue.enableNotification(), 'a chain is pending');
  assert.is(driver.usedFlags, 0);
  pop(queue);
  assert.not.ok(queue.enableNotification());
  driver.post([bytes(2)], [], { publish: false });
  assert.ok(driver.publish(), 'driver must notify');
});

test('enable/disableNotification with EVENT_IDX: avail_event tracks the next index', () => {
  const { driver, queue } = setup({ eventIdx: true });
  assert.not.ok(queue.enableNotification());
  assert.is(driver.availEvent, 0);
  driver.post([bytes(1)], [], { publish: false });
  assert.ok(driver.publish(), 'avail.idx 0 -> 1 passes avail_event 0');
  queue.disableNotification(); // writes nothing
  assert.is(driver.availEvent, 0);
  pop(queue);
  driver.post([bytes(2)], [], { publish: false });
  assert.not.ok(driver.publish(), 'avail_event 0 already passed');
  pop(queue);
  assert.not.ok(queue.enableNotification());
  assert.is(driver.availEvent, 2);
  driver.post([bytes(3)], [], { publish: false });
  driver.post([bytes(4)], [], { publish: false });
  assert.ok(driver.publish());
  assert.is(queue.pending(), 2);
});

test('reset forgets progress; a fresh driver starts at index 0 again', () => {
  const { memory, driver, queue } = setup();
  driver.post([bytes(1)], []);
  queue.pushUsed(pop(queue).head, 1);
  assert.is(queue.nextAvail, 1);
  queue.reset();
  assert.is(queue.nextAvail, 0);
  assert.is(queue.nextUsed, 0);
  assert.is(queue.inFlight, 0);
  const fresh = new VirtqDriver(memory, { size: 8, ringBase: 0x1000, bufferBase: 0x8000, bufferEnd: 0x20000 });
  const head = fresh.post([bytes(5)], [1]);
  const c = pop(queue);
  assert.is(c.head, head);
  queue.pushUsed(c.head, 1);
  assert.equal(fresh.collectUsed(), [{ head, len: 1 }]);
});

test('error messages say which value was wrong', () => {
  const { driver, queue } = setup();
  driver.writeDesc(3, { addr: 0x7fff_0000, len: 4096, flags: W, next: 0 });
  driver.postRawHead(3);
  const err = chainError(() => queue.popAvail(), 'out-of-range');
  assert.is(err.message, 'descriptor 3 of the chain at head 3: address 0x7fff0000 + 4096 outside guest memory');
  assert.is(err.name, 'VirtioChainError');
});

test('describe(): the indices a stuck-guest report shows, guest side and device side', () => {
  const { driver, queue } = setup({ eventIdx: true });
  driver.post([bytes(1)], [16]);
  driver.post([bytes(1)], [16]);
  assert.match(queue.describe(), /avail\.idx 2, next avail 0, used\.idx 0 \(pushed 0, last signalled -\), used_event 0, avail_event 0$/);
  const chain = queue.popAvail() as DescriptorChain;
  queue.pushUsed(chain.head, 0);
  queue.needsNotification();
  assert.match(queue.describe(), /avail\.idx 2, next avail 1, used\.idx 1 \(pushed 1, last signalled 1\)/);
  assert.match(setup().queue.describe(), /avail flags 0, used flags 0$/, 'without EVENT_IDX: the flags');
});

test.run();
