// A property test of the shared queue plumbing (ActiveQueue, UsedNotifier, QueueSession) against
// a model of the guest driver: random sequences of driver posts (some published while the device
// re-enables notifications, some malformed), notifications, device completions inside and
// outside drains, event-loop turns, used-ring collection and changes to interrupt suppression
// (virtio 1.2 §2.7.7, §2.7.10), with random drain budgets. Properties:
// - every chain the driver posts is used exactly once (no lost notification, no double return);
// - each needsNotification check covers something new, and an interrupt follows a check iff the
//   driver asked for one in that check's window (the model's reading of its own fields);
// - completions outside a drain are checked once per turn (at once only for the last in flight);
// - when everything has settled, every used entry was covered by a check (no lost interrupt).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, type SplitQueueConfig } from '../../src/devices/virtio/queue.js';
import type { DescriptorChain } from '../../src/devices/virtio/chain.js';
import type { ActivateContext } from '../../src/devices/virtio/device.js';
import { QueueSession } from '../../src/devices/virtio/queue-session.js';
import { VirtqDriver } from '../helpers/virtq-driver.js';
import { ObservedQueue } from '../helpers/observed-queue.js';

type Op =
  | { kind: 'post'; n: number }
  | { kind: 'post-bad' }
  /** At the device's next re-enable, the driver publishes n chains just before it. */
  | { kind: 'race'; n: number }
  /** The device handles the notifications the driver owes it. */
  | { kind: 'notify' }
  /** The device completes n held chains in one go, outside a drain. */
  | { kind: 'complete'; n: number }
  | { kind: 'turn' }
  | { kind: 'collect' }
  | { kind: 'suppress' }
  | { kind: 'wish' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('post' as const), n: fc.integer({ min: 1, max: 4 }) }), weight: 4 },
  { arbitrary: fc.constant({ kind: 'post-bad' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('race' as const), n: fc.integer({ min: 1, max: 3 }) }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'notify' as const }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('complete' as const), n: fc.integer({ min: 1, max: 4 }) }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'turn' as const }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'collect' as const }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'suppress' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'wish' as const }), weight: 1 },
);

/** What happened, in order: checks (with the model's verdict) and interrupts. */
type Event = { kind: 'check'; used: number; asked: boolean } | { kind: 'interrupt' };


const turn = (): Promise<void> => new Promise((res) => setImmediate(res));

test('drain and interrupt batching agree with a model of the driver: every chain used once, interrupts iff asked', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        eventIdx: fc.boolean(),
        size: fc.constantFrom(4, 8, 16),
        budget: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
        atOnce: fc.boolean(),
        /** Per chain handed to the device, cyclically: answer inside the drain, or hold it. */
        answerNow: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        ops: fc.array(opArb, { minLength: 1, maxLength: 60 }),
      }),
      async ({ eventIdx, size, budget, atOnce, answerNow, ops }) => {
        const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x20000 }]);
        const driver = new VirtqDriver(memory, { size, ringBase: 0x1000, bufferBase: 0x4000, bufferEnd: 0x20000, eventIdx });
        const config: SplitQueueConfig = { ...driver.layout, index: 0, maxSize: 256, eventIdx, indirectDesc: false };
        const ring = new ObservedQueue(memory, config);
        const events: Event[] = [];
        const resets: string[] = [];
        const ctx: ActivateContext = {
          memory,
          queues: [ring],
          features: 0n,
          interrupt: () => events.push({ kind: 'interrupt' }),
          needsReset: (reason) => resets.push(reason),
        };
        const session = new QueueSession(ctx, 'virtio-model');
        const held: DescriptorChain[] = [];
        let counted = 0;
        const q = session.queue(0, {
          checkAtOnce: atOnce ? () => held.length === 0 : undefined,
          onInterrupt: () => counted++,
          ...(budget === undefined ? {} : { drainBudget: budget }),
        });
        if (!q) throw new Error('queue 0 not ready');

        // --- the driver model ---
        /** Heads posted and not yet seen in the used ring: well-formed, and malformed (returned with len 0). */
        const outstanding = new Set<number>();
        const malformed = new Set<number>();
        /** Popped by the device and not yet used: a head the device hands out twice is a bug. */
        const popped = new Set<number>();
        let kickOwed = false;
        let wants = true;
        let lastCheckUsed: number | undefined;
        const applyWish = (): void => {
          if (eventIdx) driver.setUsedEvent(wants ? driver.usedIdx : driver.usedIdx - 1);
          else driver.setAvailFlags(wants ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT);
        };
        applyWish();
        // The model's reading of its own suppression fields for the check window [last, used).
        ring.onCheck = (used) => {
          let asked: boolean;
          if (!eventIdx) asked = (memory.readU16(driver.driver) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
          else if (lastCheckUsed === undefined) asked = true; // the device's first check always signals
          else {
            const usedEvent = memory.readU16(driver.driver + 4 + 2 * size);
            asked = ((usedEvent - lastCheckUsed) & 0xffff) < ((used - lastCheckUsed) & 0xffff);
          }
          assert.ok(lastCheckUsed !== used, 'a check with nothing new since the last one');
          lastCheckUsed = used;
          events.push({ kind: 'check', used, asked });
        };
        const post = (n: number): void => {
          for (let i = 0; i < n && driver.freeCount > 0; i++) outstanding.add(driver.post([], [8]));
          kickOwed ||= driver.takeKick();
        };
        const collect = (): void => {
          for (const u of driver.collectUsed()) {
            assert.ok(outstanding.delete(u.head), `head ${u.head} used but not outstanding (returned twice?)`);
            if (malformed.delete(u.head)) assert.is(u.len, 0, 'a malformed chain is returned with len 0');
            else assert.is(u.len, 8);
          }
          applyWish(); // Linux re-arms after processing the used ring
        };

        // --- the device ---
        let handed = 0;
        const onChain = (chain: DescriptorChain): void => {
          assert.ok(outstanding.has(chain.head) && !malformed.has(chain.head), `head ${chain.head} was not posted`);
          assert.not.ok(popped.has(chain.head), `head ${chain.head} handed out twice`);
          popped.add(chain.head);
          if (answerNow[handed++ % answerNow.length]) {
            popped.delete(chain.head);
            assert.ok(q.pushUsed(chain.head, 8));
          } else {
            held.push(chain);
          }
        };
        const complete = (n: number): void => {
          const before = events.length;
          for (let i = 0; i < n && held.length > 0; i++) {
            const chain = held.shift() as DescriptorChain;
            popped.delete(chain.head);
            assert.ok(q.pushUsed(chain.head, 8));
          }
          const checks = events.slice(before).filter((e) => e.kind === 'check').length;
          // Outside a drain the check waits for the end of the turn; at once only for the last in flight.
          assert.ok(checks <= (atOnce && held.length === 0 ? 1 : 0), `${checks} checks for one batch of completions`);
        };

        for (const op of ops) {
          switch (op.kind) {
            case 'post':
              post(op.n);
              break;
            case 'post-bad': {
              if (driver.freeCount === 0) break;
              const head = driver.post([], [8], { publish: false });
              driver.writeDesc(head, { addr: 0x4000_0000, len: 8, flags: 2, next: 0 });
              outstanding.add(head);
              malformed.add(head);
              driver.publish();
              kickOwed ||= driver.takeKick();
              break;
            }
            case 'race':
              ring.beforeEnable = () => post(op.n);
              break;
            case 'notify':
              if (kickOwed) {
                kickOwed = false;
                q.drain(onChain);
              }
              break;
            case 'complete':
              complete(op.n);
              break;
            case 'turn':
              await turn();
              break;
            case 'collect':
              collect();
              break;
            case 'suppress':
            case 'wish':
              wants = op.kind === 'wish';
              applyWish();
              break;
          }
        }

        // Settle: the device answers everything it holds and takes what it is told of; the event
        // loop turns until nothing changes. A chain still in the ring then was never notified.
        ring.beforeEnable = undefined;
        for (let round = 0; round < 2 * size + 4; round++) {
          if (kickOwed) {
            kickOwed = false;
            q.drain(onChain);
          }
          complete(held.length);
          await turn();
        }
        await turn();
        collect();
        assert.equal(resets, []);
        assert.is(ring.pending(), 0, 'chains left in the ring with no notification to come');
        assert.is(held.length, 0);
        assert.equal([...outstanding], [], 'every posted chain used exactly once');

        // Interrupts iff asked: each check the model says was asked for is followed by an
        // interrupt, and no interrupt comes otherwise.
        let irqs = 0;
        events.forEach((e, i) => {
          if (e.kind === 'interrupt') {
            irqs++;
            const prev = events[i - 1];
            assert.ok(prev?.kind === 'check' && prev.asked, 'an interrupt the driver did not ask for');
          } else {
            assert.is(events[i + 1]?.kind === 'interrupt', e.asked, `check at used ${e.used}: asked ${e.asked}`);
          }
        });
        assert.is(q.interrupts, irqs);
        assert.is(counted, irqs);
        // No lost interrupt: the last check covered the last used entry.
        if (ring.nextUsed !== 0) assert.is(lastCheckUsed, ring.nextUsed, 'used entries never checked');
      },
    ),
    { numRuns: 300 },
  );
});

test.run();
