// virtio-blk (virtio 1.2 §5.2): one request queue over a raw image file.
//
// notify(0) drains the available ring (ActiveQueue.drain: notification suppression, §2.7.10),
// parses each chain (request.ts) and starts its backend work at once, without waiting for the
// previous one: requests complete out of order, which virtio-blk allows (each carries its own
// status; ordering is the driver's business, and a FLUSH covers the writes that completed before
// it was issued, §5.2.6.4).
// A read whose data the host's page cache holds completes at once, inside the drain
// (backend.readNow: no threadpool round trip, straight into the guest's buffers; where the cache
// holds only a prefix, the rest goes the asynchronous way without reading the prefix again);
// everything else completes later, from libuv (reads and writes through the backend's callback
// forms, startRead and startWrite: no promise per request). On completion the status byte is
// written and the chain returned with pushUsed; the interrupt check comes once per batch
// (UsedNotifier): at the end of the drain for what completed inside it, at once for the last
// request in flight, else once per event-loop turn, so a batch of completions costs one
// needsNotification and at most one interrupt.
//
// Reset. reset() ends the activation's QueueSession: a completion from an earlier one writes no
// status, touches no ring and raises no interrupt. Data moves straight between the image and the
// guest's buffers (zero copy, both ways), and a transfer handed to the threadpool or the io_uring
// cannot be cancelled; quiesce() therefore resolves only when no backend work is in flight, and
// the transport holds the driver's reset write until then (ResetBarrier, mmio.ts), so the driver
// cannot reuse those pages while a read may still land in them (virtio 1.2 §2.4).
import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import type { ActivateContext, VirtioDevice } from '../device.js';
import type { DescriptorChain } from '../chain.js';
import type { ActiveQueue } from '../active-queue.js';
import { QueueSession } from '../queue-session.js';
import { InFlight } from '../in-flight.js';
import {
  QUEUE_MAX_SIZE,
  VIRTIO_BLK_DEVICE_ID,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  blockConfig,
  blockFeatures,
  capacitySectors,
  serialBytes,
  type BlockGeometry,
} from './config.js';
import { FileBackend, buffersAfter, type BlockBackend, type IoEngine } from './backend.js';
import {
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  isUnusable,
  parseRequest,
  type BlockOp,
  type BlockStatus,
  type ParsedRequest,
  type RequestLimits,
} from './request.js';

/** The status byte of each answer, made once (complete() writes one per request). */
const STATUS_BYTE: Record<BlockStatus, Uint8Array> = {
  [VIRTIO_BLK_S_OK]: Uint8Array.of(VIRTIO_BLK_S_OK),
  [VIRTIO_BLK_S_IOERR]: Uint8Array.of(VIRTIO_BLK_S_IOERR),
  [VIRTIO_BLK_S_UNSUPP]: Uint8Array.of(VIRTIO_BLK_S_UNSUPP),
};

/** A bad option or a misuse of the device (not a guest error: those become statuses). */
export class VirtioBlockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VirtioBlockError';
  }
}

export interface VirtioBlockOptions {
  /** The raw image file. Its size at open time, rounded down to 512 bytes, is the capacity. */
  readonly path: string;
  /** Open O_RDONLY, offer VIRTIO_BLK_F_RO, and answer every write with VIRTIO_BLK_S_IOERR. */
  readonly readOnly?: boolean;
  /** GET_ID serial, at most 20 bytes of UTF-8; default derived from the path (see defaultSerial). */
  readonly serial?: string;
  /** Offer VIRTIO_BLK_F_DISCARD. Default: where the backend really deallocates (canDiscard,
   * backend.ts); true offers it anyway (a validated no-op where it cannot). */
  readonly discard?: boolean;
  /** Offer VIRTIO_BLK_F_WRITE_ZEROES on a writable disk. Default true. */
  readonly writeZeroes?: boolean;
  /** Open the image O_DIRECT: no host page cache (QEMU's cache=none; backend.ts). Default false. */
  readonly direct?: boolean;
  /** How transfers reach the kernel (backend.ts); default defaultIoEngine(direct). */
  readonly engine?: IoEngine;
}

/** Counters for `--stats`. Bytes count completed backend transfers. */
export interface BlockMetrics {
  /** Chains taken from the queue. */
  requests: number;
  /** Buffer descriptors in those chains (header, data and status): per request, the
   * scatter-gather width the driver sends (1 MiB from scattered guest pages: up to 256 + 2). */
  descriptors: number;
  reads: number;
  /** ...of which the page cache answered at once (backend.readNow). */
  cachedReads: number;
  /** ...of which it held a prefix, copied at once; the rest was read the asynchronous way. */
  partlyCachedReads: number;
  writes: number;
  flushes: number;
  getIds: number;
  discards: number;
  writeZeroes: number;
  readBytes: number;
  writtenBytes: number;
  /** Requests answered VIRTIO_BLK_S_IOERR (guest errors and backend failures). */
  ioErrors: number;
  /** ...of which the backend failed (the rest were invalid requests). */
  backendErrors: number;
  /** Requests answered VIRTIO_BLK_S_UNSUPP. */
  unsupported: number;
  /** Chains returned with len 0: malformed descriptors, or no byte for the status. */
  malformed: number;
  /** Completions dropped because the device was reset while they ran. */
  dropped: number;
  /** Interrupts raised. */
  interrupts: number;
}

function newMetrics(): BlockMetrics {
  return {
    requests: 0,
    descriptors: 0,
    reads: 0,
    cachedReads: 0,
    partlyCachedReads: 0,
    writes: 0,
    flushes: 0,
    getIds: 0,
    discards: 0,
    writeZeroes: 0,
    readBytes: 0,
    writtenBytes: 0,
    ioErrors: 0,
    backendErrors: 0,
    unsupported: 0,
    malformed: 0,
    dropped: 0,
    interrupts: 0,
  };
}

/**
 * The default serial: the image's file name (characters outside [A-Za-z0-9._-] replaced by '_',
 * cut to 11 bytes), '-', and 8 hex digits of the SHA-256 of its absolute path, so that two images
 * of the same name in different directories get different serials. At most 20 bytes.
 */
export function defaultSerial(path: string): string {
  const name = basename(path).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 11) || 'disk';
  const hash = createHash('sha256').update(resolve(path)).digest('hex').slice(0, 8);
  return `${name}-${hash}`;
}

/** One activation: what a completion checks to know whether it is still wanted. */
interface Active {
  readonly session: QueueSession;
  /** Queue 0, the request queue. */
  readonly requests: ActiveQueue;
  readonly limits: RequestLimits;
}

export class VirtioBlock implements VirtioDevice {
  readonly deviceId = VIRTIO_BLK_DEVICE_ID;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[] = [QUEUE_MAX_SIZE];
  readonly config: Uint8Array;
  /** Disk size in 512-byte sectors. */
  readonly capacity: bigint;
  readonly serial: string;
  private readonly serialId: Uint8Array;
  private readonly metricsData = newMetrics();
  private active: Active | undefined;
  private readonly work = new InFlight();
  private disposed = false;

  private constructor(
    readonly backend: BlockBackend,
    private readonly geometry: BlockGeometry,
    serial: string,
  ) {
    this.features = blockFeatures(geometry);
    this.config = blockConfig(geometry);
    this.capacity = capacitySectors(geometry.sizeBytes);
    this.serial = serial;
    this.serialId = serialBytes(serial);
  }

  /** Opens the image and builds the device. Throws BlockBackendError or VirtioBlockError. */
  static async open(options: VirtioBlockOptions): Promise<VirtioBlock> {
    const serial = VirtioBlock.checkSerial(options);
    const backend = await FileBackend.open(options.path, options.readOnly ?? false, {
      direct: options.direct ?? false,
      ...(options.engine ? { engine: options.engine } : {}),
    });
    return VirtioBlock.withBackend(backend, { ...options, serial });
  }

  /** Builds the device over any backend (tests inject failing or slow ones). */
  static withBackend(backend: BlockBackend, options: Omit<VirtioBlockOptions, 'path' | 'readOnly'> = {}): VirtioBlock {
    const serial = VirtioBlock.checkSerial({ ...options, path: backend.path });
    return new VirtioBlock(
      backend,
      { sizeBytes: backend.size, readOnly: backend.readOnly, discard: options.discard ?? backend.canDiscard ?? false, writeZeroes: options.writeZeroes, blockSize: backend.blockSize },
      serial,
    );
  }

  private static checkSerial(options: VirtioBlockOptions): string {
    const serial = options.serial ?? defaultSerial(options.path);
    const len = new TextEncoder().encode(serial).byteLength;
    if (len > VIRTIO_BLK_ID_BYTES) {
      throw new VirtioBlockError(`virtio-blk ${options.path}: serial "${serial}" is ${len} bytes; GET_ID allows at most ${VIRTIO_BLK_ID_BYTES} (§5.2.6)`);
    }
    return serial;
  }

  get readOnly(): boolean {
    return this.geometry.readOnly;
  }

  /** A snapshot of the counters, plus requests in flight now and (direct mode) the backend's
   * requests that O_DIRECT could not take (FileBackend.bufferedFallbacks, directRefused). */
  metrics(): Readonly<BlockMetrics> & { inFlight: number; engine?: IoEngine; bufferedFallbacks?: number; directRefused?: number } {
    const { direct, bufferedFallbacks, directRefused, engine } = this.backend;
    return {
      ...this.metricsData,
      inFlight: this.work.size,
      ...(engine ? { engine } : {}),
      ...(direct ? { bufferedFallbacks, directRefused } : {}),
    };
  }

  /** Requests whose backend work has not finished (including those of an earlier activation). */
  get inFlight(): number {
    return this.work.size;
  }

  /** After reset(): resolves when no backend work (which may write guest memory) is in flight. */
  quiesce(): Promise<void> {
    return this.whenIdle();
  }

  /** Resolves when no backend work is in flight. */
  whenIdle(): Promise<void> {
    return this.work.whenIdle();
  }

  activate(ctx: ActivateContext): void {
    this.reset();
    if (this.disposed) {
      ctx.needsReset('virtio-blk: activated after dispose()');
      return;
    }
    const m = this.metricsData;
    const session = new QueueSession(ctx, 'virtio-blk');
    const requests = session.queue(0, {
      // The last request in flight has no later completion to batch with: waiting a turn would
      // cost every request at queue depth 1 an extra epoll_wait. The in-flight count still holds the
      // request completing now (settled() comes after).
      checkAtOnce: () => this.work.size <= 1,
      onInterrupt: () => {
        m.interrupts++;
      },
      onBadChain: () => {
        m.requests++;
        m.malformed++;
      },
    });
    if (!requests) {
      ctx.needsReset('virtio-blk: DRIVER_OK without request queue 0 ready');
      return;
    }
    const has = (bit: number): boolean => ((ctx.features & this.features) >> BigInt(bit)) & 1n ? true : false;
    this.active = {
      session,
      requests,
      limits: {
        capacity: Number(this.capacity),
        readOnly: this.geometry.readOnly,
        discard: has(VIRTIO_BLK_F_DISCARD),
        writeZeroes: has(VIRTIO_BLK_F_WRITE_ZEROES),
      },
    };
  }

  notify(index: number): void {
    const a = this.active;
    if (index !== 0 || !a) return;
    a.requests.drain((chain) => this.start(a, chain));
  }

  reset(): void {
    this.active?.session.end();
    this.active = undefined;
  }

  /** Stops serving, waits for in-flight backend work, and closes the image. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.reset();
    await this.whenIdle();
    await this.backend.close();
  }

  // --- requests ------------------------------------------------------------------------------

  private start(a: Active, chain: DescriptorChain): void {
    const m = this.metricsData;
    m.requests++;
    m.descriptors += chain.descriptorCount;
    const req = parseRequest(chain, a.limits);
    if (isUnusable(req)) {
      m.malformed++;
      a.requests.pushUsed(req.head, 0);
      return;
    }
    const op = req.op;
    if (!op) {
      this.complete(a, chain, req, req.status, 0);
      return;
    }
    if (op.kind === 'get-id') {
      m.getIds++;
      chain.writer().write(this.serialId);
      this.complete(a, chain, req, VIRTIO_BLK_S_OK, VIRTIO_BLK_ID_BYTES);
      return;
    }
    if (op.kind === 'read') {
      const cached = this.readNow(a, chain, req, op);
      if (cached === undefined) return;
      // The backend's callback forms: the completion is one call, no promise per request. A read
      // goes straight into the guest's buffers (a reset meanwhile waits for it: quiesce()); what
      // readNow already copied is not read again.
      if (cached > 0) this.metricsData.partlyCachedReads++;
      this.work.start();
      const done = (err: Error | undefined): void => this.transferred(a, chain, req, op, err);
      this.backend.startRead(op.offset + cached, cached === 0 ? op.buffers : buffersAfter(op.buffers, cached), done);
      return;
    }
    if (op.kind === 'write') {
      this.work.start();
      this.backend.startWrite(op.offset, op.buffers, (err) => this.transferred(a, chain, req, op, err));
      return;
    }
    this.work.start();
    this.runOp(op).then(
      () => this.complete(a, chain, req, VIRTIO_BLK_S_OK, 0),
      () => {
        m.backendErrors++;
        this.complete(a, chain, req, VIRTIO_BLK_S_IOERR, 0);
      },
    ).finally(() => this.settled());
  }

  /**
   * What of a read the backend can do without waiting (cached data), straight into the guest's
   * buffers: it runs to the end before anything else can, so no reset can come between it and
   * the completion. undefined: the request is answered (all of it was read, or the read failed);
   * else the bytes already read (0 included), the rest to be read the asynchronous way.
   */
  private readNow(a: Active, chain: DescriptorChain, req: ParsedRequest, op: Extract<BlockOp, { kind: 'read' }>): number | undefined {
    const m = this.metricsData;
    let cached: number;
    try {
      cached = this.backend.readNow?.(op.offset, op.buffers, op.length) ?? 0;
    } catch {
      m.backendErrors++;
      this.complete(a, chain, req, VIRTIO_BLK_S_IOERR, 0);
      return undefined;
    }
    if (cached < op.length) return cached;
    m.reads++;
    m.readBytes += op.length;
    m.cachedReads++;
    this.complete(a, chain, req, VIRTIO_BLK_S_OK, op.length);
    return undefined;
  }

  /** The end of a read or write (backend.startRead, startWrite). */
  private transferred(a: Active, chain: DescriptorChain, req: ParsedRequest, op: Extract<BlockOp, { kind: 'read' | 'write' }>, err: Error | undefined): void {
    const m = this.metricsData;
    if (err) {
      m.backendErrors++;
      this.complete(a, chain, req, VIRTIO_BLK_S_IOERR, 0);
    } else if (op.kind === 'read') {
      m.reads++;
      m.readBytes += op.length;
      this.complete(a, chain, req, VIRTIO_BLK_S_OK, op.length);
    } else {
      m.writes++;
      m.writtenBytes += op.length;
      this.complete(a, chain, req, VIRTIO_BLK_S_OK, 0);
    }
    this.settled();
  }

  /** The backend work of FLUSH, WRITE_ZEROES and DISCARD (the rest is answered in start()). */
  private async runOp(op: Exclude<BlockOp, { kind: 'get-id' | 'read' | 'write' }>): Promise<void> {
    const m = this.metricsData;
    switch (op.kind) {
      case 'flush':
        await this.backend.flush();
        m.flushes++;
        return;
      case 'write-zeroes':
        for (const r of op.ranges) await this.backend.writeZeroes(r.offset, r.length);
        m.writeZeroes++;
        return;
      case 'discard':
        for (const r of op.ranges) await this.backend.discard(r.offset, r.length);
        m.discards++;
        return;
    }
  }

  private settled(): void {
    this.work.settle();
  }

  /**
   * Answers a request: every writable byte after the first `dataWritten` and before the status is
   * zeroed (so that the used length, the whole writable side, is bytes we really wrote, §2.7.8.2),
   * the status goes in the last writable byte, and the chain is returned.
   */
  private complete(a: Active, chain: DescriptorChain, req: ParsedRequest, status: BlockStatus, dataWritten: number): void {
    const m = this.metricsData;
    if (this.active !== a || !a.session.live) {
      m.dropped++;
      return;
    }
    if (status === VIRTIO_BLK_S_IOERR) m.ioErrors++;
    else if (status === VIRTIO_BLK_S_UNSUPP) m.unsupported++;
    const w = chain.writer();
    w.skip(dataWritten);
    const unwritten = req.writableLength - 1 - dataWritten;
    if (unwritten > 0) for (const v of w.take(unwritten)) v.fill(0);
    w.write(STATUS_BYTE[status]);
    a.requests.pushUsed(req.head, req.writableLength);
  }
}
