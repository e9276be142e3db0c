// One virtqueue of one activation, as a device uses it: drains the available ring (virtio 1.2
// §2.7.13) with notification suppression (§2.7.10), returns chains through the used ring, and
// batches the interrupts that follow (UsedNotifier, §2.7.7).
//
// Draining. Notifications are disabled while chains are popped; once the ring looks empty they
// are re-enabled and the ring is checked again, because a chain published before the driver could
// see the re-enable brings no notification (Firecracker's pop_or_enable_notification; Linux's
// virtqueue_enable_cb_prepare / virtqueue_poll on the driver side).
// A drain takes at most `drainBudget` entries (default: the queue size, one ring's worth), since
// a driver on another CPU can refill the ring as fast as we empty it. When the budget runs out
// with chains still pending, notifications stay disabled and the drain resumes from setImmediate,
// after this turn's other I/O callbacks; a notify meanwhile is left to that resumption.
// A device that bounds its work in flight says so with canTake: while it answers false the drain
// stops before popping, with notifications left off (the driver need not notify a device that is
// not taking), and the device calls resume() when a completion frees room.
// Malformed chains (VirtioChainError) are returned with used length 0 where their head is
// returnable and count against the budget; one whose head is not makes the device need a reset.
// A VirtioQueueError (the ring itself is unusable) goes to the owner's guard: NEEDS_RESET.
import type { DescriptorChain } from './chain.js';
import { VirtioChainError } from './errors.js';
import type { SplitQueue } from './queue.js';
import { UsedNotifier } from './used-notifier.js';

/** What an ActiveQueue needs from its activation (QueueSession). */
export interface QueueOwner {
  /** False once the activation was reset or needs a reset: the queue is not touched any more. */
  readonly live: boolean;
  /** Runs fn; a VirtioQueueError it throws becomes NEEDS_RESET (and undefined). */
  guard<T>(fn: () => T): T | undefined;
  /** The driver broke the queue beyond repair (§2.1.2): NEEDS_RESET. */
  fail(reason: string): void;
  /** Raises the used-buffer interrupt. */
  interrupt(): void;
}

export interface ActiveQueueOptions {
  /** Whether a chain returned outside a drain is checked for an interrupt at once (no later
   * completion will come to batch it with) rather than at the end of the event-loop turn. */
  readonly checkAtOnce?: () => boolean;
  /** Called for each interrupt raised for this queue (device metrics). */
  readonly onInterrupt?: () => void;
  /** Called for each malformed chain popped, before it is returned or the device fails. */
  readonly onBadChain?: (error: VirtioChainError) => void;
  /** Entries one drain takes before yielding the event loop; default the queue size. */
  readonly drainBudget?: number;
  /** Whether the device can take another chain now (a bound on its work in flight). While it
   * says false a drain stops and holds the ring until resume(). Default: always. */
  readonly canTake?: () => boolean;
}

/** How a drain ended: the ring is empty with notifications on; the budget ran out; the owner
 * stopped; the device could take no more (canTake). */
type DrainEnd = 'empty' | 'budget' | 'stopped' | 'held';

export class ActiveQueue {
  readonly notifier: UsedNotifier;
  private readonly budget: number;
  private draining = false;
  private resumeScheduled = false;
  /** The last drain stopped at canTake: the onChain resume() hands further chains to. */
  private heldFor: ((chain: DescriptorChain) => void) | undefined;

  constructor(
    /** The queue index (for the device's dispatch). */
    readonly index: number,
    readonly ring: SplitQueue,
    private readonly owner: QueueOwner,
    private readonly options: ActiveQueueOptions = {},
  ) {
    this.budget = Math.max(1, Math.floor(options.drainBudget ?? ring.size));
    this.notifier = new UsedNotifier(ring, {
      live: () => owner.live,
      raise: () => owner.interrupt(),
      checkAtOnce: options.checkAtOnce,
      onInterrupt: options.onInterrupt,
    });
  }

  /** The last drain stopped because the device could take no more; resume() goes on. */
  get held(): boolean {
    return this.heldFor !== undefined;
  }

  /** Interrupts raised for this queue in this activation. */
  get interrupts(): number {
    return this.notifier.interrupts;
  }

  /**
   * Hands every chain the driver has made available to onChain, which starts its work and
   * returns it (now or later) with pushUsed. Interrupts for what is returned during the drain
   * are checked once, at its end. Does nothing when the activation is not live, when called from
   * inside a drain of this queue (the running one re-checks the ring before it ends), or while a
   * resumption is scheduled (it will see the new chains); a resumption uses this call's onChain.
   */
  drain(onChain: (chain: DescriptorChain) => void): void {
    if (this.draining || this.resumeScheduled || !this.owner.live) return;
    this.heldFor = undefined;
    this.draining = true;
    let end: DrainEnd | undefined;
    try {
      end = this.notifier.batch(() => this.owner.guard(() => this.drainAvailable(onChain)));
    } finally {
      this.draining = false;
    }
    if (end === 'held') this.heldFor = onChain;
    if (end !== 'budget' || !this.owner.live) return;
    this.resumeScheduled = true;
    setImmediate(() => {
      this.resumeScheduled = false;
      this.drain(onChain);
    });
  }

  /**
   * The device can take chains again after a drain held at canTake (a completion freed room):
   * drains with that drain's onChain. Does nothing when the queue is not held.
   */
  resume(): void {
    const onChain = this.heldFor;
    if (!onChain) return;
    this.heldFor = undefined;
    this.drain(onChain);
  }

  /**
   * Returns a chain to the driver with `len` bytes written (§2.7.8) and lets the notifier decide
   * when to check for an interrupt. False when nothing was pushed: the activation is over, or
   * the push found the ring unusable (then the device needs a reset).
   */
  pushUsed(head: number, len: number): boolean {
    if (!this.owner.live) return false;
    const pushed = this.owner.guard(() => {
      this.ring.pushUsed(head, len);
      return true;
    });
    if (!pushed) return false;
    this.notifier.pushed();
    return true;
  }

  /**
   * One chain, for a device that takes buffers only when it has something to put in them (the
   * receive queues of vsock and net): notifications stay off while chains are taken; when the
   * ring is empty they are re-enabled and the ring re-checked (Firecracker's
   * pop_or_enable_notification), so a buffer the driver adds later brings a notify. Malformed
   * chains are handled as in drain() (at most a ring's worth per call). undefined: no chain, or
   * the activation is over.
   */
  popOrEnable(): DescriptorChain | undefined {
    if (!this.owner.live) return undefined;
    const ring = this.ring;
    const chain = this.owner.guard(() => {
      for (let tries = 0; tries <= ring.size; tries++) {
        ring.disableNotification();
        let c: DescriptorChain | undefined;
        try {
          c = ring.popAvail();
        } catch (e) {
          if (!(e instanceof VirtioChainError)) throw e;
          this.badChain(e);
          if (!this.owner.live) return undefined;
          continue;
        }
        if (c) return c;
        if (!ring.enableNotification()) return undefined;
      }
      // A ring's worth of bad chains: leave notifications on so the driver's next add is seen.
      ring.enableNotification();
      return undefined;
    });
    return chain ?? undefined;
  }

  /** Runs fn with the interrupt checks of what it returns left to its end (UsedNotifier.batch). */
  batch<T>(fn: () => T): T {
    return this.notifier.batch(fn);
  }

  private drainAvailable(onChain: (chain: DescriptorChain) => void): DrainEnd {
    const ring = this.ring;
    const owner = this.owner;
    ring.disableNotification();
    // Entries popped, plus re-checks that found more: bounds the loop whatever the driver does
    // to avail.idx meanwhile.
    let taken = 0;
    const canTake = this.options.canTake;
    for (;;) {
      if (taken < this.budget) {
        if (canTake && !canTake()) return 'held';
        let chain: DescriptorChain | undefined;
        try {
          chain = ring.popAvail();
        } catch (e) {
          if (!(e instanceof VirtioChainError)) throw e;
          taken++;
          this.badChain(e);
          if (!owner.live) return 'stopped';
          continue;
        }
        if (chain) {
          taken++;
          onChain(chain);
          if (!owner.live) return 'stopped';
          continue;
        }
      }
      // The ring is empty, or the budget is spent: re-enable and re-check (§2.7.10).
      if (!ring.enableNotification()) return 'empty';
      ring.disableNotification();
      if (taken >= this.budget) return 'budget';
      taken++;
    }
  }

  private badChain(e: VirtioChainError): void {
    this.options.onBadChain?.(e);
    if (e.returnable) this.pushUsed(e.head, 0);
    else this.owner.fail(e.message);
  }
}
