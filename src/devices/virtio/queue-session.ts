// One activation of a virtio device (DRIVER_OK to reset), as its queues see it: the queues the
// device opened (ActiveQueue), one broken state for all of them, and the one place where a
// VirtioQueueError — a guest error in a ring itself — becomes NEEDS_RESET (virtio 1.2 §2.1.2).
// A device makes a session in activate() and ends it in reset(): from then on nothing of this
// activation touches a ring or raises an interrupt, whatever completes later.
import type { ActivateContext } from './device.js';
import { ActiveQueue, type ActiveQueueOptions, type QueueOwner } from './active-queue.js';
import { VirtioQueueError } from './errors.js';

/** A device used its session wrongly (not a guest error). */
export class QueueSessionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueSessionError';
  }
}

export class QueueSession implements QueueOwner {
  private state: 'live' | 'broken' | 'ended' = 'live';
  private readonly opened = new Map<number, ActiveQueue>();

  constructor(
    private readonly ctx: ActivateContext,
    /** Prefix of NEEDS_RESET reasons ('virtio-blk'). */
    private readonly name: string,
  ) {}

  /** Neither reset nor broken: the queues may be used. */
  get live(): boolean {
    return this.state === 'live';
  }

  /** NEEDS_RESET was requested (and the session was not ended since). */
  get broken(): boolean {
    return this.state === 'broken';
  }

  /**
   * Queue `index` for this activation, or undefined when the driver did not make it ready.
   * Each queue is opened once per session (QueueSessionError otherwise): its notifier and drain
   * state must be the only ones over that ring.
   */
  queue(index: number, options: ActiveQueueOptions = {}): ActiveQueue | undefined {
    const ring = this.ctx.queues[index];
    if (!ring) return undefined;
    if (this.opened.has(index)) throw new QueueSessionError(`${this.name}: queue ${index} opened twice in one activation`);
    const queue = new ActiveQueue(index, ring, this, options);
    this.opened.set(index, queue);
    return queue;
  }

  /** The device was reset: stop. Pending drains, checks and completions of this activation do nothing. */
  end(): void {
    this.state = 'ended';
  }

  /** Sets NEEDS_RESET with `reason`, once; nothing after the session ended (the activation is gone). */
  fail(reason: string): void {
    if (this.state !== 'live') return;
    this.state = 'broken';
    this.ctx.needsReset(`${this.name}: ${reason}`);
  }

  /** Runs fn; a VirtioQueueError becomes fail() and undefined. Other errors propagate. */
  guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof VirtioQueueError)) throw e;
      this.fail(e.message);
      return undefined;
    }
  }

  interrupt(): void {
    this.ctx.interrupt();
  }
}
