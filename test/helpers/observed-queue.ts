// A SplitQueue for tests of the queue plumbing: runs a hook just before a notification re-enable
// (the driver publishing on another CPU at the worst moment) and reports each needsNotification
// check (how many, and at which used index).
import { SplitQueue } from '../../src/devices/virtio/queue.js';

export class ObservedQueue extends SplitQueue {
  beforeEnable: (() => void) | undefined;
  onCheck: ((usedIdx: number) => void) | undefined;
  checks = 0;

  override enableNotification(): boolean {
    const hook = this.beforeEnable;
    this.beforeEnable = undefined;
    hook?.();
    return super.enableNotification();
  }

  override needsNotification(): boolean {
    this.checks++;
    this.onCheck?.(this.nextUsed);
    return super.needsNotification();
  }
}
