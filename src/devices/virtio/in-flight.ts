// Backend work a device started and that may still touch guest memory: counted across
// activations, so that quiesce() after a reset (virtio 1.2 §2.4: the driver may reuse its buffers
// once the reset completes) and dispose() can wait until none is left. Async devices (virtio-blk,
// virtio-fs) start one unit per request and settle it when the backend is done with the buffers.

export class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  /** Work started and not yet settled. */
  get size(): number {
    return this.count;
  }

  /** One more unit of work is running. */
  start(): void {
    this.count++;
  }

  /** A unit of work is done with guest memory; the last one wakes whenIdle(). */
  settle(): void {
    if (this.count === 0) throw new RangeError('InFlight.settle() without a matching start()');
    this.count--;
    if (this.count > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is in flight (at once when nothing is now). */
  whenIdle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((res) => this.waiters.push(res));
  }
}
