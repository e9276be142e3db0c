// Readiness of a host fd on this thread's event loop (the addon's FdWatcher over libuv's
// uv_poll): a TAP fd or socket a device reads when readable and writes when writable, or an
// eventfd doorbell whose counter the addon drains before calling back.
//
// libuv's rules for a poll handle apply (libuv docs, "uv_poll_t"): one watcher per fd per thread
// (a second is refused with EEXIST), the fd must be something epoll can watch (a regular file is
// refused with EPERM), libuv sets it O_NONBLOCK, and the owner closes the watcher before the fd.
// The watcher never closes the fd.
//
// Errors: making or changing a watcher throws a SyscallError. An error libuv reports while
// watching (EBADF, when epoll says EPOLLERR) goes to the onError handler when one is given; without
// one it is thrown from the event loop as a SyscallError, i.e. it becomes the process's uncaught
// exception, as a failed doorbell always has. Either way libuv has stopped watching:
// setInterest() starts again, close() gives up.
import { FD_DISCONNECT, FD_READABLE, FD_WRITABLE, native as addon, type NativeFdWatcher } from './native.js';
import { DisposedError, mapNativeError, native } from './errors.js';

/** What a fd was found ready for: only events that were asked for are reported. */
export interface Readiness {
  readable: boolean;
  writable: boolean;
  /**
   * The peer hung up (EPOLLRDHUP, or EPOLLHUP). Reported only with `disconnect` in the interest;
   * libuv reports a bare EPOLLHUP (a pipe whose write end closed) as every watched event, so a
   * reader also sees readable and its read returns 0 (end of file).
   */
  disconnected: boolean;
}

/** Events to watch for. All false (or absent): paused, the fd stays registered with the watcher. */
export interface Interest {
  readable?: boolean;
  writable?: boolean;
  /** Also report a hang-up of the peer as `disconnected`. */
  disconnect?: boolean;
}

export interface WatchOptions {
  /** Receives errors reported while watching (a SyscallError); without it they are thrown. */
  onError?: (err: Error) => void;
}

function eventMask(interest: Interest): number {
  return (interest.readable ? FD_READABLE : 0) | (interest.writable ? FD_WRITABLE : 0) | (interest.disconnect ? FD_DISCONNECT : 0);
}

function checkFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`not an fd: ${fd}`);
}

/** The fix for the refusals a caller can cause, by errno code. */
function watchHint(fd: number): (code: string) => string {
  return (code) => {
    switch (code) {
      case 'EPERM':
        return `epoll cannot watch fd ${fd} (a regular file or directory, which is always ready)`;
      case 'EEXIST':
        return `fd ${fd} already has a watcher on this thread; libuv allows one`;
      case 'EBADF':
        return `fd ${fd} is not open`;
      default:
        return `watching fd ${fd}`;
    }
  };
}

export class FdWatcher {
  private handle: NativeFdWatcher | undefined;

  private constructor(
    readonly fd: number,
    /** True for an eventfd counter watcher, which watches readable only. */
    private readonly counter: boolean,
    events: number,
    deliver: (value: number) => void,
    private readonly onError: ((err: Error) => void) | undefined,
  ) {
    checkFd(fd);
    const ctor = addon().FdWatcher;
    this.handle = native(
      () =>
        new ctor(
          fd,
          events,
          (err?: Error, value?: number) => {
            if (err) return this.fail(err);
            if (this.handle && value !== undefined) deliver(value);
          },
          counter,
        ),
      watchHint(fd),
    );
  }

  /**
   * Calls onReady each time fd is ready for some of `interest` (level-triggered: until the caller
   * reads, writes or changes its interest, every turn of the event loop calls again).
   */
  static readiness(fd: number, interest: Interest, onReady: (r: Readiness) => void, options: WatchOptions = {}): FdWatcher {
    return new FdWatcher(
      fd,
      false,
      eventMask(interest),
      (mask) => onReady({ readable: (mask & FD_READABLE) !== 0, writable: (mask & FD_WRITABLE) !== 0, disconnected: (mask & FD_DISCONNECT) !== 0 }),
      options.onError,
    );
  }

  /**
   * Watches a non-blocking eventfd: each time it is signalled the addon reads (resets) its counter
   * and onSignal gets the count, > 0, of signals since the last read. A wake-up that finds the
   * counter already read calls nothing.
   */
  static eventfdCounter(fd: number, onSignal: (count: number) => void, options: WatchOptions = {}): FdWatcher {
    return new FdWatcher(
      fd,
      true,
      FD_READABLE,
      (count) => {
        if (count > 0) onSignal(count);
      },
      options.onError,
    );
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  /**
   * Replaces the events watched; none pauses without closing (nothing is reported while paused,
   * and a paused watcher does not hold the event loop open). An eventfd counter watcher takes
   * readable only.
   */
  setInterest(interest: Interest): void {
    if (!this.handle) throw new DisposedError('FdWatcher');
    if (this.counter && (interest.writable || interest.disconnect)) {
      throw new RangeError(`FdWatcher: the eventfd counter watcher of fd ${this.fd} watches readable only`);
    }
    const handle = this.handle;
    native(() => handle.setEvents(eventMask(interest)), watchHint(this.fd));
  }

  /** The watcher holds the event loop open while it watches (the default). */
  ref(): void {
    this.handle?.ref();
  }

  /** The watcher no longer holds the event loop open; it still reports while the loop runs. */
  unref(): void {
    this.handle?.unref();
  }

  /** Stops watching for good; idempotent, and allowed inside the watcher's own callback. */
  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }

  dispose(): void {
    this.close();
  }

  private fail(err: Error): void {
    const mapped = mapNativeError(err);
    const typed = mapped instanceof Error ? mapped : err;
    if (!this.onError) throw typed;
    this.onError(typed);
  }
}
