// io_uring for positional file I/O (addon/io_ring.cc): a transfer is handed to the kernel in the
// submitting call and its completion comes back on this thread's event loop, with no user-space
// thread hop either way. One ring per user (a virtio-blk disk owns one). Tags, waiting and
// completions: tagged-io.ts.
import { native as addon } from './native.js';
import { native } from './errors.js';
import { TaggedIo, type IoDone } from './tagged-io.js';

/** The end of one ring operation: bytes moved, or -errno. */
export type RingDone = IoDone;

/** Why an IoRing cannot be made here (no io_uring in the kernel, disabled, addon built without
 * liburing), or undefined when it can. Asked once per process. */
let supportAnswer: string | null | undefined;
export function ioRingUnsupported(): string | undefined {
  supportAnswer ??= native(() => addon().ioRingSupport());
  return supportAnswer ?? undefined;
}

/** Default ring size: a virtio-blk queue's worth of requests. */
export const IO_RING_ENTRIES = 256;

export class IoRing extends TaggedIo {
  constructor(entries: number = IO_RING_ENTRIES) {
    const why = ioRingUnsupported();
    const ctor = addon().IoRing;
    if (why !== undefined || !ctor) throw new Error(`io_uring is not available: ${why ?? 'no IoRing in the addon'}`);
    // io_uring_enter failing leaves the ring's contents unknown (TaggedIo.submit).
    super(entries, 'IoRing', (c, cb) => new ctor(entries, c, cb), (err) => err.syscall?.endsWith('io_uring_enter') === true);
  }
}
