// The ring-writing half of a test guest driver: what a Linux virtio driver does to one split
// virtqueue (virtio 1.2 §2.7.13, §2.7.14), over an in-memory GuestMemory. It lays out the
// descriptor table and both rings, allocates guest buffers from a bump allocator, posts chains
// (direct or through an indirect table), publishes them, and collects used entries. It also pokes
// raw descriptors and ring fields, so tests can build malformed rings. The transport half (MMIO
// registers, negotiation, notifications) lives elsewhere and uses this one.

import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import {
  DESC_SIZE,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from '../../src/devices/virtio/chain.js';
import { VIRTQ_USED_F_NO_NOTIFY, needEvent, ringSizes } from '../../src/devices/virtio/queue.js';

export interface VirtqDriverOptions {
  /** Queue size (a power of two). */
  size: number;
  /** Where the descriptor table starts (aligned up to 16); the rings follow it. */
  ringBase: number;
  /** [bufferBase, bufferEnd): where buffers and indirect tables are allocated. */
  bufferBase: number;
  bufferEnd: number;
  /** VIRTIO_F_EVENT_IDX negotiated: publish() decides kicks with avail_event. */
  eventIdx?: boolean;
}

export interface GuestBuffer {
  addr: number;
  len: number;
}

export interface RawDescriptor {
  addr: number | bigint;
  len: number;
  flags: number;
  next: number;
}

export interface UsedEntry {
  head: number;
  len: number;
}

export interface PostOptions {
  /** Put all buffers in one indirect table (one descriptor in the queue's table). */
  indirect?: boolean;
  /** Publish (advance avail.idx) at once; default true. */
  publish?: boolean;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export class VirtqDriver {
  /** A publish() asked for a notification that has not been sent (takeKick). */
  private kickOwed = false;
  readonly size: number;
  /** Descriptor Area, Driver Area (available ring), Device Area (used ring). */
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
  /** One past the used ring: the first byte after the queue's structures. */
  readonly ringEnd: number;
  private readonly eventIdx: boolean;
  private readonly freeDescs: number[] = [];
  private readonly chains = new Map<number, { descs: number[]; readable: GuestBuffer[]; writable: GuestBuffer[] }>();
  private availIdx = 0;
  private added = 0;
  private lastUsed = 0;
  private bump: number;

  constructor(
    readonly memory: GuestMemory,
    private readonly opts: VirtqDriverOptions,
  ) {
    const { size } = opts;
    const sizes = ringSizes(size);
    this.size = size;
    this.eventIdx = opts.eventIdx ?? false;
    this.desc = alignUp(opts.ringBase, 16);
    this.driver = this.desc + sizes.desc;
    this.device = alignUp(this.driver + sizes.driver, 4);
    this.ringEnd = this.device + sizes.device;
    // §2.7.10: the driver initialises the used ring's flags (and we zero everything else).
    memory.fill(this.desc, this.ringEnd - this.desc, 0);
    for (let i = size - 1; i >= 0; i--) this.freeDescs.push(i);
    this.bump = opts.bufferBase;
  }

  /** The addresses and size to configure a SplitQueue with. */
  get layout(): { size: number; desc: number; driver: number; device: number } {
    return { size: this.size, desc: this.desc, driver: this.driver, device: this.device };
  }

  /** Free descriptors in the queue's table. */
  get freeCount(): number {
    return this.freeDescs.length;
  }

  /** Chains posted and not yet collected. */
  get outstanding(): number {
    return this.chains.size;
  }

  /** The avail.idx the driver last published. */
  get publishedIdx(): number {
    return this.availIdx;
  }

  /** Allocates len bytes of guest memory for buffers (never freed, see resetBuffers). */
  alloc(len: number, align = 8): number {
    const addr = alignUp(this.bump, align);
    if (addr + len > this.opts.bufferEnd) {
      throw new Error(`virtq driver: buffer region [0x${this.opts.bufferBase.toString(16)}, 0x${this.opts.bufferEnd.toString(16)}) exhausted allocating ${len} bytes`);
    }
    this.bump = addr + len;
    return addr;
  }

  /** Starts the buffer allocator afresh; only when no chain is outstanding. */
  resetBuffers(): void {
    if (this.chains.size !== 0) throw new Error(`virtq driver: resetBuffers with ${this.chains.size} chains outstanding`);
    this.bump = this.opts.bufferBase;
  }

  /**
   * Copies each readable array into a fresh guest buffer, allocates writable buffers of the given
   * lengths, and posts them as one chain. Returns the head index.
   */
  post(readable: readonly Uint8Array[], writableLens: readonly number[], opts: PostOptions = {}): number {
    const r = readable.map((data) => {
      const addr = this.alloc(data.byteLength);
      this.memory.write(addr, data);
      return { addr, len: data.byteLength };
    });
    const w = writableLens.map((len) => ({ addr: this.alloc(len), len }));
    return this.postBuffers(r, w, opts);
  }

  /** Posts buffers already in guest memory as one chain (readable first, §2.7.13.1). */
  postBuffers(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], opts: PostOptions = {}): number {
    const bufs = [...readable.map((b) => ({ ...b, write: false })), ...writable.map((b) => ({ ...b, write: true }))];
    if (bufs.length === 0) throw new Error('virtq driver: a chain needs at least one buffer');
    const needed = opts.indirect ? 1 : bufs.length;
    if (this.freeDescs.length < needed) {
      throw new Error(`virtq driver: ${needed} descriptors needed, ${this.freeDescs.length} free`);
    }
    const descs: number[] = [];
    for (let i = 0; i < needed; i++) descs.push(this.freeDescs.pop() as number);
    const head = descs[0] as number;

    if (opts.indirect) {
      const table = this.alloc(DESC_SIZE * bufs.length, 16);
      bufs.forEach((b, i) => {
        const last = i === bufs.length - 1;
        this.writeDescAt(table + DESC_SIZE * i, {
          addr: b.addr,
          len: b.len,
          flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
          next: last ? 0 : i + 1,
        });
      });
      this.writeDesc(head, { addr: table, len: DESC_SIZE * bufs.length, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    } else {
      bufs.forEach((b, i) => {
        const last = i === bufs.length - 1;
        this.writeDesc(descs[i] as number, {
          addr: b.addr,
          len: b.len,
          flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
          next: last ? 0 : (descs[i + 1] as number),
        });
      });
    }
    this.chains.set(head, { descs, readable: [...readable], writable: [...writable] });
    this.writeAvailEntry((this.availIdx + this.added) % this.size, head);
    this.added++;
    if (opts.publish ?? true) this.publish();
    return head;
  }

  /**
   * Makes the posted chains visible (avail.idx += added, §2.7.13.3) and says whether the device
   * wants a notification for them (§2.7.10: avail_event with EVENT_IDX, else VIRTQ_USED_F_NO_NOTIFY).
   */
  publish(): boolean {
    const old = this.availIdx;
    this.availIdx = (this.availIdx + this.added) & 0xffff;
    this.added = 0;
    this.memory.writeU16(this.driver + 2, this.availIdx);
    const kick = this.eventIdx ? needEvent(this.availEvent, this.availIdx, old) : (this.memory.readU16(this.device) & VIRTQ_USED_F_NO_NOTIFY) === 0;
    this.kickOwed ||= kick;
    return kick;
  }

  /**
   * Whether a publish() since the last call asked for a notification (and forgets it). post()
   * publishes at once, so the driver's kick must remember what those publishes decided: with
   * EVENT_IDX a second publish() of nothing new never asks for one.
   */
  takeKick(): boolean {
    const owed = this.kickOwed;
    this.kickOwed = false;
    return owed;
  }

  /** Reads new used entries (§2.7.14) and frees their descriptors. */
  collectUsed(): UsedEntry[] {
    const out: UsedEntry[] = [];
    const usedIdx = this.memory.readU16(this.device + 2);
    while (this.lastUsed !== usedIdx) {
      const elem = this.device + 4 + 8 * (this.lastUsed % this.size);
      const head = this.memory.readU32(elem);
      const len = this.memory.readU32(elem + 4);
      out.push({ head, len });
      const chain = this.chains.get(head);
      if (chain) {
        this.chains.delete(head);
        for (const d of chain.descs) this.freeDescs.push(d);
      }
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** The buffers posted under head (until collected). */
  buffersOf(head: number): { readable: GuestBuffer[]; writable: GuestBuffer[] } | undefined {
    const c = this.chains.get(head);
    return c && { readable: c.readable, writable: c.writable };
  }

  /** The first len bytes the device wrote to the writable side of head, across buffers. */
  readWritten(head: number, len: number): Uint8Array {
    const c = this.chains.get(head);
    if (!c) throw new Error(`virtq driver: no outstanding chain at head ${head}`);
    const out = new Uint8Array(len);
    let at = 0;
    for (const b of c.writable) {
      if (at >= len) break;
      const n = Math.min(b.len, len - at);
      out.set(this.memory.slice(b.addr, n), at);
      at += n;
    }
    if (at < len) throw new Error(`virtq driver: head ${head} has only ${at} writable bytes, ${len} asked`);
    return out;
  }

  // --- notification suppression fields -------------------------------------------------------

  /** avail.flags (VIRTQ_AVAIL_F_NO_INTERRUPT = 1). */
  setAvailFlags(flags: number): void {
    this.memory.writeU16(this.driver, flags);
  }

  /** used_event: "interrupt me when used.idx passes this" (§2.7.7, EVENT_IDX). */
  setUsedEvent(idx: number): void {
    this.memory.writeU16(this.driver + 4 + 2 * this.size, idx & 0xffff);
  }

  get usedFlags(): number {
    return this.memory.readU16(this.device);
  }

  get usedIdx(): number {
    return this.memory.readU16(this.device + 2);
  }

  get availEvent(): number {
    return this.memory.readU16(this.device + 4 + 8 * this.size);
  }

  // --- raw pokes, for malformed rings --------------------------------------------------------

  writeDesc(index: number, d: RawDescriptor): void {
    this.writeDescAt(this.desc + DESC_SIZE * index, d);
  }

  /** Writes a descriptor anywhere (an indirect table entry). */
  writeDescAt(gpa: number, d: RawDescriptor): void {
    this.memory.writeU64(gpa, BigInt(d.addr));
    this.memory.writeU32(gpa + 8, d.len >>> 0);
    this.memory.writeU16(gpa + 12, d.flags & 0xffff);
    this.memory.writeU16(gpa + 14, d.next & 0xffff);
  }

  /** avail.ring[slot] = head. */
  writeAvailEntry(slot: number, head: number): void {
    this.memory.writeU16(this.driver + 4 + 2 * slot, head & 0xffff);
  }

  /** avail.idx = idx, bypassing the driver's bookkeeping. */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.memory.writeU16(this.driver + 2, this.availIdx);
  }

  /** Posts a raw head (whatever the table holds) and publishes it. */
  postRawHead(head: number): void {
    this.writeAvailEntry(this.availIdx % this.size, head);
    this.setAvailIdx(this.availIdx + 1);
  }
}
