// The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): magic/version/ids, feature
// negotiation in 32-bit halves, the device-status state machine, queue selection and set-up with
// validation, interrupt status/ack, config space and config generation, shared-memory regions.
//
// Its state lives in a SharedArrayBuffer (TransportState), so the register file is served by
// whichever vCPU thread exits on it, while the device itself (queues, backend) runs on the main
// thread: that side reads the queue configuration from the same state when the driver sets
// DRIVER_OK, and raises interrupts by setting InterruptStatus bits. The transport tells the
// device side about status changes and QueueNotify writes through TransportEvents.
import type { BusDevice } from '../../vmm/bus.js';
import type { GuestMemory } from '../../vmm/guest-memory.js';
import type { SharedMemoryGrant } from './device.js';
import { lock, unlock } from '../../vmm/spinlock.js';
import { VirtioQueueError } from './errors.js';
import { checkQueueConfig } from './queue.js';
import {
  CONFIG_SPACE_SIZE,
  INT_CONFIG_CHANGE,
  INT_USED_BUFFER,
  MAX_QUEUE_SIZE,
  MAX_QUEUES,
  MAX_SHM_REGIONS,
  REG,
  STATUS,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_VERSION,
  VIRTIO_VENDOR_ID,
} from './mmio-regs.js';

// Int32 cells of the shared state.
const C = {
  lock: 0,
  deviceId: 1,
  devFeatLo: 2,
  devFeatHi: 3,
  numQueues: 4,
  status: 5,
  devFeatSel: 6,
  drvFeatSel: 7,
  drvFeatLo: 8,
  drvFeatHi: 9,
  queueSel: 10,
  intStatus: 11,
  configGen: 12,
  shmSel: 13,
  numShm: 14,
  configLen: 15,
  queues: 16,
} as const;
// Per-queue block: max, num, ready, descLo, descHi, drvLo, drvHi, devLo, devHi.
const Q_MAX = 0;
const Q_NUM = 1;
const Q_READY = 2;
const Q_DESC = 3;
const Q_DRIVER = 5;
const Q_DEVICE = 7;
const Q_CELLS = 9;
const SHM_BASE = C.queues + MAX_QUEUES * Q_CELLS; // per region: baseLo, baseHi, lenLo, lenHi
/** Resets the driver asked for (a counter, wrapping at 2^32) and the last one the device side
 * finished (see ResetBarrier). */
const RESET_SEQ = SHM_BASE + MAX_SHM_REGIONS * 4;
const RESET_ACK = RESET_SEQ + 1;
/** Config-space writes by the driver the device has not seen yet are told by this counter. */
const CONFIG_WRITE_SEQ = RESET_ACK + 1;
/** One bit per config-space byte the driver may write (TransportDescription.writableConfig). */
const CONFIG_WRITABLE = CONFIG_WRITE_SEQ + 1;
const CELLS = CONFIG_WRITABLE + CONFIG_SPACE_SIZE / 32;
/** How long a held reset sleeps between looks at ResetBarrier.stopped(). */
const RESET_WAIT_SLICE_MS = 20;

/**
 * Offered for every device (§6): VERSION_1 (this is a version 2, non-legacy transport), and the
 * ring features SplitQueue implements for every queue, INDIRECT_DESC (§2.7.5.3) and EVENT_IDX
 * (§2.7.7, §2.7.10). Without the last two a Linux guest notifies on every request and takes an
 * interrupt for every completion.
 */
export const TRANSPORT_FEATURES = (1n << VIRTIO_F_VERSION_1) | (1n << VIRTIO_F_INDIRECT_DESC) | (1n << VIRTIO_F_EVENT_IDX);

export interface TransportDescription {
  deviceId: number;
  /** Feature bits the device offers (the transport adds TRANSPORT_FEATURES). */
  features: bigint;
  /** QueueNumMax of each queue. */
  queueMaxSizes: readonly number[];
  /** Initial device-specific configuration space. */
  config?: Uint8Array;
  /** Shared-memory regions (§2.10), e.g. a virtio-fs DAX window: guest-physical base and length. */
  shm?: readonly { base: number; length: number }[];
  /** Config-space byte ranges the driver may write (device types with writable fields); the rest is read-only. */
  writableConfig?: readonly { offset: number; length: number }[];
}

/** The transport's region table, indexed by shmid: the ids must be 0, 1, ... (SHMSel selects by index). */
export function shmTable(name: string, grants: readonly SharedMemoryGrant[]): { base: number; length: number }[] {
  const table = [...grants].sort((a, b) => a.id - b.id);
  table.forEach((g, i) => {
    if (g.id !== i) throw new TransportConfigError(`${name}: shared-memory region ids must be 0, 1, ... in turn; got ${grants.map((x) => x.id).join(', ')}`);
  });
  return table.map((g) => ({ base: Number(g.guestPhysAddr), length: Number(g.length) }));
}

export interface QueueConfig {
  index: number;
  size: number;
  desc: number;
  driver: number;
  device: number;
}

export interface TransportEvents {
  /** The driver wrote Status (0 = reset). Called after the state is updated. */
  statusChanged(status: number): void;
  /** A QueueNotify write that reached the bus (no ioeventfd on it). */
  queueNotify(queue: number): void;
  /** The driver wrote a writable part of the config space (TransportState.configWrites counts them). */
  configWritten?(): void;
}

export class TransportConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportConfigError';
  }
}

/**
 * An InterruptACK write KVM took without an exit to user space: in a VM an ioeventfd on the
 * InterruptACK register with datamatch ACK_DOORBELL_VALUE (the value Linux's vm_interrupt writes
 * for nearly every interrupt, §4.2.2), so acknowledging an interrupt costs the vCPU no exit.
 * Such an ACK is applied lazily, under the state lock, before anything reads or changes
 * InterruptStatus: the InterruptStatus read, a raise, a reset. That is indistinguishable from
 * applying it when the driver wrote it, because the driver can observe InterruptStatus only through
 * the read. One race is left, and it is benign: a raise that drains the doorbell just before the
 * ACK lands keeps its bit until the next read, which then clears it; but that raise published its
 * used entries before the ACK, and the driver processes the ring after acknowledging (Linux's
 * vm_interrupt does), so it finds them; the next interrupt then reads 0 (spurious, handled).
 */
export interface AckDoorbell {
  /** True when the driver acknowledged ACK_DOORBELL_VALUE since the last call (and consumes it). */
  take(): boolean;
}

/** The InterruptACK value an AckDoorbell stands for (the used-buffer bit). */
export const ACK_DOORBELL_VALUE = INT_USED_BUFFER;

/**
 * The register page: what every register reads now, at its offset in the device's window, and
 * the config space at 0x100 (§4.2.2). In a VM, KVM maps it read-only at the device's base (a
 * KVM_MEM_READONLY memory slot), so the driver's register reads come from memory without an exit;
 * its writes still exit (or land in ioeventfds), and the transport re-renders the page under the
 * state lock before the vCPU resumes. The device side renders what it changes (InterruptStatus,
 * Status). Two consequences, both invisible to Linux's driver, which reads InterruptStatus only on
 * an interrupt: an InterruptACK taken by the AckDoorbell shows in InterruptStatus only from the
 * device's next raise; and a config-space change takes the page away (suspend: reads exit and are
 * served under the lock) while it happens, so a driver never reads a half-written config space
 * under an unchanged ConfigGeneration.
 */
export interface RegisterPage {
  /** The page's bytes (VIRTIO_MMIO window layout); at least 0x100 + CONFIG_SPACE_SIZE long. */
  readonly bytes: Uint8Array;
  /** Stop KVM serving reads from the page (reads exit to the transport) until resume(). */
  suspend?(): void;
  resume?(): void;
}

/** Registers a driver can read (the others read as 0, as the page's zeros do). */
const READABLE_REGISTERS: readonly number[] = [
  REG.magic,
  REG.version,
  REG.deviceId,
  REG.vendorId,
  REG.deviceFeatures,
  REG.queueNumMax,
  REG.queueReady,
  REG.interruptStatus,
  REG.status,
  REG.shmLenLow,
  REG.shmLenHigh,
  REG.shmBaseLow,
  REG.shmBaseHigh,
  REG.queueReset,
  REG.configGeneration,
];

/**
 * Holds the driver's reset write until the device side has stopped (virtio 1.2 §2.4: after
 * indicating that the reset is complete, the device MUST NOT interact with the queues; for
 * memory that means no more DMA into the guest's buffers). The register file runs on a vCPU
 * thread and the device on the main thread, so without it the driver would read Status 0 and
 * reuse its rings and buffers while the device still completes requests into them. With it, the
 * Status = 0 write returns only once the device side acknowledged the reset
 * (TransportState.acknowledgeReset, after the device's in-flight work ended: VirtioDevice.quiesce),
 * as QEMU's reset handler drains in-flight requests before it returns. That lets devices do I/O
 * straight into guest memory. Only for a register file on a thread of its own (a vCPU worker):
 * on the device's own thread the wait could never end.
 */
export interface ResetBarrier {
  /** True when the wait must end without the acknowledgement (the VMM stops the vCPU). */
  stopped(): boolean;
}

/** What a transport's state may have besides the shared cells. */
export interface TransportStateExtras {
  /** ACKs taken by KVM (an ioeventfd) rather than by write(): see AckDoorbell. */
  ackDoorbell?: AckDoorbell | undefined;
  /** The register page KVM serves reads from: see RegisterPage. */
  page?: RegisterPage | undefined;
}

const lo32 = (v: bigint): number => Number(v & 0xffffffffn) | 0;
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn) | 0;
const join64 = (lo: number, hi: number): number => (hi >>> 0) * 2 ** 32 + (lo >>> 0);
const joinBig = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);

/** The first cell of the queue QueueSel selects, or undefined for a queue that does not exist. */
function selectedQueueBase(c: Int32Array): number | undefined {
  const sel = c[C.queueSel] as number;
  return sel >= 0 && sel < (c[C.numQueues] as number) ? C.queues + sel * Q_CELLS : undefined;
}

/** The shared state of one virtio-mmio device, and what both sides may read or change of it. */
export class TransportState {
  readonly cells: Int32Array;
  readonly config: Uint8Array;

  private readonly ackDoorbell: AckDoorbell | undefined;
  private readonly page: RegisterPage | undefined;
  private readonly pageWords: Int32Array | undefined;

  constructor(
    readonly buffer: SharedArrayBuffer,
    extras: TransportStateExtras = {},
  ) {
    this.cells = new Int32Array(buffer, 0, CELLS);
    this.config = new Uint8Array(buffer, CELLS * 4, CONFIG_SPACE_SIZE);
    this.ackDoorbell = extras.ackDoorbell;
    this.page = extras.page;
    if (this.page) {
      const b = this.page.bytes;
      if (b.byteLength < REG.config + CONFIG_SPACE_SIZE || b.byteOffset % 4 !== 0) {
        throw new TransportConfigError(`register page of ${b.byteLength} bytes at offset ${b.byteOffset}: needs ${REG.config + CONFIG_SPACE_SIZE}, 4-byte aligned`);
      }
      this.pageWords = new Int32Array(b.buffer, b.byteOffset, REG.config / 4);
    }
  }

  /** Writes every readable register and the config space into the page (caller holds the lock). */
  renderPageLocked(): void {
    const words = this.pageWords;
    if (!words || !this.page) return;
    for (const off of READABLE_REGISTERS) words[off / 4] = this.registerValue(off);
    this.page.bytes.set(this.config, REG.config);
  }

  /** Writes one register into the page (caller holds the lock). */
  private renderRegisterLocked(offset: number): void {
    if (this.pageWords) this.pageWords[offset / 4] = this.registerValue(offset);
  }

  /** Renders the page first (under the lock): for the side that creates it, before KVM maps it. */
  renderPage(): void {
    lock(this.cells, C.lock);
    try {
      this.renderPageLocked();
    } finally {
      unlock(this.cells, C.lock);
    }
  }

  static create(d: TransportDescription): SharedArrayBuffer {
    if (d.queueMaxSizes.length > MAX_QUEUES) throw new TransportConfigError(`${d.queueMaxSizes.length} queues: at most ${MAX_QUEUES}`);
    for (const m of d.queueMaxSizes) {
      if (m < 1 || m > MAX_QUEUE_SIZE || (m & (m - 1)) !== 0) throw new TransportConfigError(`queue size ${m} is not a power of two up to ${MAX_QUEUE_SIZE}`);
    }
    if ((d.config?.byteLength ?? 0) > CONFIG_SPACE_SIZE) throw new TransportConfigError(`config space of ${d.config?.byteLength} bytes: at most ${CONFIG_SPACE_SIZE}`);
    if ((d.shm?.length ?? 0) > MAX_SHM_REGIONS) throw new TransportConfigError(`${d.shm?.length} shared-memory regions: at most ${MAX_SHM_REGIONS}`);
    const sab = new SharedArrayBuffer(CELLS * 4 + CONFIG_SPACE_SIZE);
    const s = new TransportState(sab);
    const c = s.cells;
    const features = d.features | TRANSPORT_FEATURES;
    c[C.deviceId] = d.deviceId;
    c[C.devFeatLo] = lo32(features);
    c[C.devFeatHi] = hi32(features);
    c[C.numQueues] = d.queueMaxSizes.length;
    d.queueMaxSizes.forEach((m, i) => {
      c[C.queues + i * Q_CELLS + Q_MAX] = m;
    });
    if (d.config) {
      s.config.set(d.config);
      c[C.configLen] = d.config.byteLength;
    }
    (d.shm ?? []).forEach((r, i) => {
      const o = SHM_BASE + i * 4;
      c[o] = lo32(BigInt(r.base));
      c[o + 1] = hi32(BigInt(r.base));
      c[o + 2] = lo32(BigInt(r.length));
      c[o + 3] = hi32(BigInt(r.length));
    });
    c[C.numShm] = d.shm?.length ?? 0;
    for (const r of d.writableConfig ?? []) {
      if (!Number.isInteger(r.offset) || !Number.isInteger(r.length) || r.offset < 0 || r.length < 1 || r.offset + r.length > (d.config?.byteLength ?? 0)) {
        throw new TransportConfigError(`writable config range [${r.offset}, +${r.length}) is outside the ${d.config?.byteLength ?? 0}-byte config space`);
      }
      for (let b = r.offset; b < r.offset + r.length; b++) c[CONFIG_WRITABLE + (b >> 5)] = (c[CONFIG_WRITABLE + (b >> 5)] as number) | (1 << (b & 31));
    }
    return sab;
  }

  get status(): number {
    return Atomics.load(this.cells, C.status);
  }

  /** How many config-space writes the driver made (wraps at 2^32); the device side compares. */
  get configWrites(): number {
    return Atomics.load(this.cells, CONFIG_WRITE_SEQ);
  }

  /** Whether the driver may write config bytes [offset, offset + length). */
  configWritable(offset: number, length: number): boolean {
    if (offset < 0 || length < 1 || offset + length > CONFIG_SPACE_SIZE) return false;
    for (let b = offset; b < offset + length; b++) {
      if ((((this.cells[CONFIG_WRITABLE + (b >> 5)] as number) >>> (b & 31)) & 1) === 0) return false;
    }
    return true;
  }

  /** A copy of the config space as it is now (taken under the lock). */
  configSnapshot(): Uint8Array {
    lock(this.cells, C.lock);
    try {
      return this.config.slice(0, this.cells[C.configLen] as number);
    } finally {
      unlock(this.cells, C.lock);
    }
  }

  /** Applies a driver's config write (vCPU side, caller holds the lock); false when refused. */
  writeConfigLocked(offset: number, data: Uint8Array): boolean {
    if (!this.configWritable(offset, data.byteLength)) return false;
    this.config.set(data, offset);
    Atomics.add(this.cells, CONFIG_WRITE_SEQ, 1);
    this.renderPageLocked();
    return true;
  }

  /** How many resets the driver has asked for (wraps at 2^32). */
  get resetSequence(): number {
    return Atomics.load(this.cells, RESET_SEQ);
  }

  /** The device side has finished reset `seq` and every one before it: wakes a held reset write. */
  acknowledgeReset(seq: number): void {
    Atomics.store(this.cells, RESET_ACK, seq);
    Atomics.notify(this.cells, RESET_ACK);
  }

  /**
   * Blocks the calling thread until reset `seq` is acknowledged (true) or barrier.stopped() (false).
   * Never on the thread that acknowledges (see ResetBarrier).
   */
  awaitReset(seq: number, barrier: ResetBarrier): boolean {
    for (;;) {
      const ack = Atomics.load(this.cells, RESET_ACK);
      if (((ack - seq) | 0) >= 0) return true; // acknowledged this one or a later one
      if (barrier.stopped()) return false;
      Atomics.wait(this.cells, RESET_ACK, ack, RESET_WAIT_SLICE_MS);
    }
  }

  /** InterruptStatus as the driver would read it now. */
  get interruptStatus(): number {
    return Atomics.load(this.cells, C.intStatus);
  }

  get driverFeatures(): bigint {
    return joinBig(this.cells[C.drvFeatLo] as number, this.cells[C.drvFeatHi] as number);
  }

  get deviceFeatures(): bigint {
    return joinBig(this.cells[C.devFeatLo] as number, this.cells[C.devFeatHi] as number);
  }

  get numQueues(): number {
    return this.cells[C.numQueues] as number;
  }

  /** The configuration of every queue the driver made ready. */
  readyQueues(): QueueConfig[] {
    const out: QueueConfig[] = [];
    for (let i = 0; i < this.numQueues; i++) {
      const o = C.queues + i * Q_CELLS;
      const c = this.cells;
      if (!c[o + Q_READY]) continue;
      out.push({
        index: i,
        size: c[o + Q_NUM] as number,
        desc: join64(c[o + Q_DESC] as number, c[o + Q_DESC + 1] as number),
        driver: join64(c[o + Q_DRIVER] as number, c[o + Q_DRIVER + 1] as number),
        device: join64(c[o + Q_DEVICE] as number, c[o + Q_DEVICE + 1] as number),
      });
    }
    return out;
  }

  /** What the driver reads at a register offset now (caller holds the lock; no side effects). */
  registerValue(offset: number): number {
    const c = this.cells;
    const q = selectedQueueBase(c);
    switch (offset) {
      case REG.magic:
        return VIRTIO_MMIO_MAGIC;
      case REG.version:
        return VIRTIO_MMIO_VERSION;
      case REG.deviceId:
        return c[C.deviceId] as number;
      case REG.vendorId:
        return VIRTIO_VENDOR_ID;
      case REG.deviceFeatures: {
        const sel = c[C.devFeatSel] as number;
        return sel === 0 ? (c[C.devFeatLo] as number) : sel === 1 ? (c[C.devFeatHi] as number) : 0;
      }
      case REG.queueNumMax:
        return q === undefined ? 0 : (c[q + Q_MAX] as number);
      case REG.queueReady:
        return q === undefined ? 0 : (c[q + Q_READY] as number);
      case REG.interruptStatus:
        return Atomics.load(c, C.intStatus);
      case REG.status:
        return Atomics.load(c, C.status);
      case REG.shmLenLow:
      case REG.shmLenHigh:
      case REG.shmBaseLow:
      case REG.shmBaseHigh: {
        const sel = c[C.shmSel] as number;
        // A region that does not exist has length -1 (all ones), §4.2.2.
        if (sel < 0 || sel >= (c[C.numShm] as number)) return offset === REG.shmLenLow || offset === REG.shmLenHigh ? -1 : 0;
        const base = SHM_BASE + sel * 4;
        const idx = { [REG.shmBaseLow]: 0, [REG.shmBaseHigh]: 1, [REG.shmLenLow]: 2, [REG.shmLenHigh]: 3 }[offset] as number;
        return c[base + idx] as number;
      }
      case REG.queueReset:
        return 0;
      case REG.configGeneration:
        return c[C.configGen] as number;
      default:
        return 0; // write-only and reserved registers read as 0
    }
  }

  /** Sets InterruptStatus bits; the caller then signals the device's irqfd. */
  raise(bits: number): void {
    if (!this.ackDoorbell && !this.page) {
      Atomics.or(this.cells, C.intStatus, bits);
      return;
    }
    lock(this.cells, C.lock);
    try {
      this.applyDoorbellAckLocked();
      Atomics.or(this.cells, C.intStatus, bits);
      this.renderRegisterLocked(REG.interruptStatus);
    } finally {
      unlock(this.cells, C.lock);
    }
  }

  /** Applies an InterruptACK the doorbell holds (caller holds the lock). */
  applyDoorbellAckLocked(): void {
    if (this.ackDoorbell?.take()) Atomics.and(this.cells, C.intStatus, ~ACK_DOORBELL_VALUE);
  }

  /** Forgets an InterruptACK the doorbell holds (device reset; caller holds the lock). */
  discardDoorbellAckLocked(): void {
    this.ackDoorbell?.take();
  }

  /** The device changed its config space: bump ConfigGeneration (§4.2.2) and ask for an interrupt. */
  configChanged(update: (config: Uint8Array) => void): void {
    this.page?.suspend?.();
    try {
      lock(this.cells, C.lock);
      try {
        update(this.config);
        this.cells[C.configGen] = ((this.cells[C.configGen] as number) + 1) | 0;
        this.renderPageLocked();
      } finally {
        unlock(this.cells, C.lock);
      }
    } finally {
      this.page?.resume?.();
    }
    this.raise(INT_CONFIG_CHANGE);
  }

  /** Marks the device broken (§2.1.2): the driver sees NEEDS_RESET and a config-change interrupt. */
  needsReset(): void {
    lock(this.cells, C.lock);
    try {
      Atomics.or(this.cells, C.status, STATUS.NEEDS_RESET);
      this.renderRegisterLocked(REG.status);
    } finally {
      unlock(this.cells, C.lock);
    }
    this.raise(INT_CONFIG_CHANGE);
  }
}

/** The §2.7 queue rules (checkQueueConfig): undefined when fine, else what is wrong. */
export function validateQueue(q: QueueConfig, max: number, memory: GuestMemory): string | undefined {
  try {
    checkQueueConfig(memory, { ...q, maxSize: max });
    return undefined;
  } catch (e) {
    if (e instanceof VirtioQueueError) return e.message;
    throw e;
  }
}

export interface MmioTransportOptions extends TransportStateExtras {
  /** Hold Status = 0 writes until the device side acknowledges the reset (see ResetBarrier). */
  resetBarrier?: ResetBarrier | undefined;
}

export class MmioTransport implements BusDevice {
  private readonly state: TransportState;
  private readonly c: Int32Array;
  private readonly resetBarrier: ResetBarrier | undefined;

  constructor(
    state: SharedArrayBuffer,
    private readonly events: TransportEvents,
    private readonly memory: GuestMemory,
    private readonly onInterruptNeeded: () => void = () => {},
    options: MmioTransportOptions = {},
  ) {
    this.state = new TransportState(state, options);
    this.c = this.state.cells;
    this.resetBarrier = options.resetBarrier;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (offset >= REG.config) {
      this.readConfig(offset - REG.config, data);
      return;
    }
    if (data.byteLength !== 4 || offset % 4 !== 0) return; // registers are 32-bit (§4.2.2)
    let v = 0;
    lock(this.c, C.lock);
    try {
      if (offset === REG.interruptStatus) this.state.applyDoorbellAckLocked();
      v = this.state.registerValue(offset);
    } finally {
      unlock(this.c, C.lock);
    }
    new DataView(data.buffer, data.byteOffset, 4).setUint32(0, v >>> 0, true);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset >= REG.config) {
      this.writeConfig(offset - REG.config, data);
      return;
    }
    if (data.byteLength !== 4 || offset % 4 !== 0) return;
    const v = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    let after: (() => void) | undefined;
    lock(this.c, C.lock);
    try {
      after = this.writeRegister(offset, v);
      this.state.renderPageLocked();
    } finally {
      unlock(this.c, C.lock);
    }
    after?.(); // callbacks run without the lock held
  }

  /**
   * A driver's config-space write: applied only where the device declared the bytes writable
   * (TransportDescription.writableConfig; §4.2.2 leaves other writes to the device type, and
   * every type here makes them read-only), then told to the device side.
   */
  private writeConfig(offset: number, data: Uint8Array): void {
    let applied: boolean;
    lock(this.c, C.lock);
    try {
      applied = this.state.writeConfigLocked(offset, data);
    } finally {
      unlock(this.c, C.lock);
    }
    if (applied) this.events.configWritten?.();
  }

  private readConfig(offset: number, data: Uint8Array): void {
    const len = this.c[C.configLen] as number;
    if (offset + data.byteLength > len) return; // beyond the device's config: zeros
    lock(this.c, C.lock);
    try {
      data.set(this.state.config.subarray(offset, offset + data.byteLength));
    } finally {
      unlock(this.c, C.lock);
    }
  }

  private queueBase(): number | undefined {
    return selectedQueueBase(this.c);
  }

  private writeRegister(offset: number, v: number): (() => void) | undefined {
    const c = this.c;
    const status = c[C.status] as number;
    const q = this.queueBase();
    // Queue set-up registers may change only while that queue is not ready (§4.2.2).
    const queueWritable = q !== undefined && !c[q + Q_READY];
    switch (offset) {
      case REG.deviceFeaturesSel:
        c[C.devFeatSel] = v;
        return undefined;
      case REG.driverFeaturesSel:
        c[C.drvFeatSel] = v;
        return undefined;
      case REG.driverFeatures: {
        // Features are fixed once FEATURES_OK is set (§3.1.1).
        if (status & STATUS.FEATURES_OK || !(status & STATUS.DRIVER)) return undefined;
        const sel = c[C.drvFeatSel] as number;
        if (sel === 0) c[C.drvFeatLo] = v;
        else if (sel === 1) c[C.drvFeatHi] = v;
        return undefined;
      }
      case REG.queueSel:
        c[C.queueSel] = v;
        return undefined;
      case REG.queueNum:
        if (queueWritable) c[(q as number) + Q_NUM] = v;
        return undefined;
      case REG.queueDescLow:
      case REG.queueDescHigh:
      case REG.queueDriverLow:
      case REG.queueDriverHigh:
      case REG.queueDeviceLow:
      case REG.queueDeviceHigh: {
        if (!queueWritable) return undefined;
        const field = { [REG.queueDescLow]: Q_DESC, [REG.queueDescHigh]: Q_DESC + 1, [REG.queueDriverLow]: Q_DRIVER, [REG.queueDriverHigh]: Q_DRIVER + 1, [REG.queueDeviceLow]: Q_DEVICE, [REG.queueDeviceHigh]: Q_DEVICE + 1 }[offset] as number;
        c[(q as number) + field] = v;
        return undefined;
      }
      case REG.queueReady:
        return this.writeQueueReady(q, v);
      case REG.queueNotify:
        return () => this.events.queueNotify(v & 0xffff);
      case REG.interruptAck:
        Atomics.and(c, C.intStatus, ~v);
        return undefined;
      case REG.status:
        return this.writeStatus(status, v);
      case REG.shmSel:
        c[C.shmSel] = v;
        return undefined;
      default:
        return undefined; // read-only and reserved registers ignore writes
    }
  }

  private writeQueueReady(q: number | undefined, v: number): (() => void) | undefined {
    if (q === undefined) return undefined;
    const c = this.c;
    if (v === 0) {
      c[q + Q_READY] = 0;
      return undefined;
    }
    const index = (q - C.queues) / Q_CELLS;
    const cfg: QueueConfig = {
      index,
      size: c[q + Q_NUM] as number,
      desc: join64(c[q + Q_DESC] as number, c[q + Q_DESC + 1] as number),
      driver: join64(c[q + Q_DRIVER] as number, c[q + Q_DRIVER + 1] as number),
      device: join64(c[q + Q_DEVICE] as number, c[q + Q_DEVICE + 1] as number),
    };
    const problem = validateQueue(cfg, c[q + Q_MAX] as number, this.memory);
    if (problem) {
      // A driver error: the queue stays not ready and the device asks to be reset (§2.1.2).
      c[C.status] = (c[C.status] as number) | STATUS.NEEDS_RESET;
      Atomics.or(c, C.intStatus, INT_CONFIG_CHANGE);
      return () => this.onInterruptNeeded();
    }
    c[q + Q_READY] = 1;
    return undefined;
  }

  private writeStatus(status: number, v: number): (() => void) | undefined {
    const c = this.c;
    if (v === 0) {
      const seq = this.resetLocked();
      return () => {
        this.events.statusChanged(0);
        if (this.resetBarrier) this.state.awaitReset(seq, this.resetBarrier);
      };
    }
    // The driver only ever adds bits (§3.1.1); anything else is ignored.
    if ((v & status) !== status) return undefined;
    let next = v;
    if (v & STATUS.FEATURES_OK && !(status & STATUS.FEATURES_OK)) {
      const drv = this.state.driverFeatures;
      const dev = this.state.deviceFeatures;
      const ok = (drv & ~dev) === 0n && (drv & (1n << VIRTIO_F_VERSION_1)) !== 0n;
      if (!ok) next &= ~STATUS.FEATURES_OK; // the driver reads it back and gives up (§3.1.1 step 6)
    }
    if (v & STATUS.DRIVER_OK && !(next & STATUS.FEATURES_OK)) next &= ~STATUS.DRIVER_OK;
    c[C.status] = next;
    return () => this.events.statusChanged(next);
  }

  /** Resets the registers; returns the reset's sequence number (TransportState.resetSequence). */
  private resetLocked(): number {
    const c = this.c;
    c[C.status] = 0;
    c[C.devFeatSel] = 0;
    c[C.drvFeatSel] = 0;
    c[C.drvFeatLo] = 0;
    c[C.drvFeatHi] = 0;
    c[C.queueSel] = 0;
    c[C.intStatus] = 0;
    this.state.discardDoorbellAckLocked();
    c[C.shmSel] = 0;
    for (let i = 0; i < MAX_QUEUES; i++) {
      const o = C.queues + i * Q_CELLS;
      for (let f = Q_NUM; f < Q_CELLS; f++) c[o + f] = 0;
    }
    return (Atomics.add(c, RESET_SEQ, 1) + 1) | 0;
  }
}
