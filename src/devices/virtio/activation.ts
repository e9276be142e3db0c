// The device side of a virtio-mmio transport's lifecycle, without any I/O of its own: on a status
// change it activates the device with the queues the driver made ready (DRIVER_OK) or resets it
// (status 0); queue notifications go to the device once it is active. In a VM, eventfds drive
// it (src/machine/virtio-host.ts); in tests, the transport's events call it directly.
import type { GuestMemory } from '../../vmm/guest-memory.js';
import type { VirtioDevice } from './device.js';
import type { TransportState } from './mmio.js';
import { INT_USED_BUFFER, STATUS, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from './mmio-regs.js';
import { SplitQueue } from './queue.js';

export class VirtioActivation {
  private active = false;
  /** The transport's reset sequence number last handled, and the last one acknowledged. */
  private resetSeen: number;
  private resetAcked: number;
  /** The transport's config-write counter last handled. */
  private configWritesSeen: number;
  /** The queues of the current activation (for describe()). */
  private queues: (SplitQueue | undefined)[] = [];

  constructor(
    private readonly state: TransportState,
    private readonly device: VirtioDevice,
    private readonly memory: GuestMemory,
    /** Signals the device's interrupt line (irqfd). */
    private readonly signal: () => void,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.resetSeen = this.resetAcked = state.resetSequence;
    this.configWritesSeen = state.configWrites;
  }

  get isActive(): boolean {
    return this.active;
  }

  /** The transport's status and each active queue's indices (SplitQueue.describe). */
  describe(): string[] {
    const lines = [`status 0x${this.state.status.toString(16)}, interrupt status 0x${this.state.interruptStatus.toString(16)}, ${this.active ? 'active' : 'not active'}`];
    if (this.active) for (const q of this.queues) if (q) lines.push(q.describe());
    return lines;
  }

  /** The transport's event: a status change (reset, DRIVER_OK) or a config-space write. */
  onStatus(): void {
    const writes = this.state.configWrites;
    if (writes !== this.configWritesSeen) {
      this.configWritesSeen = writes;
      this.device.configWritten?.(this.state.configSnapshot());
    }
    // A reset is told by the transport's reset counter, not by Status = 0: the driver may have
    // reset and set Status again before this runs (only without a ResetBarrier holding it).
    const seq = this.state.resetSequence;
    if (seq !== this.resetSeen) {
      this.resetSeen = seq;
      if (this.active) {
        this.active = false;
        this.queues = [];
        this.device.reset();
      }
      this.acknowledgeWhenQuiet(seq);
    }
    const status = this.state.status;
    if (status & STATUS.DRIVER_OK && !(status & STATUS.NEEDS_RESET) && !this.active) this.activate();
  }

  /** Acknowledges reset `seq` (releasing the driver's held reset write) once the device is quiet. */
  private acknowledgeWhenQuiet(seq: number): void {
    const ack = (): void => {
      if (((seq - this.resetAcked) | 0) <= 0) return; // a later reset was acknowledged already
      this.resetAcked = seq;
      this.state.acknowledgeReset(seq);
    };
    const quiet = this.device.quiesce?.();
    if (!quiet) return ack();
    quiet.then(ack, (e: unknown) => {
      // Nothing can be in flight for a device whose quiesce failed; do not hold the vCPU forever.
      this.log(`quiesce after reset failed: ${e instanceof Error ? e.message : String(e)}`);
      ack();
    });
  }

  onNotify(queue: number): void {
    // The status event may not have been handled yet: a notify right after DRIVER_OK activates.
    if (!this.active) this.onStatus();
    if (this.active) this.device.notify(queue);
  }

  private activate(): void {
    const features = this.state.driverFeatures;
    const queues: (SplitQueue | undefined)[] = [];
    try {
      for (const q of this.state.readyQueues()) {
        queues[q.index] = new SplitQueue(this.memory, {
          ...q,
          maxSize: this.device.queueMaxSizes[q.index] ?? 0,
          eventIdx: (features & (1n << VIRTIO_F_EVENT_IDX)) !== 0n,
          indirectDesc: (features & (1n << VIRTIO_F_INDIRECT_DESC)) !== 0n,
        });
      }
    } catch (e) {
      this.needsReset(e instanceof Error ? e.message : String(e));
      return;
    }
    this.active = true;
    this.queues = queues;
    this.device.activate({
      memory: this.memory,
      queues,
      features,
      interrupt: () => {
        this.state.raise(INT_USED_BUFFER);
        this.signal();
      },
      needsReset: (reason) => this.needsReset(reason),
    });
  }

  private needsReset(reason: string): void {
    this.log(`needs reset: ${reason}`);
    this.state.needsReset();
    this.signal();
  }
}
