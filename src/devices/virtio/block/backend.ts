// The block backend: a raw image file, accessed with positional vectored I/O.
//
// I/O path: two engines, QEMU's aio=threads and aio=io_uring (FileBackendOptions.engine).
// - io_uring (the default for an O_DIRECT image where the kernel and the addon have it;
//   src/vmm/io-ring.ts): each transfer is a readv/writev on the disk's own ring, submitted in
//   the call; its completion comes back through an eventfd on the event loop. No user-space
//   thread carries the request: an O_DIRECT transfer on a device that takes non-blocking I/O is
//   issued in the submitting call, and whatever must wait is carried by the kernel's io-wq.
// - threads (the default otherwise): reads that miss the page cache are fs.readv(fd, buffers,
//   position, callback), preadv on libuv's threadpool (startRead); writes are fs.writev, pwritev
//   on the same threadpool (startWrite): one callback per completion, because
//   FileHandle.readv/writev resolve a chain of promises per request (node:fs's own and ours),
//   which cost 15% of a 4 KiB write's main-thread CPU on the host and more in the nested test bed
//   (bench/README.md, session 6). Up to UV_THREADPOOL_SIZE (4 by default) requests proceed at
//   once, shared with the rest of the process's fs/dns/crypto work.
// Either way the event loop never blocks and the guest's buffers are passed as they are
// (zero-copy: the views point into guest memory).
// Why io_uring for O_DIRECT only (bench/README.md, session 8): on this project's host (ext4 on a
// virtio disk) an O_DIRECT 4 KiB read takes 180 µs through the ring against 260-310 µs through
// the threadpool, with a sixth of the helper-thread CPU; in the nested test bed the two are within
// its noise (over 8 rounds neither engine is ahead on every figure). Buffered I/O gains nothing:
// cached reads are already answered on the event loop (readNow), and a buffered write the kernel
// cannot do without blocking goes to io-wq, which runs writes to one regular file one at a time
// (it hashes them by inode), where the threadpool runs four (host: 4 KiB writes 200 µs through the
// ring against 150-190 µs). QEMU pairs its native AIO with cache=none for the same reason.
// flush() is fdatasync(2) (on the ring, or FileHandle.datasync()), so a FLUSH completes only once
// every write acknowledged before it is on stable storage. A failed fdatasync is final: Linux
// reports a writeback error to each open file once and then forgets the lost pages, so a later
// fdatasync would succeed over data that never reached the disk; every later flush() therefore
// fails with the first error, until the image is opened again (QEMU marks its BlockDriverState
// broken the same way).
//
// Cached reads first. readNow() tries preadv2(RWF_NOWAIT) on the calling (event-loop) thread:
// when the page cache holds the whole range it is copied at once (one system call, ~1 µs for
// 4 KiB, against ~16 µs for the threadpool round trip: bench/blk-device.ts), and nothing ever
// waits for the disk or a lock on that thread; when it holds a prefix (a sequential read that
// catches up with the host's readahead), that prefix is copied and the caller reads only the
// rest with startRead(), not the whole range again. Reads above READ_NOW_MAX always go to the
// threadpool (a 1 MiB page-cache copy already takes tens of µs of event-loop time). File systems
// without RWF_NOWAIT (tmpfs) answer EOPNOTSUPP once and are not asked again. Buffered writes have
// no such path: pwritev2(RWF_NOWAIT) is EOPNOTSUPP for them on ext4 and tmpfs (checked on Linux
// 6.18), so writes stay on the threadpool.
//
// Direct mode (FileBackendOptions.direct, QEMU's cache=none, Cloud Hypervisor's direct=on): the
// image is opened O_DIRECT, so transfers go between the device and the guest's buffers without
// passing through the host's page cache (no copy into it, no host memory spent caching what the
// guest caches already). Nothing is read on the event-loop thread then (an O_DIRECT read always
// waits for the device): every read goes to the threadpool. O_DIRECT wants the file offset and
// each buffer's length aligned to one size and each buffer's address to another (statx
// STATX_DIOALIGN reports both, Linux 6.1 on; where it does not, 512 is assumed and an EINVAL
// answer sends the request the buffered way). The device reports the offset alignment as its
// logical block size (blockSize, VIRTIO_BLK_F_BLK_SIZE), so that a Linux guest sends requests
// aligned to it: 4096 on a 4 KiB-sector disk. A request that is not aligned anyway (an odd
// buffer), and WRITE_ZEROES (from a zero buffer of ours), goes through a second, buffered
// descriptor of the same file instead: Linux keeps the two coherent (a direct write drops the
// cached pages it covers; a direct read writes back dirty ones first). `bufferedFallbacks`
// counts those requests. FLUSH is fdatasync either way: O_DIRECT does not flush the drive's cache.
//
// DISCARD and WRITE_ZEROES go to fallocate(2) (addon, on the threadpool: Node's fs has none).
// discard() punches a hole (FALLOC_FL_PUNCH_HOLE | KEEP_SIZE): the range reads as zeroes and its
// blocks go back to the host's file system, as with QEMU's discard=unmap. Whether the file system
// can is asked once at open, with a punch beyond the end of the image (which changes nothing):
// canDiscard, and the device offers VIRTIO_BLK_F_DISCARD only then, so that fstrim in the guest
// never reports space freed that was not. writeZeroes() is FALLOC_FL_ZERO_RANGE | KEEP_SIZE:
// zeroes without writing them, the blocks stay allocated (the device says
// write_zeroes_may_unmap = 0). Where the file system has no ZERO_RANGE (tmpfs), it writes zeroes,
// in bounded chunks from one shared zero buffer, which is exactly the command's contract
// (§5.2.6.2: later reads return zeroes).

import { constants as fsConstants, readv, writev } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { getSystemErrorMap } from 'node:util';
import {
  directIoAlignment,
  fallocate,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  preadNoWait,
  type DirectIoAlignment,
  type NoWaitRead,
} from '../../../vmm/file-io.js';
import { IoRing, ioRingUnsupported } from '../../../vmm/io-ring.js';

/** One I/O failure of the backend, with the operation, the file and the range. */
export class BlockBackendError extends Error {
  constructor(
    readonly op: 'open' | 'read' | 'write' | 'flush' | 'write-zeroes' | 'discard' | 'close',
    readonly path: string,
    readonly offset: number,
    readonly length: number,
    message: string,
    cause?: unknown,
  ) {
    super(`virtio-blk ${op} of ${path} [${offset}, +${length}): ${message}`, cause === undefined ? undefined : { cause });
    this.name = 'BlockBackendError';
  }
}

/** Largest chunk WRITE_ZEROES writes at once: bounds memory and threadpool occupancy. */
export const ZERO_CHUNK = 1 << 20;
let zeroChunk: Uint8Array | undefined;
function zeroes(): Uint8Array {
  zeroChunk ??= new Uint8Array(ZERO_CHUNK);
  return zeroChunk;
}

function errnoText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The buffers left after skipping `done` bytes of `bufs` (views of the same memory). */
export function buffersAfter(bufs: readonly Uint8Array[], done: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = done;
  for (const b of bufs) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    out.push(skip === 0 ? b : b.subarray(skip));
    skip = 0;
  }
  return out;
}

function total(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.byteLength;
  return n;
}

/** The end of a callback-form transfer: undefined, or what went wrong. */
export type TransferDone = (err: BlockBackendError | undefined) => void;

/** A callback-form transfer as a promise. */
function promised(start: (done: TransferDone) => void): Promise<void> {
  return new Promise((resolve, reject) => start((e) => (e ? reject(e) : resolve())));
}

export interface BlockBackend {
  readonly path: string;
  readonly readOnly: boolean;
  /** Image size in bytes, as opened. */
  readonly size: number;
  /** True when the image is open O_DIRECT (direct mode). */
  readonly direct?: boolean;
  /** Direct mode: requests O_DIRECT could not take (see the header comment), and of those the
   * ones O_DIRECT was tried for first and refused. */
  readonly bufferedFallbacks?: number;
  readonly directRefused?: number;
  /** True when discard() really deallocates (the device then offers VIRTIO_BLK_F_DISCARD). */
  readonly canDiscard?: boolean;
  /** The I/O engine, where the backend has a choice of them. */
  readonly engine?: IoEngine;
  /** The logical block size to report to the driver (VIRTIO_BLK_F_BLK_SIZE); 512 when absent. */
  readonly blockSize?: number;
  /**
   * Fills all of `buffers` from the image at `pos`; `done` runs once, with undefined or a
   * BlockBackendError, possibly before startRead returns. A callback, as startWrite.
   */
  startRead(pos: number, buffers: readonly Uint8Array[], done: TransferDone): void;
  /**
   * Fills `buffers` (`length` bytes) from `pos` on as far as that needs no waiting (the data is
   * cached), and returns the bytes filled: `length` when all of them; fewer, 0 included, when the
   * caller must read the rest with startRead() (from `pos` plus that count, into
   * buffersAfter(buffers, count)). Throws BlockBackendError when the read failed. Optional:
   * without it, always startRead().
   */
  readNow?(pos: number, buffers: readonly Uint8Array[], length: number): number;
  /**
   * Writes all of `buffers` at `pos`; `done` runs once, with undefined or a BlockBackendError,
   * possibly before startWrite returns. A callback, not a promise: it is every write's path, and
   * a promise chain per request cost the event loop measurably (see the header comment).
   */
  startWrite(pos: number, buffers: readonly Uint8Array[], done: TransferDone): void;
  /** Makes every completed write durable (fdatasync). */
  flush(): Promise<void>;
  writeZeroes(pos: number, length: number): Promise<void>;
  discard(pos: number, length: number): Promise<void>;
  close(): Promise<void>;
}

/** Largest read readNow() does on the calling thread. */
export const READ_NOW_MAX = 1 << 20;

/** The alignment O_DIRECT is assumed to need where statx does not say (512-byte sectors). */
export const DIRECT_ALIGN = 512;

/** How transfers reach the kernel (see the header comment): QEMU's aio=io_uring / aio=threads. */
export type IoEngine = 'io_uring' | 'threads';

export interface FileBackendOptions {
  /** Open the image O_DIRECT, bypassing the host's page cache (see the header comment). */
  readonly direct?: boolean;
  /** The I/O engine; by default defaultIoEngine(direct). */
  readonly engine?: IoEngine;
}

/**
 * The engine a backend gets when none is asked for (see the header comment for why): io_uring for
 * an O_DIRECT image where this kernel and build have it, else threads.
 */
export function defaultIoEngine(direct: boolean): IoEngine {
  return direct && ioRingUnsupported() === undefined ? 'io_uring' : 'threads';
}

/** A negative ring result as the error node:fs would have given (code, errno, message). */
function ringError(syscall: 'preadv' | 'pwritev' | 'fdatasync', result: number): NodeJS.ErrnoException {
  const [code, text] = getSystemErrorMap().get(result) ?? [`errno ${-result}`, 'unknown error'];
  return Object.assign(new Error(`${code}: ${text}, ${syscall} (io_uring)`), { code, errno: result, syscall });
}

/** True when `pos` and every buffer's length are multiples of align.offset, and every buffer's
 * offset in its ArrayBuffer of align.memory (guest RAM's ArrayBuffer is page-aligned). */
function directAligned(pos: number, buffers: readonly Uint8Array[], align: DirectIoAlignment): boolean {
  if (pos % align.offset !== 0) return false;
  for (const b of buffers) if (b.byteOffset % align.memory !== 0 || b.byteLength % align.offset !== 0) return false;
  return true;
}

const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

function isEinval(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'EINVAL';
}

/** fallocate's answer for a mode the file system does not do. */
function isUnsupported(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS';
}

/**
 * Whether the file system under fd punches holes: a punch beyond the end of the image, which
 * changes nothing there (KEEP_SIZE), answers EOPNOTSUPP where it cannot. Other failures: no.
 */
async function punchesHoles(fd: number, size: number): Promise<boolean> {
  try {
    await fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, size + 4096 - (size % 4096), 4096);
    return true;
  } catch {
    return false;
  }
}

/** A raw image file. */
export class FileBackend implements BlockBackend {
  private closed = false;
  /** The first fdatasync failure; every later flush() fails with it (see the header comment). */
  private flushFailure: BlockBackendError | undefined;
  /** Whether the file system does RWF_NOWAIT reads (until it says it does not). */
  private nowait = true;
  /** Whether the file system does FALLOC_FL_ZERO_RANGE (until it says it does not). */
  private zeroRange = true;
  /** Requests that went through the buffered descriptor in direct mode (see the header comment). */
  bufferedFallbacks = 0;
  /** ...of which O_DIRECT was tried first and refused (EINVAL): the alignment was not known. */
  directRefused = 0;

  private constructor(
    readonly path: string,
    readonly readOnly: boolean,
    readonly size: number,
    /** The image: O_DIRECT in direct mode. */
    private readonly fh: FileHandle,
    /** In direct mode, the same file without O_DIRECT, for what O_DIRECT refuses; else fh. */
    private readonly bufferedFh: FileHandle,
    /** In direct mode, what O_DIRECT needs of a transfer (see the header comment). */
    readonly alignment: DirectIoAlignment | undefined,
    /** The engine 'io_uring': this backend's ring. */
    private readonly ring: IoRing | undefined,
    /** discard() punches holes (asked at open; see the header comment). */
    readonly canDiscard: boolean,
  ) {}

  /** The I/O engine transfers and flushes use. */
  get engine(): IoEngine {
    return this.ring ? 'io_uring' : 'threads';
  }

  /** Direct mode: the offset alignment O_DIRECT needs (at least 512); else 512. */
  get blockSize(): number {
    return Math.max(DIRECT_ALIGN, this.alignment?.offset ?? 0);
  }

  /** True when the image is open O_DIRECT. */
  get direct(): boolean {
    return this.fh !== this.bufferedFh;
  }

  /** Opens `path` (O_RDONLY or O_RDWR, and O_DIRECT in direct mode; never creates it) and reads its size. */
  static async open(path: string, readOnly: boolean, options: FileBackendOptions = {}): Promise<FileBackend> {
    const mode = readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR;
    let fh: FileHandle;
    try {
      fh = await open(path, mode);
    } catch (e) {
      throw new BlockBackendError('open', path, 0, 0, `cannot open the image ${readOnly ? 'read-only' : 'read-write'}: ${errnoText(e)}`, e);
    }
    let direct = fh;
    const closeAll = async (): Promise<void> => {
      await fh.close().catch(() => undefined);
      if (direct !== fh) await direct.close().catch(() => undefined);
    };
    if (options.direct) {
      try {
        direct = await open(path, mode | fsConstants.O_DIRECT);
      } catch (e) {
        await closeAll();
        const why = isEinval(e) ? 'its file system does not support O_DIRECT; open it without direct' : errnoText(e);
        throw new BlockBackendError('open', path, 0, 0, `cannot open the image O_DIRECT: ${why}`, e);
      }
    }
    let alignment: DirectIoAlignment | undefined;
    if (direct !== fh) {
      try {
        alignment = directIoAlignment(direct.fd) ?? { memory: DIRECT_ALIGN, offset: DIRECT_ALIGN };
      } catch (e) {
        await closeAll();
        throw new BlockBackendError('open', path, 0, 0, `cannot read the image's O_DIRECT alignment: ${errnoText(e)}`, e);
      }
      if (alignment.offset === 0 || !isPowerOfTwo(alignment.offset) || !isPowerOfTwo(alignment.memory)) {
        await closeAll();
        const why = alignment.offset === 0 ? 'its file system does not support O_DIRECT here' : `statx reports an O_DIRECT alignment of ${alignment.memory}/${alignment.offset}`;
        throw new BlockBackendError('open', path, 0, 0, `cannot use the image O_DIRECT: ${why}; open it without direct`);
      }
    }
    let ring: IoRing | undefined;
    if ((options.engine ?? defaultIoEngine(options.direct ?? false)) === 'io_uring') {
      try {
        ring = new IoRing();
      } catch (e) {
        await closeAll();
        throw new BlockBackendError('open', path, 0, 0, `cannot use io_uring: ${errnoText(e)}; open it with aio=threads`, e);
      }
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() && !st.isBlockDevice()) {
        throw new BlockBackendError('open', path, 0, 0, 'is not a regular file or block device');
      }
      if (st.isBlockDevice()) {
        // stat() reports 0 for a block device: take its size from the end.
        throw new BlockBackendError('open', path, 0, 0, 'block devices are not supported yet; use a raw image file');
      }
      const canDiscard = !readOnly && (await punchesHoles(fh.fd, st.size));
      return new FileBackend(path, readOnly, st.size, direct, fh, alignment, ring, canDiscard);
    } catch (e) {
      ring?.close();
      await closeAll();
      if (e instanceof BlockBackendError) throw e;
      throw new BlockBackendError('open', path, 0, 0, `cannot stat the image: ${errnoText(e)}`, e);
    }
  }

  private closedError(op: BlockBackendError['op'], pos: number, len: number): BlockBackendError {
    return new BlockBackendError(op, this.path, pos, len, 'the image is closed');
  }

  private checkOpen(op: BlockBackendError['op'], pos: number, len: number): void {
    if (this.closed) throw this.closedError(op, pos, len);
  }

  /** The descriptor for a transfer: the O_DIRECT one when the transfer suits it. */
  private handleFor(pos: number, buffers: readonly Uint8Array[]): FileHandle {
    if (!this.alignment || directAligned(pos, buffers, this.alignment)) return this.fh;
    this.bufferedFallbacks++;
    return this.bufferedFh;
  }

  /** startRead as a promise (tests, tools). */
  read(pos: number, buffers: readonly Uint8Array[]): Promise<void> {
    return promised((done) => this.startRead(pos, buffers, done));
  }

  startRead(pos: number, buffers: readonly Uint8Array[], done: TransferDone): void {
    const want = total(buffers);
    if (this.closed) return done(this.closedError('read', pos, want));
    if (want === 0) return done(undefined);
    this.transferFrom('read', this.handleFor(pos, buffers), pos, buffers, want, 0, done);
  }

  readNow(pos: number, buffers: readonly Uint8Array[], length: number): number {
    // Direct mode: an O_DIRECT read always waits for the device, so never on this thread.
    if (!this.nowait || this.closed || length > READ_NOW_MAX || buffers.length === 0 || this.direct) return 0;
    let r: NoWaitRead;
    try {
      r = preadNoWait(this.fh.fd, buffers, pos);
    } catch (e) {
      throw new BlockBackendError('read', this.path, pos, length, errnoText(e), e);
    }
    if (r === 'unsupported') this.nowait = false;
    // A number: what the page cache held from pos on (up to the end of the file).
    return typeof r === 'number' ? Math.min(r, length) : 0;
  }

  /** startWrite as a promise (WRITE_ZEROES' chunks, tools). */
  write(pos: number, buffers: readonly Uint8Array[]): Promise<void> {
    return promised((done) => this.startWrite(pos, buffers, done));
  }

  startWrite(pos: number, buffers: readonly Uint8Array[], done: TransferDone): void {
    const want = total(buffers);
    if (this.closed) return done(this.closedError('write', pos, want));
    if (this.readOnly) return done(new BlockBackendError('write', this.path, pos, want, 'the image is open read-only'));
    // A request with no data writes nothing (transferFrom would take pwritev's 0 for no progress).
    if (want === 0) return done(undefined);
    this.transferFrom('write', this.handleFor(pos, buffers), pos, buffers, want, 0, done);
  }

  /**
   * preadv / pwritev (issue(): the ring or libuv's threadpool, one callback, no promise) of
   * `buffers` from byte `from` on, again after a short transfer, until all `want` bytes moved.
   */
  private transferFrom(op: 'read' | 'write', fh: FileHandle, pos: number, buffers: readonly Uint8Array[], want: number, from: number, done: TransferDone): void {
    const fail = (message: string, cause?: unknown): void => done(new BlockBackendError(op, this.path, pos, want, message, cause));
    try {
      this.issue(op, fh.fd, from === 0 ? buffers : buffersAfter(buffers, from), pos + from, (err, n) => {
        if (err && isEinval(err) && fh !== this.bufferedFh) {
          // O_DIRECT refused the alignment (a device with larger sectors, an odd address): nothing
          // was transferred; again, buffered.
          this.bufferedFallbacks++;
          this.directRefused++;
          return this.transferFrom(op, this.bufferedFh, pos, buffers, want, from, done);
        }
        if (err) return fail(errnoText(err), err);
        if (n === 0) {
          return fail(op === 'read' ? `end of file after ${from} bytes: the image shrank below its opened size ${this.size}` : `no progress after ${from} bytes`);
        }
        if (from + n >= want) return done(undefined);
        this.transferFrom(op, fh, pos, buffers, want, from + n, done);
      });
    } catch (e) {
      fail(errnoText(e), e);
    }
  }

  /** One preadv / pwritev: on the ring, else on libuv's threadpool (fs.readv / fs.writev). */
  private issue(op: 'read' | 'write', fd: number, buffers: readonly Uint8Array[], pos: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void): void {
    if (this.ring) {
      this.ring[op === 'read' ? 'readv' : 'writev'](fd, buffers, pos, (r) => (r < 0 ? cb(ringError(op === 'read' ? 'preadv' : 'pwritev', r), 0) : cb(null, r)));
    } else {
      (op === 'read' ? readv : writev)(fd, buffers as Uint8Array[], pos, cb);
    }
  }

  async flush(): Promise<void> {
    this.checkOpen('flush', 0, 0);
    if (this.readOnly) return; // nothing of ours to make durable
    if (this.flushFailure) {
      throw new BlockBackendError('flush', this.path, 0, 0, `an earlier fdatasync failed (${this.flushFailure.message}); what the guest wrote since it is not known to be on disk`, this.flushFailure);
    }
    try {
      const ring = this.ring;
      if (ring) {
        const fd = this.fh.fd;
        await new Promise<void>((resolve, reject) => ring.fdatasync(fd, (r) => (r < 0 ? reject(ringError('fdatasync', r)) : resolve())));
      } else {
        await this.fh.datasync();
      }
    } catch (e) {
      this.flushFailure = new BlockBackendError('flush', this.path, 0, 0, `fdatasync failed: ${errnoText(e)}`, e);
      throw this.flushFailure;
    }
  }

  async writeZeroes(pos: number, length: number): Promise<void> {
    this.checkOpen('write-zeroes', pos, length);
    if (this.readOnly) throw new BlockBackendError('write-zeroes', this.path, pos, length, 'the image is open read-only');
    if (this.zeroRange) {
      try {
        await fallocate(this.bufferedFh.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, pos, length);
        return;
      } catch (e) {
        if (!isUnsupported(e)) throw new BlockBackendError('write-zeroes', this.path, pos, length, errnoText(e), e);
        this.zeroRange = false; // write them instead, from now on
      }
    }
    const z = zeroes();
    for (let at = 0; at < length; at += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, length - at);
      // Our zero buffer has no O_DIRECT alignment: buffered (see the header comment).
      await promised((done) => this.transferFrom('write', this.bufferedFh, pos + at, [z.subarray(0, n)], n, 0, done));
    }
  }

  async discard(pos: number, length: number): Promise<void> {
    // Validated by the request parser already.
    this.checkOpen('discard', pos, length);
    if (this.readOnly) throw new BlockBackendError('discard', this.path, pos, length, 'the image is open read-only');
    // A hint (§5.2.6.2, "MAY deallocate"): where holes cannot be punched it does nothing.
    if (!this.canDiscard) return;
    try {
      await fallocate(this.bufferedFh.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pos, length);
    } catch (e) {
      throw new BlockBackendError('discard', this.path, pos, length, errnoText(e), e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ring?.close();
    try {
      if (this.bufferedFh !== this.fh) await this.bufferedFh.close();
      await this.fh.close();
    } catch (e) {
      throw new BlockBackendError('close', this.path, 0, 0, errnoText(e), e);
    }
  }
}
