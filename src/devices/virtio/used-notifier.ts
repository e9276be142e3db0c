// Used-buffer interrupts for one queue of one activation (virtio 1.2 §2.7.7 notification
// suppression), batched: one needsNotification() check, and so at most one interrupt, per batch
// of used entries. A batch is
// - everything pushed inside batch() (a drain: the check comes at its end);
// - else one entry, checked at once, when the device says no later completion is coming to batch
//   it with (checkAtOnce: at queue depth 1, waiting a turn would cost every request an extra
//   event-loop turn for nothing);
// - else what is pushed in one event-loop turn: the check runs from setImmediate, after that
//   turn's I/O callbacks.
// The notifier belongs to one activation: once `live()` says false (reset, NEEDS_RESET) a pending
// or later check does nothing, so a completion of an earlier activation raises no interrupt.
import type { SplitQueue } from './queue.js';

export interface UsedNotifierOptions {
  /** Whether the activation still owns the queue; false after reset or NEEDS_RESET. */
  readonly live: () => boolean;
  /** Raises the used-buffer interrupt (ActivateContext.interrupt). */
  readonly raise: () => void;
  /** Whether an entry pushed outside batch() is checked at once rather than at the end of the
   * event-loop turn: true when no later completion will come to batch it with. Default: never. */
  readonly checkAtOnce?: () => boolean;
  /** Called for each interrupt raised (device metrics). */
  readonly onInterrupt?: () => void;
}

export class UsedNotifier {
  /** batch() calls open (they nest). */
  private depth = 0;
  /** An entry was pushed inside the open batch: check when it closes. */
  private owed = false;
  /** A setImmediate check is scheduled. */
  private scheduled = false;
  /** Entries were pushed since the last needsNotification(). */
  private unchecked = false;
  private raised = 0;

  constructor(
    private readonly ring: Pick<SplitQueue, 'needsNotification'>,
    private readonly options: UsedNotifierOptions,
  ) {}

  /** Interrupts this notifier raised. */
  get interrupts(): number {
    return this.raised;
  }

  /**
   * Runs fn with the checks of the entries it pushes left to its end: one check for all of
   * them, unless a check scheduled for this turn is still to come (it covers them too).
   */
  batch<T>(fn: () => T): T {
    this.depth++;
    let result: T;
    try {
      result = fn();
    } finally {
      this.depth--;
    }
    if (this.depth === 0 && this.owed) {
      this.owed = false;
      if (!this.scheduled) this.check();
    }
    return result;
  }

  /** A used entry was published (SplitQueue.pushUsed): decides when it is checked. */
  pushed(): void {
    this.unchecked = true;
    if (this.depth > 0) {
      this.owed = true;
      return;
    }
    if (this.options.checkAtOnce?.()) {
      this.check();
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.check();
    });
  }

  private check(): void {
    // Nothing new since the last check (a check at once may leave a scheduled one nothing to do).
    if (!this.unchecked || !this.options.live()) return;
    this.unchecked = false;
    if (this.ring.needsNotification()) {
      this.raised++;
      this.options.onInterrupt?.();
      this.options.raise();
    }
  }
}
