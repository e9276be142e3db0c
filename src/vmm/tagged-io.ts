// Tagged positional file I/O with completions on this thread's event loop: what the addon's
// IoRing (io_uring) and IoThreads (a disk's own thread pool) have in common. Each operation gets a
// tag from a fixed set of `entries`; the addon hands back (tag, result) pairs in batches, result
// being bytes moved (>= 0, possibly short) or a negative errno. Past `entries` in flight,
// operations wait here, in order, and are submitted as earlier ones complete.
import type { NativeTaggedIo } from './native.js';
import { DisposedError, mapNativeError, native } from './errors.js';

/** The end of one operation: bytes moved, or -errno. */
export type IoDone = (result: number) => void;

type Op =
  | { kind: 'readv' | 'writev'; fd: number; buffers: readonly Uint8Array[]; position: number; done: IoDone }
  | { kind: 'fdatasync'; fd: number; done: IoDone };

/** Makes the addon object, given the shared completion array and the batch callback. */
export type NativeTaggedIoFactory = (completions: Int32Array, onComplete: (err?: Error, count?: number) => void) => NativeTaggedIo;

export class TaggedIo {
  private io: NativeTaggedIo | undefined;
  /** Callbacks (and the operation, whose buffers stay referenced) by tag. */
  private readonly slots: (Op | undefined)[];
  private readonly freeTags: number[] = [];
  /** Operations waiting for a free tag, oldest first (only past `entries` in flight). */
  private readonly waiting: Op[] = [];
  private inFlightCount = 0;

  /**
   * @param what names the object in errors ("IoRing").
   * @param isBroken says whether a submission's error means the addon object can no longer say
   *   which operations it holds (then everything fails with it; see submit()).
   */
  protected constructor(
    readonly entries: number,
    private readonly what: string,
    make: NativeTaggedIoFactory,
    private readonly isBroken: (err: { syscall?: string }) => boolean = () => false,
  ) {
    if (!Number.isInteger(entries) || entries < 1 || entries > 4096) throw new RangeError(`${what}: ${entries} entries; 1 to 4096`);
    this.slots = new Array<Op | undefined>(entries).fill(undefined);
    for (let t = entries - 1; t >= 0; t--) this.freeTags.push(t);
    const completions = new Int32Array(2 * entries);
    this.io = native(() =>
      make(completions, (err?: Error, count?: number) => {
        if (err) throw mapNativeError(err);
        this.complete(completions, count ?? 0);
      }),
    );
  }

  /** Operations submitted and not yet completed, and those waiting for room. */
  get inFlight(): number {
    return this.inFlightCount + this.waiting.length;
  }

  readv(fd: number, buffers: readonly Uint8Array[], position: number, done: IoDone): void {
    this.start({ kind: 'readv', fd, buffers, position, done });
  }

  writev(fd: number, buffers: readonly Uint8Array[], position: number, done: IoDone): void {
    this.start({ kind: 'writev', fd, buffers, position, done });
  }

  /** fdatasync(2) of fd, after nothing in particular: callers order it themselves. */
  fdatasync(fd: number, done: IoDone): void {
    this.start({ kind: 'fdatasync', fd, done });
  }

  /** Stops it. Callers close it with nothing in flight (a device quiesces first); callbacks of
   * operations still in flight never run. */
  close(): void {
    this.io?.close();
    this.io = undefined;
  }

  private start(op: Op): void {
    if (!this.io) throw new DisposedError(this.what);
    const tag = this.freeTags.pop();
    if (tag === undefined) {
      this.waiting.push(op);
      return;
    }
    this.submit(this.io, tag, op);
  }

  /**
   * Submits op under tag. Should the submission fail in a way after which the addon object cannot
   * say which operations it holds (isBroken: io_uring_enter failing, which a ring that never holds
   * more than `entries` operations does not meet in practice), it is closed, and every operation
   * it held or that waited fails with that errno, op included. Refusals of op alone (a bad
   * argument) throw, with everything as it was.
   */
  private submit(io: NativeTaggedIo, tag: number, op: Op): void {
    this.slots[tag] = op;
    this.inFlightCount++;
    try {
      native(() => (op.kind === 'fdatasync' ? io.fdatasync(op.fd, tag) : io[op.kind](op.fd, op.buffers, op.position, tag)));
    } catch (e) {
      const err = e as { syscall?: string; errno?: number };
      if (this.isBroken(err)) return this.fail(-(err.errno ?? 5));
      // Refused before anything was queued (a bad argument, no free entry): op was not taken.
      this.slots[tag] = undefined;
      this.freeTags.push(tag);
      this.inFlightCount--;
      throw e;
    }
  }

  /** Closes it and fails everything it held or that waited with `result`. */
  private fail(result: number): void {
    this.close();
    const held = [...this.slots.filter((o): o is Op => o !== undefined), ...this.waiting];
    this.slots.fill(undefined);
    this.waiting.length = 0;
    this.inFlightCount = 0;
    for (const op of held) op.done(result);
  }

  private complete(completions: Int32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const tag = completions[2 * i]!;
      const op = this.slots[tag];
      if (!op) continue; // cannot happen: the addon returns only tags we submitted
      this.slots[tag] = undefined;
      this.freeTags.push(tag);
      this.inFlightCount--;
      op.done(completions[2 * i + 1]!);
    }
    this.submitWaiting();
  }

  private submitWaiting(): void {
    while (this.io && this.waiting.length > 0 && this.freeTags.length > 0) {
      const op = this.waiting.shift()!;
      try {
        this.submit(this.io, this.freeTags.pop()!, op);
      } catch {
        op.done(-22); // EINVAL: refused as an argument (the caller is long gone: its callback says so)
      }
    }
  }
}
