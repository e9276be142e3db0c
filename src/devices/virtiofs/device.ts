// virtio-fs (virtio 1.2 §5.11): the queues and plumbing around a FUSE server (fuse-handler.ts).
// Queue 0 is hiprio, 1..N the request queues (§5.11.2); config: the tag and num_request_queues
// (§5.11.4); a DAX window, when asked for, is shared-memory region 0 (§5.11.5). No device feature
// bits: the transport offers VERSION_1, INDIRECT_DESC and EVENT_IDX; VIRTIO_FS_F_NOTIFICATION
// is not offered.
//
// Each descriptor chain is one FUSE request (§5.11.6): its driver-readable views go to the
// handler as the request, its device-writable views as the reply, in chain order and without a
// copy. A chain with a readable descriptor after a writable one is malformed (§2.7.4.2): the
// chain parser refuses it and ActiveQueue returns it with used length 0. Requests complete in
// any order; the used entry goes out when the handler's promise settles, with the length it
// resolved (0 when it rejected: a server bug, logged and counted, never a crash). Each queue has
// at most maxInFlightPerQueue requests at the handler: at the bound the queue is held
// (ActiveQueue canTake) and taken up again as requests complete.
//
// Reset ends the activation (nothing of it touches a ring or raises an interrupt afterwards) and
// resets the server's session; quiesce() waits until every handler call started before it has
// settled, since READ data goes straight into the guest's buffers (InFlight).
import type { ActiveQueue } from '../virtio/active-queue.js';
import type { DescriptorChain } from '../virtio/chain.js';
import type { ActivateContext, DeviceHost, DeviceMetrics, SharedMemoryGrant, SharedMemoryRequest, VirtioDevice } from '../virtio/device.js';
import { InFlight } from '../virtio/in-flight.js';
import { QueueSession } from '../virtio/queue-session.js';
import type { FuseRequestHandler } from './fuse-handler.js';
import {
  DAX_WINDOW_ALIGN_MIB,
  FIRST_REQUEST_QUEUE,
  VIRTIO_FS_QUEUE_SIZE,
  VIRTIO_FS_SHMCAP_ID_CACHE,
  VIRTIO_ID_FS,
  daxWindowProblem,
  fsConfig,
} from './config.js';
import { VirtioFsError } from './errors.js';

/**
 * Requests per queue at the handler at once, by default. The ring (1024 entries) bounds it too;
 * this bound keeps a guest from queueing more work at the server than its I/O (threadpool,
 * io_uring) can usefully overlap, while staying deep enough not to throttle it.
 */
export const DEFAULT_MAX_IN_FLIGHT = 256;

export interface VirtioFsOptions {
  /** What the guest mounts (`mount -t virtiofs TAG /mnt`): 1 to 36 bytes of UTF-8 (§5.11.4). */
  readonly tag: string;
  /** num_request_queues (§5.11.4); default 1, at most MAX_REQUEST_QUEUES. */
  readonly numRequestQueues?: number;
  /** DAX window size in MiB (shared-memory region 0); 0 or absent: no window. */
  readonly daxWindowMiB?: number;
  /** Requests per queue at the handler at once; default DEFAULT_MAX_IN_FLIGHT. */
  readonly maxInFlightPerQueue?: number;
}

/** Counters for `--stats`; the handler's own metrics are merged in by metrics(). */
interface FsCounters {
  /** Chains taken from each queue (index 0: hiprio), malformed ones included. */
  requests: number[];
  /** Requests whose used entry was pushed. */
  completed: number;
  /** Chains the parser refused (§2.7.4.2 order, out-of-range buffers, loops), returned with len 0. */
  malformedChains: number;
  /** Handler calls that threw, rejected or resolved a length the chain cannot hold (len 0 returned). */
  handlerFailures: number;
  /** Completions that came after a reset, dropped. */
  dropped: number;
  interrupts: number;
}

interface Active {
  readonly session: QueueSession;
  /** By queue index; undefined where the driver did not make the queue ready. */
  readonly queues: readonly (ActiveQueue | undefined)[];
  /** By queue index: requests of this activation at the handler. */
  readonly inFlight: number[];
}

export class VirtioFs implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_FS;
  readonly features = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly config: Uint8Array;
  readonly sharedMemory: readonly SharedMemoryRequest[];
  readonly tag: string;
  readonly numRequestQueues: number;
  private readonly maxInFlight: number;
  private readonly counters: FsCounters;
  private readonly work = new InFlight();
  private active: Active | undefined;
  private log: (line: string) => void = () => {};
  private grants: readonly SharedMemoryGrant[] = [];
  private disposed = false;

  constructor(
    private readonly handler: FuseRequestHandler,
    options: VirtioFsOptions,
  ) {
    const queues = options.numRequestQueues ?? 1;
    this.config = fsConfig(options.tag, queues);
    this.tag = options.tag;
    this.numRequestQueues = queues;
    this.queueMaxSizes = new Array<number>(FIRST_REQUEST_QUEUE + queues).fill(VIRTIO_FS_QUEUE_SIZE);
    const dax = options.daxWindowMiB ?? 0;
    const daxProblem = daxWindowProblem(dax);
    if (daxProblem) throw new VirtioFsError(`virtio-fs ${options.tag}: DAX window ${daxProblem}`);
    this.sharedMemory = dax === 0 ? [] : [{ id: VIRTIO_FS_SHMCAP_ID_CACHE, length: BigInt(dax) << 20n, align: BigInt(DAX_WINDOW_ALIGN_MIB) << 20n }];
    const bound = options.maxInFlightPerQueue ?? DEFAULT_MAX_IN_FLIGHT;
    if (!Number.isInteger(bound) || bound < 1) throw new VirtioFsError(`virtio-fs ${options.tag}: maxInFlightPerQueue ${bound} is not a whole number >= 1`);
    this.maxInFlight = bound;
    this.counters = { requests: this.queueMaxSizes.map(() => 0), completed: 0, malformedChains: 0, handlerFailures: 0, dropped: 0, interrupts: 0 };
  }

  attach(host: DeviceHost): void {
    this.log = (line) => host.log(line);
    this.grants = host.sharedMemory;
  }

  /** Where the VMM placed the DAX window (shmid 0), once attached; undefined without one. */
  get daxWindow(): SharedMemoryGrant | undefined {
    return this.grants.find((g) => g.id === VIRTIO_FS_SHMCAP_ID_CACHE);
  }

  /** Handler calls not yet settled, of this activation and earlier ones. */
  get inFlight(): number {
    return this.work.size;
  }

  /** The handler's metrics, then the device's (a device key wins over a handler key of the same name). */
  metrics(): DeviceMetrics {
    const c = this.counters;
    const perQueue: Record<string, number> = {};
    c.requests.forEach((n, i) => {
      perQueue[i === 0 ? 'hiprioRequests' : `queue${i}Requests`] = n;
    });
    return {
      ...this.handler.metrics(),
      requests: c.requests.reduce((a, b) => a + b, 0),
      ...perQueue,
      inFlight: this.work.size,
      completed: c.completed,
      malformedChains: c.malformedChains,
      handlerFailures: c.handlerFailures,
      dropped: c.dropped,
      interrupts: c.interrupts,
    };
  }

  activate(ctx: ActivateContext): void {
    const session = new QueueSession(ctx, 'virtio-fs');
    if (this.disposed) {
      session.fail('activated after dispose()');
      return;
    }
    const inFlight = this.queueMaxSizes.map(() => 0);
    const queues = this.queueMaxSizes.map((_, index) =>
      session.queue(index, {
        // The last request in flight on this queue has no later completion to batch with.
        checkAtOnce: () => (inFlight[index] as number) <= 1,
        canTake: () => (inFlight[index] as number) < this.maxInFlight,
        onInterrupt: () => void this.counters.interrupts++,
        onBadChain: () => {
          this.counters.requests[index]++;
          this.counters.malformedChains++;
        },
      }),
    );
    if (!queues[FIRST_REQUEST_QUEUE]) {
      session.fail(`DRIVER_OK without request queue ${FIRST_REQUEST_QUEUE} ready`);
      return;
    }
    this.active = { session, queues, inFlight };
  }

  notify(index: number): void {
    const a = this.active;
    const queue = a?.queues[index];
    if (!a || !queue) return;
    queue.drain((chain) => this.start(a, queue, chain));
  }

  reset(): void {
    const a = this.active;
    this.active = undefined;
    if (!a) return;
    a.session.end();
    this.handler.reset();
  }

  /** After reset(): resolves once no handler call started before it can write guest memory. */
  quiesce(): Promise<void> {
    return this.work.whenIdle();
  }

  /** Stops serving, waits for the handler calls in flight, and disposes of the server. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.reset();
    await this.work.whenIdle();
    await this.handler.dispose();
  }

  private start(a: Active, queue: ActiveQueue, chain: DescriptorChain): void {
    const index = queue.index;
    this.counters.requests[index]++;
    a.inFlight[index]++;
    this.work.start();
    let reply: Promise<number>;
    try {
      // Promise.resolve: a handler that returns a plain number still completes (a promise passes as is).
      reply = Promise.resolve(this.handler.handle({ request: chain.readable, reply: chain.writable }, index));
    } catch (e) {
      reply = Promise.reject(e);
    }
    reply.then(
      (len) => {
        if (Number.isInteger(len) && len >= 0 && len <= chain.writableLength) return this.finish(a, queue, chain.head, len);
        // §2.7.8.2: the used length may not claim more than the device-writable buffers hold.
        this.failed(a, queue, chain.head, `resolved used length ${String(len)} for a chain with ${chain.writableLength} writable bytes`);
      },
      (e: unknown) => this.failed(a, queue, chain.head, e instanceof Error ? (e.stack ?? e.message) : String(e)),
    );
  }

  private failed(a: Active, queue: ActiveQueue, head: number, what: string): void {
    this.counters.handlerFailures++;
    this.log(`virtio-fs ${this.tag}: FUSE handler failed on queue ${queue.index} (head ${head}): ${what}`);
    this.finish(a, queue, head, 0);
  }

  /** The handler is done with the chain: its used entry (if the activation is still on), then room for the next. */
  private finish(a: Active, queue: ActiveQueue, head: number, len: number): void {
    if (this.active === a && queue.pushUsed(head, len)) this.counters.completed++;
    else this.counters.dropped++;
    a.inFlight[queue.index]--;
    this.work.settle();
    if (this.active === a) queue.resume();
  }
}
