// A virtio-blk device activated over an in-memory guest with one split queue, driven by the test
// driver (virtq-driver.ts): build requests, post them, collect what the device answered.
import { readdirSync } from 'node:fs';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { SplitQueue } from '../../src/devices/virtio/queue.js';
import type { ActivateContext } from '../../src/devices/virtio/device.js';
import { BlockBackendError, type BlockBackend, type TransferDone, type VirtioBlock } from '../../src/devices/virtio/block/index.js';
import { VirtqDriver, type GuestBuffer, type UsedEntry } from './virtq-driver.js';

export const SECTOR = 512;

export interface Rig {
  memory: GuestMemory;
  driver: VirtqDriver;
  queue: SplitQueue;
  ctx: ActivateContext;
  interrupts: () => number;
  resets: string[];
}

export interface RigOptions {
  /** The features the driver accepted; default all the device offers. */
  features?: bigint;
  /** Guest RAM in bytes (buffers are allocated from 0x4000 to its end); default 1 MiB. */
  memorySize?: number;
}

/** Activates `dev` over a fresh guest with a 16-entry queue 0. */
export function rig(dev: VirtioBlock, options: RigOptions = {}): Rig {
  const size = options.memorySize ?? 0x100000;
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size }]);
  const driver = new VirtqDriver(memory, { size: 16, ringBase: 0x1000, bufferBase: 0x4000, bufferEnd: size });
  const queue = new SplitQueue(memory, { ...driver.layout, index: 0, maxSize: 256, eventIdx: false, indirectDesc: true });
  let interrupts = 0;
  const resets: string[] = [];
  const ctx: ActivateContext = {
    memory,
    queues: [queue],
    features: options.features ?? dev.features,
    interrupt: () => {
      interrupts++;
    },
    needsReset: (reason) => {
      resets.push(reason);
    },
  };
  dev.activate(ctx);
  return { memory, driver, queue, ctx, interrupts: () => interrupts, resets };
}

/** A request header (§5.2.6): le32 type, le32 reserved, le64 sector. */
export function header(type: number, sector: bigint | number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}

export interface Posted {
  head: number;
  writable: GuestBuffer[];
}

/** Posts readable arrays + writable buffers of the given lengths (the last one holds the status). */
export function post(r: Rig, readable: Uint8Array[], writableLens: number[], indirect = false): Posted {
  const head = r.driver.post(readable, writableLens, { indirect });
  const bufs = r.driver.buffersOf(head);
  if (!bufs) throw new Error('posted chain not found');
  return { head, writable: bufs.writable };
}

/** The guest address of the request's status byte (the last writable byte). */
export function statusAddr(p: Posted): number {
  const last = p.writable[p.writable.length - 1] as GuestBuffer;
  return last.addr + last.len - 1;
}

export function statusOf(r: Rig, p: Posted): number {
  return r.memory.readU8(statusAddr(p));
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** Lets `n` event-loop turns pass (setImmediate runs after that turn's I/O callbacks). */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((res) => setImmediate(res));
}

/**
 * Polls the used ring until `n` entries arrived (and the interrupt check ran), or fails. The
 * deadline only catches a hang, so it is generous: a slow machine just polls longer.
 */
export async function used(r: Rig, n: number, timeoutMs = 30_000): Promise<UsedEntry[]> {
  const out: UsedEntry[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    out.push(...r.driver.collectUsed());
    if (out.length >= n) break;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} used entries, got ${out.length}`);
    await sleep(1);
  }
  await turns(1);
  return out;
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

type GatedOp = Exclude<BlockBackendError['op'], 'open' | 'close'>;

export interface Gate {
  /** The backend call that waits on this gate. */
  readonly op: GatedOp;
  release(): void;
  /** Fails the call with a BlockBackendError. */
  fail(): void;
}

/** A backend whose operations wait until their gate is released (or failed), in call order. */
export class GatedBackend implements BlockBackend {
  readonly path = '/gated';
  readonly readOnly = false;
  readonly size = 64 * SECTOR;
  gates: Gate[] = [];
  closed = false;

  private gate(op: GatedOp): Promise<void> {
    return new Promise((res, rej) => this.gates.push({ op, release: res, fail: () => rej(new BlockBackendError(op, this.path, 0, 0, 'injected failure')) }));
  }
  private gated(op: GatedOp, done: TransferDone): void {
    this.gate(op).then(
      () => done(undefined),
      (e: BlockBackendError) => done(e),
    );
  }
  startRead(_pos: number, _buffers: readonly Uint8Array[], done: TransferDone): void {
    this.gated('read', done);
  }
  startWrite(_pos: number, _buffers: readonly Uint8Array[], done: TransferDone): void {
    this.gated('write', done);
  }
  flush(): Promise<void> {
    return this.gate('flush');
  }
  writeZeroes(): Promise<void> {
    return this.gate('write-zeroes');
  }
  discard(): Promise<void> {
    return this.gate('discard');
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
