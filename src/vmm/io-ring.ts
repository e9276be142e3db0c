// io_uring for positional file I/O (addon/io_ring.cc): a transfer is handed to the kernel in the
// submitting call and its completion comes back on this thread's event loop, with no libuv
// threadpool hop either way. One ring per user (a virtio-blk disk owns one).
//
// The ring carries at most `entries` operations; more wait here, in order, and are submitted as
// earlier ones complete. Each operation's callback gets the kernel's result: bytes moved (>= 0,
// possibly short) or a negative errno.
import { native as addon, type NativeIoRing } from './native.js';
import { DisposedError, mapNativeError, native } from './errors.js';

/** The end of one ring operation: bytes moved, or -errno. */
export type RingDone = (result: number) => void;

/** Why an IoRing cannot be made here (no io_uring in the kernel, disabled, addon built without
 * liburing), or undefined when it can. Asked once per process. */
let supportAnswer: string | null | undefined;
export function ioRingUnsupported(): string | undefined {
  supportAnswer ??= native(() => addon().ioRingSupport());
  return supportAnswer ?? undefined;
}

type Op =
  | { kind: 'readv' | 'writev'; fd: number; buffers: readonly Uint8Array[]; position: number; done: RingDone }
  | { kind: 'fdatasync'; fd: number; done: RingDone };

/** Default ring size: a virtio-blk queue's worth of requests. */
export const IO_RING_ENTRIES = 256;

export class IoRing {
  private ring: NativeIoRing | undefined;
  /** Callbacks (and the operation, whose buffers stay referenced) by tag. */
  private readonly slots: (Op | undefined)[];
  private readonly freeTags: number[] = [];
  /** Operations waiting for a free tag, oldest first (only past `entries` in flight). */
  private readonly waiting: Op[] = [];
  private inFlightCount = 0;

  constructor(readonly entries: number = IO_RING_ENTRIES) {
    const why = ioRingUnsupported();
    const ctor = addon().IoRing;
    if (why !== undefined || !ctor) throw new Error(`io_uring is not available: ${why ?? 'no IoRing in the addon'}`);
    if (!Number.isInteger(entries) || entries < 1 || entries > 4096) throw new RangeError(`IoRing: ${entries} entries; 1 to 4096`);
    this.slots = new Array<Op | undefined>(entries).fill(undefined);
    for (let t = entries - 1; t >= 0; t--) this.freeTags.push(t);
    const completions = new Int32Array(2 * entries);
    this.ring = native(
      () =>
        new ctor(entries, completions, (err?: Error, count?: number) => {
          if (err) throw mapNativeError(err);
          this.complete(completions, count ?? 0);
        }),
    );
  }

  /** Operations submitted and not yet completed, and those waiting for room in the ring. */
  get inFlight(): number {
    return this.inFlightCount + this.waiting.length;
  }

  readv(fd: number, buffers: readonly Uint8Array[], position: number, done: RingDone): void {
    this.start({ kind: 'readv', fd, buffers, position, done });
  }

  writev(fd: number, buffers: readonly Uint8Array[], position: number, done: RingDone): void {
    this.start({ kind: 'writev', fd, buffers, position, done });
  }

  /** fdatasync(2) of fd, after nothing in particular: callers order it themselves. */
  fdatasync(fd: number, done: RingDone): void {
    this.start({ kind: 'fdatasync', fd, done });
  }

  /** Stops the ring. Operations still in flight are the kernel's to finish or cancel; their
   * callbacks never run (callers close a ring with nothing in flight: a device quiesces first). */
  close(): void {
    this.ring?.close();
    this.ring = undefined;
  }

  private start(op: Op): void {
    if (!this.ring) throw new DisposedError('IoRing');
    const tag = this.freeTags.pop();
    if (tag === undefined) {
      this.waiting.push(op);
      return;
    }
    this.submit(this.ring, tag, op);
  }

  /**
   * Submits op under tag. Should the kernel refuse the submission itself (io_uring_enter failing,
   * which a ring that never holds more than `entries` operations does not meet in practice), the
   * ring cannot be trusted to say which operations it holds: it is closed, and every operation
   * it held or that waited fails with that errno, op included. Refusals of op alone (a bad
   * argument) throw, with the ring as it was.
   */
  private submit(ring: NativeIoRing, tag: number, op: Op): void {
    this.slots[tag] = op;
    this.inFlightCount++;
    try {
      native(() => (op.kind === 'fdatasync' ? ring.fdatasync(op.fd, tag) : ring[op.kind](op.fd, op.buffers, op.position, tag)));
    } catch (e) {
      const err = e as { syscall?: string; errno?: number };
      if (err.syscall?.endsWith('io_uring_enter')) return this.fail(-(err.errno ?? 5));
      // Refused before anything was queued (a bad argument, no free entry): op was not taken.
      this.slots[tag] = undefined;
      this.freeTags.push(tag);
      this.inFlightCount--;
      throw e;
    }
  }

  /** Closes the ring and fails everything it held or that waited with `result`. */
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
    while (this.ring && this.waiting.length > 0 && this.freeTags.length > 0) {
      const op = this.waiting.shift()!;
      try {
        this.submit(this.ring, this.freeTags.pop()!, op);
      } catch {
        op.done(-22); // EINVAL: refused as an argument (the caller is long gone: its callback says so)
      }
    }
  }
}
