// The shared queue plumbing of virtio devices: QueueSession (one activation, NEEDS_RESET),
// ActiveQueue (the drain with notification re-enable, virtio 1.2 §2.7.10, its budget and its bound),
// UsedNotifier (batched used-buffer interrupts, §2.7.7) and InFlight (work a reset waits for),
// driven by the test guest driver.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY, type SplitQueueConfig } from '../../src/devices/virtio/queue.js';
import type { DescriptorChain } from '../../src/devices/virtio/chain.js';
import type { ActivateContext } from '../../src/devices/virtio/device.js';
import { VirtioChainError, VirtioQueueError } from '../../src/devices/virtio/errors.js';
import { QueueSession, QueueSessionError } from '../../src/devices/virtio/queue-session.js';
import type { ActiveQueue, ActiveQueueOptions } from '../../src/devices/virtio/active-queue.js';
import { UsedNotifier } from '../../src/devices/virtio/used-notifier.js';
import { InFlight } from '../../src/devices/virtio/in-flight.js';
import { VirtqDriver } from '../helpers/virtq-driver.js';
import { ObservedQueue } from '../helpers/observed-queue.js';


interface Bed {
  memory: GuestMemory;
  /** One driver per queue. */
  drivers: VirtqDriver[];
  rings: ObservedQueue[];
  ctx: ActivateContext;
  session: QueueSession;
  interrupts: () => number;
  resets: string[];
}

/** A session over `queues` ready queues of `size` entries (64 KiB of ring and buffers each). */
function bed(opts: { eventIdx?: boolean; size?: number; queues?: number } = {}): Bed {
  const eventIdx = opts.eventIdx ?? false;
  const count = opts.queues ?? 1;
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 * (count + 1) }]);
  const drivers: VirtqDriver[] = [];
  const rings: ObservedQueue[] = [];
  for (let i = 0; i < count; i++) {
    const base = 0x10000 * (i + 1);
    const driver = new VirtqDriver(memory, { size: opts.size ?? 16, ringBase: base, bufferBase: base + 0x4000, bufferEnd: base + 0x10000, eventIdx });
    const config: SplitQueueConfig = { ...driver.layout, index: i, maxSize: 256, eventIdx, indirectDesc: true };
    drivers.push(driver);
    rings.push(new ObservedQueue(memory, config));
  }
  let interrupts = 0;
  const resets: string[] = [];
  const ctx: ActivateContext = {
    memory,
    queues: rings,
    features: 0n,
    interrupt: () => {
      interrupts++;
    },
    needsReset: (reason) => {
      resets.push(reason);
    },
  };
  return { memory, drivers, rings, ctx, session: new QueueSession(ctx, 'virtio-test'), interrupts: () => interrupts, resets };
}

function open(b: Bed, index = 0, options: ActiveQueueOptions = {}): ActiveQueue {
  const q = b.session.queue(index, options);
  if (!q) throw new Error(`queue ${index} not ready`);
  return q;
}

/** Posts one chain of one 8-byte writable buffer on `driver`; returns its head. */
function postOne(driver: VirtqDriver): number {
  return driver.post([], [8]);
}

/** A handler that returns every chain at once with used length 1, recording its head. */
function completeAtOnce(q: ActiveQueue, heads: number[]): (chain: DescriptorChain) => void {
  return (chain) => {
    heads.push(chain.head);
    q.pushUsed(chain.head, 1);
  };
}

const turn = (): Promise<void> => new Promise((res) => setImmediate(res));

/** Whether the device currently asks for available-buffer notifications (§2.7.10). */
function notificationsOn(driver: VirtqDriver, eventIdx: boolean, nextAvail: number): boolean {
  return eventIdx ? driver.availEvent === nextAvail : (driver.usedFlags & VIRTQ_USED_F_NO_NOTIFY) === 0;
}

// --- the drain -----------------------------------------------------------------------------------

for (const eventIdx of [false, true]) {
  test(`[EVENT_IDX ${eventIdx ? 'on' : 'off'}] a chain published between the last pop and the re-enable brings no notification, and the same drain takes it`, () => {
    const b = bed({ eventIdx });
    const driver = b.drivers[0] as VirtqDriver;
    const q = open(b);
    const first = postOne(driver);
    assert.ok(driver.takeKick(), 'the first chain is notified');
    let second = -1;
    (b.rings[0] as ObservedQueue).beforeEnable = () => {
      second = postOne(driver);
      assert.not.ok(driver.takeKick(), 'published while notifications were off: no notification will come');
    };
    const heads: number[] = [];
    q.drain(completeAtOnce(q, heads));
    assert.equal(heads, [first, second]);
    assert.equal(driver.collectUsed(), [{ head: first, len: 1 }, { head: second, len: 1 }]);
    assert.ok(notificationsOn(driver, eventIdx, 2), 'notifications are on again once the ring is empty');
    postOne(driver);
    assert.ok(driver.takeKick(), 'so the next chain is notified');
  });
}

test('the budget: a drain takes at most drainBudget entries and resumes on the next turn; a notify meanwhile waits for it', async () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b, 0, { drainBudget: 4 });
  const posted = Array.from({ length: 10 }, () => postOne(driver));
  const heads: number[] = [];
  const handler = completeAtOnce(q, heads);
  q.drain(handler);
  assert.is(heads.length, 4);
  assert.ok(driver.usedFlags & VIRTQ_USED_F_NO_NOTIFY, 'notifications stay off while chains are left');
  assert.is(b.interrupts(), 1, "the drain's completions are checked at its end");
  q.drain(handler);
  assert.is(heads.length, 4, 'a notify while a resumption is scheduled is left to it');
  await turn();
  assert.is(heads.length, 8);
  assert.is(b.interrupts(), 2);
  await turn();
  assert.equal(heads, posted);
  assert.is(driver.usedFlags & VIRTQ_USED_F_NO_NOTIFY, 0, 'the ring is empty: notifications on');
  await turn();
  assert.is(b.interrupts(), 3, 'one interrupt per drain, none from the last, empty, turn');
  assert.is(b.rings[0]?.checks, 3);
});

test('the budget: a drain that takes exactly drainBudget entries and leaves none re-enables notifications without a resumption', async () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b, 0, { drainBudget: 4 });
  for (let i = 0; i < 4; i++) postOne(driver);
  const heads: number[] = [];
  q.drain(completeAtOnce(q, heads));
  assert.is(heads.length, 4);
  assert.is(driver.usedFlags & VIRTQ_USED_F_NO_NOTIFY, 0);
  // Not waiting for a resumption: a notify drains at once.
  postOne(driver);
  q.drain(completeAtOnce(q, heads));
  assert.is(heads.length, 5);
});

test('the default budget is the queue size', async () => {
  const b = bed({ size: 8 });
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b);
  for (let i = 0; i < 8; i++) postOne(driver);
  const heads: number[] = [];
  // Each chain returned at once is posted again: the driver refills the ring as fast as it empties.
  q.drain((chain) => {
    heads.push(chain.head);
    q.pushUsed(chain.head, 0);
    driver.collectUsed();
    if (heads.length <= 16) postOne(driver);
  });
  assert.is(heads.length, 8, 'one ring of entries, then the event loop gets a turn');
  await turn();
  assert.is(heads.length, 16);
  assert.ok(driver.usedFlags & VIRTQ_USED_F_NO_NOTIFY, 'notifications stay off while the ring is full');
  // The driver stops refilling: the next drain takes the last 8 and finds the ring empty.
  await turn();
  assert.is(heads.length, 24);
  assert.is(driver.usedFlags & VIRTQ_USED_F_NO_NOTIFY, 0);
});

test('a reset while a resumption is scheduled: it takes nothing', async () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b, 0, { drainBudget: 4 });
  for (let i = 0; i < 10; i++) postOne(driver);
  const heads: number[] = [];
  q.drain(completeAtOnce(q, heads));
  assert.is(heads.length, 4);
  b.session.end();
  await turn();
  await turn();
  assert.is(heads.length, 4);
  assert.is(driver.usedIdx, 4);
});

test('the drain stops as soon as the handler ends the session (reset) or breaks it', () => {
  for (const stop of ['end', 'fail'] as const) {
    const b = bed();
    const driver = b.drivers[0] as VirtqDriver;
    const q = open(b);
    for (let i = 0; i < 3; i++) postOne(driver);
    const heads: number[] = [];
    q.drain((chain) => {
      heads.push(chain.head);
      if (stop === 'end') b.session.end();
      else b.session.fail('the request said so');
    });
    assert.is(heads.length, 1, stop);
  }
});

test('a drain called from its own handler does nothing; the running drain takes the new chains', () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b);
  postOne(driver);
  const heads: number[] = [];
  const handler = (chain: DescriptorChain): void => {
    heads.push(chain.head);
    q.pushUsed(chain.head, 0);
    if (heads.length === 1) {
      postOne(driver);
      q.drain(handler);
      assert.is(heads.length, 1, 'not re-entered');
    }
  };
  q.drain(handler);
  assert.is(heads.length, 2);
  assert.is(b.interrupts(), 1);
});

// --- a bound on work in flight (canTake / resume) ------------------------------------------------

for (const eventIdx of [false, true]) {
  test(`[EVENT_IDX ${eventIdx ? 'on' : 'off'}] canTake: the drain stops at the bound with notifications off; resume() takes more as work completes`, () => {
    const b = bed({ eventIdx });
    const driver = b.drivers[0] as VirtqDriver;
    let inFlight = 0;
    const q = open(b, 0, { canTake: () => inFlight < 2 });
    const posted = Array.from({ length: 5 }, () => postOne(driver));
    const taken: DescriptorChain[] = [];
    const handler = (chain: DescriptorChain): void => {
      inFlight++;
      taken.push(chain);
    };
    q.drain(handler);
    assert.equal(taken.map((c) => c.head), posted.slice(0, 2));
    assert.ok(q.held);
    assert.not.ok(notificationsOn(driver, eventIdx, 2), 'a device that is not taking chains asks for no notification');
    q.drain(handler);
    assert.is(taken.length, 2, 'a notify while held takes nothing more');
    const complete = (c: DescriptorChain): void => {
      q.pushUsed(c.head, 0);
      inFlight--;
      q.resume();
    };
    complete(taken[0] as DescriptorChain);
    assert.equal(taken.map((c) => c.head), posted.slice(0, 3), 'one completion, one more chain');
    complete(taken[1] as DescriptorChain);
    complete(taken[2] as DescriptorChain);
    assert.equal(taken.map((c) => c.head), posted);
    assert.ok(q.held, 'at the bound the drain stops before it looks at the ring');
    complete(taken[3] as DescriptorChain);
    assert.not.ok(q.held, 'below the bound it finds the ring empty');
    assert.ok(notificationsOn(driver, eventIdx, 5), 'notifications on again once the ring is empty');
    q.resume();
    assert.is(taken.length, 5, 'resume() on a queue that is not held does nothing');
  });
}

test('canTake: a held queue whose session ended takes nothing on resume()', () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  let room = 1;
  const q = open(b, 0, { canTake: () => room > 0 });
  postOne(driver);
  postOne(driver);
  const heads: number[] = [];
  q.drain((chain) => {
    room--;
    heads.push(chain.head);
  });
  assert.is(heads.length, 1);
  b.session.end();
  room = 1;
  q.resume();
  assert.is(heads.length, 1);
});

test('InFlight: whenIdle resolves once every start() is settled, at once when none is running', async () => {
  const w = new InFlight();
  let idle = 0;
  await w.whenIdle();
  w.start();
  w.start();
  void w.whenIdle().then(() => idle++);
  w.settle();
  await turn();
  assert.is(idle, 0);
  assert.is(w.size, 1);
  w.settle();
  await turn();
  assert.is(idle, 1);
  assert.throws(() => w.settle(), RangeError, 'a settle() without start() is a bug, not a negative count');
});

// --- malformed chains and ring errors ------------------------------------------------------------

test('a malformed chain with a returnable head is returned with used length 0, counted, and the drain goes on', () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const bad: VirtioChainError[] = [];
  const q = open(b, 0, { onBadChain: (e) => bad.push(e) });
  const a = postOne(driver);
  const broken = driver.post([new Uint8Array(8)], [8], { publish: false });
  driver.writeDesc(broken, { addr: 0x4000_0000, len: 32, flags: 0, next: 0 });
  driver.publish();
  const c = postOne(driver);
  const heads: number[] = [];
  q.drain(completeAtOnce(q, heads));
  assert.equal(heads, [a, c]);
  assert.equal(driver.collectUsed(), [{ head: a, len: 1 }, { head: broken, len: 0 }, { head: c, len: 1 }]);
  assert.is(bad.length, 1);
  assert.is(bad[0]?.reason, 'out-of-range');
  assert.equal(b.resets, []);
  assert.ok(b.session.live);
  assert.is(b.interrupts(), 1, 'one check for the whole drain, the returned bad chain included');
});

test('a malformed chain whose head is outside the table: NEEDS_RESET once, and the queue is left alone after', () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const bad: VirtioChainError[] = [];
  const q = open(b, 0, { onBadChain: (e) => bad.push(e) });
  driver.postRawHead(999);
  postOne(driver);
  const heads: number[] = [];
  q.drain(completeAtOnce(q, heads));
  assert.equal(heads, [], 'the drain stopped at the bad head');
  assert.is(bad.length, 1);
  assert.not.ok(bad[0]?.returnable);
  assert.is(b.resets.length, 1);
  assert.match(b.resets[0] as string, /^virtio-test: head of the chain at head 999/);
  assert.ok(b.session.broken);
  q.drain(completeAtOnce(q, heads));
  assert.equal(heads, []);
  assert.is(b.resets.length, 1);
  assert.is(driver.usedIdx, 0);
  assert.is(b.interrupts(), 0);
});

test('a ring error (avail.idx overrun) during a drain: NEEDS_RESET once; a later completion pushes nothing and raises no interrupt', async () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b);
  postOne(driver);
  const held: DescriptorChain[] = [];
  q.drain((chain) => held.push(chain));
  assert.is(held.length, 1);
  driver.setAvailIdx(driver.publishedIdx + 100);
  q.drain((chain) => held.push(chain));
  assert.is(b.resets.length, 1);
  assert.match(b.resets[0] as string, /^virtio-test: virtqueue 0: avail\.idx/);
  assert.ok(b.session.broken);
  assert.not.ok(q.pushUsed((held[0] as DescriptorChain).head, 1), 'nothing pushed on a broken queue');
  await turn();
  assert.is(driver.usedIdx, 0);
  assert.is(b.interrupts(), 0);
  b.session.fail('again');
  assert.is(b.resets.length, 1, 'NEEDS_RESET once per activation');
});

test('a ring error on pushUsed (a head outside the table) is NEEDS_RESET, not a throw', () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b);
  postOne(driver);
  q.drain(() => undefined);
  assert.not.ok(q.pushUsed(999, 0));
  assert.is(b.resets.length, 1);
  assert.match(b.resets[0] as string, /used head 999/);
  assert.is(driver.usedIdx, 0);
});

test('guard: a VirtioQueueError becomes NEEDS_RESET and undefined; other errors propagate; nothing after end()', () => {
  const b = bed();
  assert.is(b.session.guard(() => 7), 7);
  assert.is(
    b.session.guard(() => {
      throw new VirtioQueueError('avail-overrun', 'made up');
    }),
    undefined,
  );
  assert.equal(b.resets, ['virtio-test: made up']);
  assert.throws(
    () =>
      b.session.guard(() => {
        throw new RangeError('a device bug');
      }),
    (e: unknown) => e instanceof RangeError,
  );
  const ended = bed();
  ended.session.end();
  ended.session.fail('too late');
  ended.session.guard(() => {
    throw new VirtioQueueError('avail-overrun', 'too late');
  });
  assert.equal(ended.resets, [], 'an ended activation sets no NEEDS_RESET (the transport may have a new one)');
});

// --- sessions with several queues ----------------------------------------------------------------

test('a session opens each ready queue once; a queue the driver did not make ready is undefined', () => {
  const b = bed({ queues: 2 });
  const ctx: ActivateContext = { ...b.ctx, queues: [b.rings[0], undefined, b.rings[1]] };
  const session = new QueueSession(ctx, 'virtio-test');
  assert.ok(session.queue(0));
  assert.is(session.queue(1), undefined);
  assert.is(session.queue(2)?.index, 2);
  assert.is(session.queue(7), undefined);
  assert.throws(() => session.queue(0), (e: unknown) => e instanceof QueueSessionError);
});

test('queues of one session share its broken state, and each has its own notifier', async () => {
  const b = bed({ queues: 2 });
  const [d0, d1] = b.drivers as [VirtqDriver, VirtqDriver];
  const counted = [0, 0];
  const rx = open(b, 0, { onInterrupt: () => counted[0]++ });
  const tx = open(b, 1, { onInterrupt: () => counted[1]++ });
  postOne(d0);
  postOne(d1);
  const rxHeld: DescriptorChain[] = [];
  rx.drain((chain) => rxHeld.push(chain));
  tx.drain((chain) => tx.pushUsed(chain.head, 0));
  assert.equal(counted, [0, 1], 'only the queue that returned a chain interrupted');
  assert.is(tx.interrupts, 1);
  assert.is(rx.interrupts, 0);
  // The driver breaks the tx ring: the whole activation needs a reset.
  postOne(d1);
  d1.setAvailIdx(d1.publishedIdx + 100);
  tx.drain(() => undefined);
  assert.is(b.resets.length, 1);
  assert.not.ok(rx.pushUsed((rxHeld[0] as DescriptorChain).head, 0));
  postOne(d0);
  rx.drain(() => assert.unreachable('a broken session drains nothing'));
  await turn();
  assert.is(d0.usedIdx, 0);
  assert.is(b.interrupts(), 1);
});

// --- interrupt batching --------------------------------------------------------------------------

/** How the driver sets interrupt suppression before the completions (§2.7.7). */
type Wish = 'wants' | 'suppressed';

function setWish(driver: VirtqDriver, eventIdx: boolean, wish: Wish): void {
  if (eventIdx) {
    // Linux's virtqueue_enable_cb: used_event = the next used index it has not seen (wants);
    // one behind it, an event already passed, comes round only after 2^16 entries (suppressed).
    driver.setUsedEvent(wish === 'wants' ? driver.usedIdx : driver.usedIdx - 1);
  } else {
    driver.setAvailFlags(wish === 'wants' ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT);
  }
}

for (const eventIdx of [false, true]) {
  for (const wish of ['wants', 'suppressed'] as const) {
    test(`[EVENT_IDX ${eventIdx ? 'on' : 'off'}] five completions in one turn outside a drain: one check, and ${wish === 'wants' ? 'one interrupt' : 'no interrupt'} (the driver ${wish === 'wants' ? 'asked' : 'suppressed them'})`, async () => {
      const b = bed({ eventIdx });
      const driver = b.drivers[0] as VirtqDriver;
      const ring = b.rings[0] as ObservedQueue;
      const q = open(b);
      // A first completion, so that EVENT_IDX has a last-signalled index (its first check always signals).
      postOne(driver);
      q.drain((chain) => q.pushUsed(chain.head, 0));
      driver.collectUsed();
      const before = { checks: ring.checks, interrupts: b.interrupts() };
      const held: DescriptorChain[] = [];
      for (let i = 0; i < 5; i++) postOne(driver);
      q.drain((chain) => held.push(chain));
      assert.is(ring.checks, before.checks, 'a drain that returned nothing checks nothing');
      setWish(driver, eventIdx, wish);
      for (const chain of held) assert.ok(q.pushUsed(chain.head, 0));
      assert.is(ring.checks, before.checks, 'the check waits for the end of the turn');
      await turn();
      assert.is(ring.checks, before.checks + 1);
      assert.is(b.interrupts() - before.interrupts, wish === 'wants' ? 1 : 0);
      assert.is(q.interrupts, b.interrupts());
      await turn();
      assert.is(ring.checks, before.checks + 1, 'no leftover check');
    });
  }
}

/** A notifier over a fake ring whose needsNotification answers `wants` and counts calls. */
function fakeNotifier(opts: { checkAtOnce?: () => boolean; live?: () => boolean } = {}): { n: UsedNotifier; checks: () => number; raised: () => number; wants: { value: boolean } } {
  let checks = 0;
  let raised = 0;
  const wants = { value: true };
  const n = new UsedNotifier(
    {
      needsNotification: () => {
        checks++;
        return wants.value;
      },
    },
    { live: opts.live ?? (() => true), raise: () => raised++, ...(opts.checkAtOnce ? { checkAtOnce: opts.checkAtOnce } : {}) },
  );
  return { n, checks: () => checks, raised: () => raised, wants };
}

test('notifier: entries pushed inside a batch are checked once, at its end (batches nest)', () => {
  const f = fakeNotifier();
  f.n.batch(() => {
    f.n.pushed();
    f.n.batch(() => f.n.pushed());
    assert.is(f.checks(), 0, 'the inner batch leaves the check to the outer one');
    f.n.pushed();
  });
  assert.is(f.checks(), 1);
  assert.is(f.raised(), 1);
  f.n.batch(() => undefined);
  assert.is(f.checks(), 1, 'a batch that pushed nothing checks nothing');
});

test('notifier: checkAtOnce checks the entry at once; a check at once leaves the scheduled one nothing to do', async () => {
  let last = false;
  const f = fakeNotifier({ checkAtOnce: () => last });
  f.n.pushed();
  f.n.pushed();
  assert.is(f.checks(), 0);
  last = true;
  f.n.pushed();
  assert.is(f.checks(), 1, 'the last in flight: checked at once, covering the two before it');
  await turn();
  assert.is(f.checks(), 1, 'the scheduled check found nothing new');
  assert.is(f.raised(), 1);
  assert.is(f.n.interrupts, 1);
});

test("notifier: a check scheduled for this turn covers a batch's entries too (one check, not two)", async () => {
  const f = fakeNotifier();
  f.n.pushed();
  f.n.batch(() => f.n.pushed());
  assert.is(f.checks(), 0);
  await turn();
  assert.is(f.checks(), 1);
  assert.is(f.raised(), 1);
});

test('notifier: no check, and no interrupt, once the activation is over', async () => {
  let live = true;
  const f = fakeNotifier({ live: () => live });
  f.n.pushed();
  live = false;
  await turn();
  f.n.batch(() => f.n.pushed());
  assert.is(f.checks(), 0);
  assert.is(f.raised(), 0);
});

test('no interrupt after reset: a check scheduled before the reset does nothing, and a completion after it pushes nothing', async () => {
  const b = bed();
  const driver = b.drivers[0] as VirtqDriver;
  const q = open(b);
  postOne(driver);
  postOne(driver);
  const held: DescriptorChain[] = [];
  q.drain((chain) => held.push(chain));
  assert.ok(q.pushUsed((held[0] as DescriptorChain).head, 0));
  b.session.end();
  await turn();
  assert.is(b.interrupts(), 0);
  assert.is(b.rings[0]?.checks, 0);
  assert.not.ok(q.pushUsed((held[1] as DescriptorChain).head, 0));
  assert.is(driver.usedIdx, 1);
  q.drain(() => assert.unreachable('an ended session drains nothing'));
});

for (const eventIdx of [false, true]) {
  test(`[EVENT_IDX ${eventIdx ? 'on' : 'off'}] popOrEnable: one chain at a time, notifications off while taking; on again when empty, a racing chain still taken`, () => {
    const b = bed({ eventIdx });
    const driver = b.drivers[0] as VirtqDriver;
    const q = open(b);
    const a = postOne(driver);
    const c = postOne(driver);
    driver.takeKick();
    assert.is(q.popOrEnable()?.head, a);
    assert.not.ok(notificationsOn(driver, eventIdx, 1), 'off while the device takes chains');
    let raced = -1;
    assert.is(q.popOrEnable()?.head, c);
    (b.rings[0] as ObservedQueue).beforeEnable = () => {
      raced = postOne(driver);
    };
    assert.is(q.popOrEnable()?.head, raced, 'published during the re-enable: taken, not lost');
    assert.is(q.popOrEnable(), undefined);
    assert.ok(notificationsOn(driver, eventIdx, 3), 'on again once the ring is empty');
    postOne(driver);
    assert.ok(driver.takeKick(), 'so the next buffer is notified');
    b.session.end();
    assert.is(q.popOrEnable(), undefined, 'nothing after the activation ended');
  });
}

test.run();
