// A test rig for the vsock core: a recording fake of the host backend, and a guest side that
// sends tx packets and pulls rx packets, with no queues or sockets.
import { VSOCK_HEADER_SIZE } from '../../src/devices/vsock/packet.js';
import {
  VsockMuxer,
  type CloseReason,
  type GuestBoundPacket,
  type GuestConnectDecision,
  type VsockBackend,
  type VsockMuxerOptions,
} from '../../src/devices/vsock/muxer.js';
import { GUEST_CID, guestHeaderBytes, type GuestPacketFields } from './vsock-packets.js';

export * from './vsock-packets.js';

export type BackendCall =
  | { readonly call: 'onGuestConnect'; readonly connId: number; readonly guestPort: number; readonly hostPort: number }
  | { readonly call: 'connected' | 'endOfStream' | 'pauseReading' | 'resumeReading'; readonly connId: number }
  | { readonly call: 'deliver'; readonly connId: number; readonly offered: number; readonly taken: number }
  | { readonly call: 'close'; readonly connId: number; readonly reason: CloseReason };

/** A host backend that records every call; what it decides and takes is set per test. */
export class FakeBackend implements VsockBackend {
  readonly calls: BackendCall[] = [];
  /** Decision by host port; ports not listed are refused. */
  readonly listeners = new Map<number, GuestConnectDecision>();
  /** Bytes deliver() takes per connection before it blocks (Infinity: everything). */
  readonly budget = new Map<number, number>();
  defaultBudget = Number.POSITIVE_INFINITY;
  /** Bytes delivered, per connection, concatenated in order. */
  readonly delivered = new Map<number, number[]>();
  readonly closed = new Map<number, CloseReason[]>();

  onGuestConnect(connId: number, guestPort: number, hostPort: number): GuestConnectDecision {
    this.calls.push({ call: 'onGuestConnect', connId, guestPort, hostPort });
    return this.listeners.get(hostPort) ?? 'refuse';
  }

  connected(connId: number): void {
    this.calls.push({ call: 'connected', connId });
  }

  deliver(connId: number, bytes: Uint8Array): number {
    const budget = this.budget.get(connId) ?? this.defaultBudget;
    const taken = Math.min(bytes.byteLength, budget);
    if (budget !== Number.POSITIVE_INFINITY) this.budget.set(connId, budget - taken);
    const into = this.delivered.get(connId) ?? [];
    for (let i = 0; i < taken; i++) into.push(bytes[i] as number);
    this.delivered.set(connId, into);
    this.calls.push({ call: 'deliver', connId, offered: bytes.byteLength, taken });
    return taken;
  }

  endOfStream(connId: number): void {
    this.calls.push({ call: 'endOfStream', connId });
  }

  pauseReading(connId: number): void {
    this.calls.push({ call: 'pauseReading', connId });
  }

  resumeReading(connId: number): void {
    this.calls.push({ call: 'resumeReading', connId });
  }

  close(connId: number, reason: CloseReason): void {
    this.calls.push({ call: 'close', connId, reason });
    const list = this.closed.get(connId) ?? [];
    list.push(reason);
    this.closed.set(connId, list);
  }

  /** The calls of one kind, in order. */
  callsOf<K extends BackendCall['call']>(kind: K): Extract<BackendCall, { call: K }>[] {
    return this.calls.filter((c): c is Extract<BackendCall, { call: K }> => c.call === kind);
  }

  bytesFor(connId: number): Uint8Array {
    return Uint8Array.from(this.delivered.get(connId) ?? []);
  }
}

/** A muxer over a FakeBackend, with a clock, and a guest that sends and pulls packets. */
export class VsockRig {
  readonly backend = new FakeBackend();
  readonly mux: VsockMuxer;
  now = 0;

  constructor(options: Partial<VsockMuxerOptions> = {}) {
    this.mux = new VsockMuxer(this.backend, { guestCid: GUEST_CID, ...options });
  }

  send(f: GuestPacketFields): ReturnType<VsockMuxer['handleGuestPacket']> {
    return this.mux.handleGuestPacket(guestHeaderBytes(f), f.payload ?? new Uint8Array(0), this.now);
  }

  /** Pulls one packet for an rx buffer of maxLen bytes (default: header + 64 KiB). */
  pull(maxLen = VSOCK_HEADER_SIZE + 64 * 1024): GuestBoundPacket | undefined {
    return this.mux.nextPacketForGuest(maxLen);
  }

  /** Pulls every packet (at most `limit`). */
  pullAll(maxLen?: number, limit = 10_000): GuestBoundPacket[] {
    const out: GuestBoundPacket[] = [];
    while (this.mux.hasPacketForGuest() && out.length < limit) {
      const p = this.pull(maxLen);
      if (!p) break;
      out.push(p);
    }
    return out;
  }

  advance(ms: number): void {
    this.now += ms;
    this.mux.tick(this.now);
  }
}
