// Property tests of the vsock core (src/devices/vsock/muxer.ts and connection.ts) against a model:
// random interleavings of guest packets — well-formed and garbage (bad lengths, unknown ops and
// types, wrong CIDs, packets for unknown connections, more data than credit) — and host events
// (connect, data, partial writes, EOF, close, reset, accept/refuse), rx pulls with buffers of any
// size, time and transport resets. Invariants:
// - nothing escapes as an exception, for any guest input;
// - the guest is never sent more than its advertised credit (§5.10.6.3);
// - the bytes each side receives are a prefix of what the other side sent, in order, and all of
//   them once the host reader and the guest keep up;
// - the table never exceeds maxConnections, the reply queue never maxPendingResets, a connection's
//   buffers never their bounds, and pending output drains in a bounded number of packets;
// - once the host reader keeps up, the guest is not left believing it has less credit than the
//   CREDIT_UPDATE threshold when more is free (credit updates are not lost);
// - an RST is never answered with an RST;
// - the backend hears close() exactly once per connection and nothing after it, is never offered
//   bytes while it is blocked, and the table empties once everything is closed (no leaks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VSOCK_HEADER_SIZE,
  checkGuestPacket,
  encodeHeader,
} from '../../src/devices/vsock/packet.js';
import {
  VsockMuxer,
  type CloseReason,
  type GuestBoundPacket,
  type GuestConnectDecision,
  type VsockBackend,
} from '../../src/devices/vsock/muxer.js';
import { GUEST_CID, guestHeader } from '../helpers/vsock-packets.js';

const OPTIONS = {
  guestCid: GUEST_CID,
  maxConnections: 3,
  bufAlloc: 600,
  hostBufferBytes: 400,
  connectTimeoutMs: 100,
  closeTimeoutMs: 200,
  maxPendingResets: 4,
} as const;

/** Host ports the guest connects to, and what the backend answers. */
const LISTENERS: ReadonlyMap<number, GuestConnectDecision> = new Map([
  [52, 'accept'],
  [53, 'defer'],
  [54, 'refuse'],
]);
const GUEST_PORTS = [1, 2, 3];
const FIXED_PAIRS: readonly [number, number][] = [
  [1, 52],
  [2, 52],
  [3, 52],
  [1, 53],
  [2, 54],
  [1, 99],
];

/** A backend that checks its own contract while recording what it was given. */
class StrictBackend implements VsockBackend {
  readonly closes = new Map<number, CloseReason[]>();
  readonly delivered = new Map<number, number[]>();
  readonly budget = new Map<number, number>();
  readonly blocked = new Set<number>();
  readonly known = new Set<number>();
  /** Set by onGuestConnect during a guest packet: the connection the model now maps the pair to. */
  created: { connId: number; decision: GuestConnectDecision } | undefined;
  violations: string[] = [];

  private alive(connId: number, what: string): void {
    if (this.closes.has(connId)) this.violations.push(`${what}(${connId}) after close`);
    if (!this.known.has(connId)) this.violations.push(`${what}(${connId}) for a connection never opened`);
  }

  onGuestConnect(connId: number, _guestPort: number, hostPort: number): GuestConnectDecision {
    const decision = LISTENERS.get(hostPort) ?? 'refuse';
    if (decision !== 'refuse') this.known.add(connId);
    this.created = { connId, decision };
    return decision;
  }

  connected(connId: number): void {
    this.alive(connId, 'connected');
  }

  deliver(connId: number, bytes: Uint8Array): number {
    this.alive(connId, 'deliver');
    if (this.blocked.has(connId)) this.violations.push(`deliver(${connId}) while blocked`);
    if (bytes.byteLength === 0) this.violations.push(`deliver(${connId}) of nothing`);
    const budget = this.budget.get(connId) ?? Number.POSITIVE_INFINITY;
    const taken = Math.min(budget, bytes.byteLength);
    if (budget !== Number.POSITIVE_INFINITY) this.budget.set(connId, budget - taken);
    if (taken < bytes.byteLength) this.blocked.add(connId);
    const into = this.delivered.get(connId) ?? [];
    for (let i = 0; i < taken; i++) into.push(bytes[i] as number);
    this.delivered.set(connId, into);
    return taken;
  }

  endOfStream(connId: number): void {
    this.alive(connId, 'endOfStream');
  }

  pauseReading(connId: number): void {
    this.alive(connId, 'pauseReading');
  }

  resumeReading(connId: number): void {
    this.alive(connId, 'resumeReading');
  }

  close(connId: number, reason: CloseReason): void {
    if (!this.known.has(connId)) this.violations.push(`close(${connId}) for a connection never opened`);
    const list = this.closes.get(connId) ?? [];
    list.push(reason);
    this.closes.set(connId, list);
    if (list.length > 1) this.violations.push(`close(${connId}) ${list.length} times: ${list.join(', ')}`);
  }
}

type Garble = 'none' | 'wrong-src-cid' | 'wrong-dst-cid' | 'type' | 'truncated' | 'oversized' | 'short' | 'payload-on-control';

/** A connection to act on: one the muxer still has (live), or any the model ever saw (maybe gone). */
interface ConnRef {
  readonly live: boolean;
  readonly index: number;
}

type Action =
  | { k: 'guest'; polite: boolean; live: boolean; pair: number; op: number; size: number; flags: number; honest: boolean; garble: Garble; rawBufAlloc: number; rawFwdCnt: number }
  | { k: 'hostConnect'; guestPort: number }
  | { k: 'hostData'; conn: ConnRef; size: number }
  | { k: 'hostWritable'; conn: ConnRef; budget: number }
  | { k: 'hostEof' | 'hostClose' | 'hostReset' | 'accept' | 'refuse'; conn: ConnRef }
  | { k: 'pull'; count: number; maxLen: number }
  | { k: 'tick'; ms: number }
  | { k: 'transportReset' };

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const connRef: fc.Arbitrary<ConnRef> = fc.record({
  live: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  index: fc.nat(30),
});

/**
 * Actions of a run. A chaotic run mixes in garbage, dishonest credit and ops in the wrong state
 * (most of its connections die young); a polite run is a guest that follows the protocol, so
 * streams live long and carry data both ways.
 */
function actionArb(polite: boolean): fc.Arbitrary<Action> {
  const w = (chaos: number, calm: number): number => (polite ? calm : chaos);
  const guest: fc.Arbitrary<Action> = fc.record({
    k: fc.constant('guest' as const),
    polite: fc.constant(polite),
    live: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    pair: fc.nat(40),
    op: fc.oneof(
      { weight: w(6, 12), arbitrary: fc.constant(VIRTIO_VSOCK_OP_RW) },
      { weight: w(3, 3), arbitrary: fc.constant(VIRTIO_VSOCK_OP_REQUEST) },
      { weight: w(2, 1), arbitrary: fc.constantFrom(VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_SHUTDOWN) },
      { weight: w(1, 1), arbitrary: fc.constant(VIRTIO_VSOCK_OP_RST) },
      { weight: w(2, 3), arbitrary: fc.constantFrom(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 7) },
      { weight: w(1, 0), arbitrary: fc.constantFrom(0, 8, 0xffff) },
    ),
    size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 1200 })),
    flags: polite ? fc.constantFrom(1, 2, 1, 2, 3) : fc.oneof(fc.constantFrom(1, 2, 3), fc.nat(7)),
    honest: polite ? fc.constant(true) : fc.boolean(),
    garble: polite
      ? fc.constant('none' as const)
      : fc.oneof(
          { weight: 12, arbitrary: fc.constant('none' as const) },
          { weight: 1, arbitrary: fc.constantFrom<Garble>('wrong-src-cid', 'wrong-dst-cid', 'type', 'truncated', 'oversized', 'short', 'payload-on-control') },
        ),
    rawBufAlloc: fc.oneof(u32, fc.nat(2000)),
    rawFwdCnt: fc.oneof(u32, fc.nat(2000)),
  });
  return fc.oneof(
    { weight: 10, arbitrary: guest },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('hostConnect' as const), guestPort: fc.constantFrom(...GUEST_PORTS, 9) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('hostData' as const), conn: connRef, size: fc.integer({ min: 1, max: 700 }) }) },
    {
      weight: 3,
      arbitrary: fc.record({ k: fc.constant('hostWritable' as const), conn: connRef, budget: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.nat(500)) }),
    },
    {
      weight: w(2, 1),
      arbitrary: fc.record({ k: fc.constantFrom('hostEof' as const, 'hostClose' as const, 'hostReset' as const, 'accept' as const, 'refuse' as const), conn: connRef }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('accept' as const), conn: connRef }) },
    {
      weight: 6,
      arbitrary: fc.record({ k: fc.constant('pull' as const), count: fc.integer({ min: 1, max: 6 }), maxLen: fc.constantFrom(0, 43, 44, 45, 100, 300, 44 + 4096, 44 + 65536) }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('tick' as const), ms: fc.constantFrom(1, 50, 100, 250) }) },
    { weight: w(1, 0), arbitrary: fc.constant({ k: 'transportReset' as const }) },
  );
}

const run: fc.Arbitrary<Action[]> = fc.boolean().chain((polite) => fc.array(actionArb(polite), { minLength: 1, maxLength: 150, size: 'max' }));

interface CreditInfo {
  bufAlloc: number;
  fwdCnt: number;
}

/** What the model knows about one connection (one incarnation of a port pair). */
interface ModelConn {
  readonly connId: number;
  readonly pair: string;
  /** The guest's credit fields from its latest well-formed packet for this connection. */
  guestCredit: CreditInfo | undefined;
  /** Our credit fields from the latest packet pulled for this connection. */
  ourCredit: CreditInfo | undefined;
  /** Payload bytes the guest sent in well-formed RW packets. */
  readonly guestSent: number[];
  /** Payload bytes the guest received in RW packets. */
  readonly guestReceived: number[];
  /** Bytes the host side offered and the muxer took. */
  readonly hostSent: number[];
  hostEof: boolean;
  hostClosed: boolean;
  guestShutRcv: boolean;
  guestShutSend: boolean;
}

class World {
  readonly backend = new StrictBackend();
  readonly mux = new VsockMuxer(this.backend, OPTIONS);
  now = 0;
  readonly conns: ModelConn[] = [];
  readonly byId = new Map<number, ModelConn>();
  /** Port pair "guestPort:hostPort" -> the latest connection for it. */
  readonly current = new Map<string, ModelConn>();
  readonly pairs: [number, number][] = [...FIXED_PAIRS];
  private stream = 0;

  private track(connId: number, pair: string): ModelConn {
    const c: ModelConn = {
      connId,
      pair,
      guestCredit: undefined,
      ourCredit: undefined,
      guestSent: [],
      guestReceived: [],
      hostSent: [],
      hostEof: false,
      hostClosed: false,
      guestShutRcv: false,
      guestShutSend: false,
    };
    this.conns.push(c);
    this.byId.set(connId, c);
    this.current.set(pair, c);
    return c;
  }

  private nextBytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => (this.stream++ * 13 + 5) & 0xff);
  }

  private hasKey(pair: string): boolean {
    return this.mux.connections().some((c) => `${c.guestPort}:${c.hostPort}` === pair);
  }

  guest(a: Extract<Action, { k: 'guest' }>): void {
    const live = a.live ? this.liveConns() : [];
    const [guestPort, hostPort] =
      live.length > 0 ? ((live[a.pair % live.length] as ModelConn).pair.split(':').map(Number) as [number, number]) : (this.pairs[a.pair % this.pairs.length] as [number, number]);
    const pair = `${guestPort}:${hostPort}`;
    const before = this.current.get(pair);
    // An honest guest advertises what it has received and keeps to the credit we gave it.
    if (a.polite && !this.politeAllows(a.op, before)) return;
    const receivedCount = before?.guestReceived.length ?? 0;
    const bufAlloc = a.honest ? 700 : a.rawBufAlloc;
    const fwdCnt = a.honest ? receivedCount >>> 0 : a.rawFwdCnt;
    let size = a.op === VIRTIO_VSOCK_OP_RW ? a.size : 0;
    if (a.honest && a.op === VIRTIO_VSOCK_OP_RW) {
      const ours = before?.ourCredit;
      const credit = ours ? Math.max(0, ours.bufAlloc - (before.guestSent.length - ours.fwdCnt)) : 0;
      size = Math.min(size, credit);
    }
    if (a.garble === 'payload-on-control' && a.op !== VIRTIO_VSOCK_OP_RW) size = Math.max(1, a.size);
    const payload = this.nextBytes(size);
    let len = size;
    if (a.garble === 'truncated') len = size + 1 + (a.size % 5);
    if (a.garble === 'oversized') len = 65537 + a.size;
    const header = encodeHeader(
      guestHeader({
        op: a.op,
        srcPort: guestPort,
        dstPort: hostPort,
        len,
        flags: a.op === VIRTIO_VSOCK_OP_SHUTDOWN ? a.flags : 0,
        bufAlloc,
        fwdCnt,
        type: a.garble === 'type' ? 2 : undefined,
        srcCid: a.garble === 'wrong-src-cid' ? GUEST_CID + 1n : undefined,
        dstCid: a.garble === 'wrong-dst-cid' ? 7n : undefined,
      }),
    );
    const headerBytes = a.garble === 'short' ? header.subarray(0, a.size % VSOCK_HEADER_SIZE) : header;
    const wellFormed = checkGuestPacket(headerBytes, payload.byteLength, { guestCid: GUEST_CID, maxPayload: 65536 }).ok;
    const keyExisted = this.hasKey(pair);
    const resetsBefore = this.mux.pendingResetCount;

    this.backend.created = undefined;
    this.mux.handleGuestPacket(headerBytes, payload, this.now);

    if (a.op === VIRTIO_VSOCK_OP_RST && !keyExisted) {
      assert.ok(this.mux.pendingResetCount <= resetsBefore, 'an RST was answered with an RST');
    }
    const created = this.backend.created as { connId: number; decision: GuestConnectDecision } | undefined;
    if (created && created.decision !== 'refuse') this.track(created.connId, pair);
    if (!wellFormed) return;
    const conn = this.current.get(pair);
    if (!conn) return;
    conn.guestCredit = { bufAlloc, fwdCnt };
    if (a.op === VIRTIO_VSOCK_OP_RW) conn.guestSent.push(...payload.subarray(0, len));
    if (a.op === VIRTIO_VSOCK_OP_SHUTDOWN && a.flags & VIRTIO_VSOCK_SHUTDOWN_RCV) conn.guestShutRcv = true;
    if (a.op === VIRTIO_VSOCK_OP_SHUTDOWN && a.flags & VIRTIO_VSOCK_SHUTDOWN_SEND) conn.guestShutSend = true;
  }

  /** Whether a guest that follows the protocol would send `op` on the pair's connection now. */
  private politeAllows(op: number, conn: ModelConn | undefined): boolean {
    const state = conn && this.mux.connectionInfo(conn.connId)?.state;
    const established = state === 'established' && conn?.ourCredit !== undefined;
    switch (op) {
      case VIRTIO_VSOCK_OP_REQUEST:
        return state === undefined;
      case VIRTIO_VSOCK_OP_RESPONSE:
        return state === 'local-init' && conn?.ourCredit !== undefined;
      case VIRTIO_VSOCK_OP_RW:
        return established && !conn?.guestShutSend;
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        return established;
      default:
        return true;
    }
  }

  hostConnect(guestPort: number): void {
    const r = this.mux.hostConnect(guestPort, this.now);
    if (!r.ok) return;
    this.backend.known.add(r.connId);
    this.pairs.push([guestPort, r.hostPort]);
    this.track(r.connId, `${guestPort}:${r.hostPort}`);
  }

  liveConns(): ModelConn[] {
    return this.conns.filter((c) => this.mux.connectionInfo(c.connId) !== undefined);
  }

  connAt(ref: ConnRef): ModelConn | undefined {
    const from = ref.live ? this.liveConns() : this.conns;
    return from.length === 0 ? undefined : from[ref.index % from.length];
  }

  hostData(c: ModelConn, size: number): void {
    if (c.hostEof || c.hostClosed || this.backend.closes.has(c.connId)) return; // the backend stops reading then
    const data = this.nextBytes(size);
    const taken = this.mux.hostData(c.connId, data);
    assert.ok(taken >= 0 && taken <= size);
    c.hostSent.push(...data.subarray(0, taken));
  }

  hostWritable(c: ModelConn, budget: number): void {
    this.backend.budget.set(c.connId, budget);
    this.backend.blocked.delete(c.connId);
    this.mux.hostWritable(c.connId, this.now);
  }

  pull(count: number, maxLen: number): GuestBoundPacket[] {
    const out: GuestBoundPacket[] = [];
    for (let i = 0; i < count && this.mux.hasPacketForGuest(); i++) {
      const p = this.mux.nextPacketForGuest(maxLen);
      if (!p) break;
      this.received(p, maxLen);
      out.push(p);
    }
    return out;
  }

  private received(p: GuestBoundPacket, maxLen: number): void {
    const h = p.header;
    assert.is(h.dstCid, GUEST_CID);
    assert.is(h.srcCid, 2n);
    assert.is(p.payload.byteLength, h.len);
    assert.ok(VSOCK_HEADER_SIZE + h.len <= maxLen, `packet of ${h.len} bytes in a ${maxLen}-byte buffer`);
    if (h.op !== VIRTIO_VSOCK_OP_RW) assert.is(h.len, 0);
    const conn = this.current.get(`${h.dstPort}:${h.srcPort}`);
    if (h.op === VIRTIO_VSOCK_OP_RW) {
      assert.ok(conn, 'RW for a connection the model never saw');
      if (!conn) return;
      assert.ok(h.len > 0, 'empty RW');
      // §5.10.6.3: never more than peer_buf_alloc - (tx_cnt - peer_fwd_cnt).
      const g = conn.guestCredit;
      assert.ok(g, 'RW before the guest told us its credit');
      if (!g) return;
      const inFlight = (conn.guestReceived.length + h.len - g.fwdCnt) >>> 0;
      assert.ok(inFlight <= g.bufAlloc, `sent ${h.len} with ${inFlight} in flight against buf_alloc ${g.bufAlloc}`);
      conn.guestReceived.push(...p.payload);
    }
    if (conn && h.op !== VIRTIO_VSOCK_OP_RST) {
      assert.is(h.bufAlloc, OPTIONS.bufAlloc);
      conn.ourCredit = { bufAlloc: h.bufAlloc, fwdCnt: h.fwdCnt };
    }
  }

  tick(ms: number): void {
    this.now += ms;
    this.mux.tick(this.now);
  }

  run(a: Action): void {
    switch (a.k) {
      case 'guest':
        return this.guest(a);
      case 'hostConnect':
        return this.hostConnect(a.guestPort);
      case 'pull':
        this.pull(a.count, a.maxLen);
        return;
      case 'tick':
        return this.tick(a.ms);
      case 'transportReset':
        this.mux.transportReset();
        assert.is(this.mux.connectionCount, 0);
        assert.not.ok(this.mux.hasPacketForGuest());
        return;
    }
    const c = this.connAt(a.conn);
    if (!c) return;
    switch (a.k) {
      case 'hostData':
        return this.hostData(c, a.size);
      case 'hostWritable':
        return this.hostWritable(c, a.budget);
      case 'hostEof':
        if (!c.hostClosed) c.hostEof = true;
        return this.mux.hostEof(c.connId);
      case 'hostClose':
        c.hostEof = true;
        c.hostClosed = true;
        return this.mux.hostClose(c.connId, this.now);
      case 'hostReset':
        return this.mux.hostReset(c.connId);
      case 'accept':
        this.mux.acceptGuestConnection(c.connId);
        return;
      case 'refuse':
        this.mux.refuseGuestConnection(c.connId);
        return;
    }
  }

  /** Invariants that hold after every step. */
  check(): void {
    assert.equal(this.backend.violations, []);
    assert.ok(this.mux.connectionCount <= OPTIONS.maxConnections, `${this.mux.connectionCount} connections`);
    assert.ok(this.mux.pendingResetCount <= OPTIONS.maxPendingResets);
    for (const info of this.mux.connections()) {
      assert.ok(info.accounting.toHostBytes <= OPTIONS.bufAlloc, `toHost ${info.accounting.toHostBytes}`);
      assert.ok(info.accounting.toGuestBytes <= OPTIONS.hostBufferBytes, `toGuest ${info.accounting.toGuestBytes}`);
    }
    for (const c of this.conns) {
      const delivered = this.backend.delivered.get(c.connId) ?? [];
      assert.ok(isPrefix(delivered, c.guestSent), `host got bytes the guest did not send, in that order (conn ${c.connId})`);
      assert.ok(isPrefix(c.guestReceived, c.hostSent), `guest got bytes the host did not send, in that order (conn ${c.connId})`);
    }
  }

  /** Pulls with big buffers until nothing is left; the count is bounded by what can be pending. */
  drainRx(): void {
    const bound = OPTIONS.maxPendingResets + OPTIONS.maxConnections * (8 + OPTIONS.hostBufferBytes);
    let pulled = 0;
    while (this.mux.hasPacketForGuest()) {
      const p = this.mux.nextPacketForGuest(VSOCK_HEADER_SIZE + 65536);
      if (!p) break;
      this.received(p, VSOCK_HEADER_SIZE + 65536);
      assert.ok(++pulled <= bound, 'pending output did not drain within its bound');
    }
  }
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

test('random guest packets and host events: credit, ordering, bounds, exactly-once close, no leaks', () => {
  fc.assert(
    fc.property(run, (actions) => {
      const w = new World();
      for (const a of actions) {
        w.run(a);
        w.check();
      }

      // Catch up: the host reads everything, the guest gives credit for all it received and
      // pulls; then every live, established, unclosed stream has delivered everything both ways.
      for (let round = 0; round < 4; round++) {
        for (const c of w.conns) {
          if (w.mux.connectionInfo(c.connId)) w.hostWritable(c, Number.POSITIVE_INFINITY);
        }
        w.drainRx();
        for (const c of w.conns) {
          const info = w.mux.connectionInfo(c.connId);
          if (!info || info.state !== 'established') continue;
          const [guestPort, hostPort] = c.pair.split(':').map(Number) as [number, number];
          const fwdCnt = c.guestReceived.length;
          w.mux.handleGuestPacket(
            encodeHeader(guestHeader({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: guestPort, dstPort: hostPort, bufAlloc: 1 << 20, fwdCnt })),
            new Uint8Array(0),
            w.now,
          );
          c.guestCredit = { bufAlloc: 1 << 20, fwdCnt };
        }
        w.drainRx();
        w.check();
      }
      for (const c of w.conns) {
        const info = w.mux.connectionInfo(c.connId);
        if (!info || info.state !== 'established') continue;
        // Liveness of credit updates: once we freed space, the guest is not left believing it
        // has less than the threshold (min(64 KiB, bufAlloc / 2)) when it could have more.
        if (!c.guestShutSend && !c.hostClosed && c.ourCredit) {
          const seen = c.ourCredit.bufAlloc - (c.guestSent.length - c.ourCredit.fwdCnt);
          const free = OPTIONS.bufAlloc - (c.guestSent.length - (w.backend.delivered.get(c.connId)?.length ?? 0));
          assert.ok(seen >= Math.min(OPTIONS.bufAlloc / 2, free), `conn ${c.connId}: the guest sees ${seen} bytes of credit, ${free} are free`);
        }
        if (!c.hostClosed) assert.equal(w.backend.delivered.get(c.connId) ?? [], c.guestSent, `conn ${c.connId}: guest -> host incomplete`);
        if (!c.guestShutRcv) assert.equal(c.guestReceived, c.hostSent, `conn ${c.connId}: host -> guest incomplete`);
      }

      // Tear down: the host resets what is left, time passes, the guest pulls the RSTs.
      for (const c of w.conns) w.mux.hostReset(c.connId);
      w.tick(OPTIONS.closeTimeoutMs + OPTIONS.connectTimeoutMs);
      w.drainRx();
      w.check();
      assert.is(w.mux.connectionCount, 0, 'connections leaked');
      assert.is(w.mux.nextDeadline(), undefined);
      for (const id of w.backend.known) assert.is(w.backend.closes.get(id)?.length, 1, `connection ${id} closed ${w.backend.closes.get(id)?.length ?? 0} times`);
    }),
    { numRuns: 400 },
  );
});

test('a flood of garbage never throws, never grows the reply queue past its bound, never opens a connection', () => {
  const garbage = fc.record({
    header: fc.uint8Array({ minLength: 0, maxLength: 60 }),
    payload: fc.integer({ min: 0, max: 70_000 }),
    patch: fc.option(fc.record({ srcCid: fc.boolean(), dstCid: fc.boolean(), type: fc.boolean(), op: fc.nat(9) }), { nil: undefined }),
  });
  fc.assert(
    fc.property(fc.array(garbage, { maxLength: 60 }), fc.array(fc.nat(3), { maxLength: 60 }), (packets, pulls) => {
      const backend = new StrictBackend();
      const mux = new VsockMuxer(backend, OPTIONS);
      packets.forEach((g, i) => {
        const header = g.header.byteLength >= 44 ? Uint8Array.from(g.header) : g.header;
        if (g.patch && header.byteLength >= 44) {
          const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
          if (g.patch.srcCid) v.setBigUint64(0, GUEST_CID, true);
          if (g.patch.dstCid) v.setBigUint64(8, 2n, true);
          if (g.patch.type) v.setUint16(28, 1, true);
          v.setUint16(30, g.patch.op, true);
          v.setUint32(24, v.getUint32(24, true) % 70_000, true);
        }
        mux.handleGuestPacket(header, new Uint8Array(g.payload), i);
        for (let k = 0; k < (pulls[i] ?? 0); k++) mux.nextPacketForGuest(44 + 100);
        assert.ok(mux.pendingResetCount <= OPTIONS.maxPendingResets);
        assert.ok(mux.connectionCount <= OPTIONS.maxConnections);
      });
      // REQUESTs to listening ports may have opened connections; RSTs must clear them.
      for (const c of mux.connections()) mux.hostReset(c.connId);
      while (mux.hasPacketForGuest()) if (!mux.nextPacketForGuest(44 + 100)) break;
      mux.tick(1e9);
      assert.is(mux.connectionCount, 0);
      assert.equal(backend.violations, []);
    }),
    { numRuns: 300 },
  );
});

test.run();
