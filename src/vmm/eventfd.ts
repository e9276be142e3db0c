// eventfd(2) wrapper: the doorbell between KVM and the VMM (ioeventfd: guest -> VMM without an
// exit to user space; irqfd: VMM -> guest interrupt without an ioctl).
import { native as addon } from './native.js';
import { DisposedError, native } from './errors.js';
import { FdWatcher } from './fd-watcher.js';

export class EventFd {
  private fdValue: number;
  private watcher: FdWatcher | undefined;
  /** False for a borrowed fd: dispose() leaves it open for its owner. */
  private readonly owned: boolean;

  constructor(borrowedFd?: number) {
    this.owned = borrowedFd === undefined;
    this.fdValue = borrowedFd ?? native(() => addon().eventfdCreate(true));
  }

  /** A handle to an eventfd owned elsewhere (e.g. passed by fd number to a vCPU worker). */
  static borrow(fd: number): EventFd {
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`not an fd: ${fd}`);
    return new EventFd(fd);
  }

  get fd(): number {
    if (this.fdValue < 0) throw new DisposedError('EventFd');
    return this.fdValue;
  }

  /** Adds value to the counter (wakes a watcher; for an irqfd, injects the interrupt). */
  signal(value: number | bigint = 1): void {
    native(() => addon().eventfdWrite(this.fd, value));
  }

  /** Reads and resets the counter; 0n when nothing was signalled since the last read. */
  drain(): bigint {
    return native(() => addon().eventfdRead(this.fd));
  }

  /**
   * Calls onSignal(count) on the JS thread each time the eventfd is signalled, count > 0 being
   * the signals since the last call. One watcher. The addon drains the counter before calling;
   * an error while watching is thrown from the event loop (FdWatcher.eventfdCounter).
   */
  watch(onSignal: (count: number) => void): void {
    if (this.watcher) throw new Error(`eventfd ${this.fd} is already watched`);
    this.watcher = FdWatcher.eventfdCounter(this.fd, onSignal);
  }

  unwatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  dispose(): void {
    this.unwatch();
    if (this.fdValue >= 0 && this.owned) addon().closeFd(this.fdValue);
    this.fdValue = -1;
  }
}
