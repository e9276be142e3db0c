// A disk's own thread pool for positional file I/O (addon/io_threads.cc, QEMU's aio=threads):
// workers do preadv/pwritev/fdatasync and their completions come back on this thread's event
// loop in batches. Tags, waiting and completions: tagged-io.ts.
import { native as addon } from './native.js';
import { TaggedIo } from './tagged-io.js';

/** Operations one pool keeps in flight (a virtio-blk queue's worth); more wait in order. */
export const IO_THREADS_ENTRIES = 256;
/** Workers one pool starts at most, as work finds none idle: one per request of a guest at queue
 * depth 8. libuv's shared pool has 4 for the whole process; QEMU's allows 64. */
export const IO_THREADS_MAX = 8;

export class IoThreads extends TaggedIo {
  constructor(threads: number = IO_THREADS_MAX, entries: number = IO_THREADS_ENTRIES) {
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new RangeError(`IoThreads: ${threads} threads; 1 to 64`);
    const ctor = addon().IoThreads;
    super(entries, 'IoThreads', (c, cb) => new ctor(threads, c, cb));
  }
}
