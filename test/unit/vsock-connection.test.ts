// Scenarios of the vsock core (src/devices/vsock/connection.ts through the muxer that drives it):
// connection set-up both ways, data both ways, credit flow control, half and full close, RST,
// timeouts and back-pressure, against a recording fake backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_BOTH,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HOST_CID,
  opName,
} from '../../src/devices/vsock/packet.js';
import type { GuestBoundPacket } from '../../src/devices/vsock/connection.js';
import { GUEST_CID, VsockRig, bytes, concat } from '../helpers/vsock-rig.js';

const G = 1000; // guest port
const H = 52; // host port

function ops(packets: readonly GuestBoundPacket[]): string[] {
  return packets.map((p) => opName(p.header.op));
}

function only(packets: readonly GuestBoundPacket[]): GuestBoundPacket {
  assert.is(packets.length, 1, `one packet expected, got ${ops(packets).join(', ')}`);
  return packets[0] as GuestBoundPacket;
}

/** A guest-initiated connection, accepted and its RESPONSE pulled. */
function connectFromGuest(rig: VsockRig, opts: { guestPort?: number; hostPort?: number; bufAlloc?: number } = {}): number {
  const guestPort = opts.guestPort ?? G;
  const hostPort = opts.hostPort ?? H;
  rig.backend.listeners.set(hostPort, 'accept');
  assert.is(rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: guestPort, dstPort: hostPort, bufAlloc: opts.bufAlloc }), undefined);
  const call = rig.backend.callsOf('onGuestConnect').at(-1);
  assert.ok(call && call.guestPort === guestPort && call.hostPort === hostPort);
  const response = only(rig.pullAll());
  assert.is(response.header.op, VIRTIO_VSOCK_OP_RESPONSE);
  return (call as { connId: number }).connId;
}

test('guest connects, host accepts: RESPONSE with our credit, then data both ways', () => {
  const rig = new VsockRig();
  rig.backend.listeners.set(H, 'accept');
  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: G, dstPort: H, bufAlloc: 65536 });
  assert.is(rig.mux.connectionCount, 1);
  const response = only(rig.pullAll());
  assert.equal(response.header, {
    srcCid: VSOCK_HOST_CID,
    dstCid: GUEST_CID,
    srcPort: H,
    dstPort: G,
    len: 0,
    type: VIRTIO_VSOCK_TYPE_STREAM,
    op: VIRTIO_VSOCK_OP_RESPONSE,
    flags: 0,
    bufAlloc: 256 * 1024,
    fwdCnt: 0,
  });
  const id = rig.backend.callsOf('onGuestConnect')[0]?.connId as number;

  const fromGuest = bytes(100, 1);
  assert.is(rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: fromGuest }), undefined);
  assert.equal([...rig.backend.bytesFor(id)], [...fromGuest]);
  assert.is(rig.mux.connectionInfo(id)?.accounting.fwdCnt, 100);
  assert.not.ok(rig.mux.hasPacketForGuest(), 'no credit update: the guest still sees plenty of credit');

  const fromHost = bytes(300, 2);
  assert.is(rig.mux.hostData(id, fromHost), 300);
  const rw = only(rig.pullAll());
  assert.is(rw.header.op, VIRTIO_VSOCK_OP_RW);
  assert.is(rw.header.len, 300);
  assert.is(rw.header.fwdCnt, 100, 'every packet carries fwd_cnt');
  assert.equal([...rw.payload], [...fromHost]);
});

test('a guest REQUEST to a port nobody listens on is answered with RST; the backend is not told close', () => {
  const rig = new VsockRig();
  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: G, dstPort: 99 });
  const rst = only(rig.pullAll());
  assert.is(rst.header.op, VIRTIO_VSOCK_OP_RST);
  assert.is(rst.header.srcPort, 99);
  assert.is(rst.header.dstPort, G);
  assert.is(rig.mux.connectionCount, 0);
  assert.is(rig.backend.callsOf('close').length, 0);
});

test('a deferred accept: RESPONSE only after acceptGuestConnection; refused or timed out: RST and close', () => {
  const rig = new VsockRig({ connectTimeoutMs: 1000 });
  rig.backend.listeners.set(H, 'defer');
  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: G, dstPort: H });
  const id = rig.backend.callsOf('onGuestConnect')[0]?.connId as number;
  assert.not.ok(rig.mux.hasPacketForGuest());
  assert.is(rig.mux.nextDeadline(), 1000);
  assert.ok(rig.mux.acceptGuestConnection(id));
  assert.not.ok(rig.mux.acceptGuestConnection(id), 'a second accept does nothing');
  assert.equal(ops(rig.pullAll()), ['RESPONSE']);
  assert.is(rig.mux.nextDeadline(), undefined);

  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: G + 1, dstPort: H });
  const refused = rig.backend.callsOf('onGuestConnect')[1]?.connId as number;
  assert.ok(rig.mux.refuseGuestConnection(refused));
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.equal(rig.backend.closed.get(refused), ['refused']);

  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: G + 2, dstPort: H });
  const slow = rig.backend.callsOf('onGuestConnect')[2]?.connId as number;
  rig.advance(999);
  assert.not.ok(rig.mux.hasPacketForGuest());
  rig.advance(1);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.equal(rig.backend.closed.get(slow), ['timeout']);
  assert.not.ok(rig.mux.acceptGuestConnection(slow), 'too late');
  assert.is(rig.mux.connectionCount, 1);
});

test('host -> guest credit: the sender stalls at the guest credit, asks once, and resumes on CREDIT_UPDATE', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig, { bufAlloc: 1000 });
  const data = bytes(2500, 3);
  assert.is(rig.mux.hostData(id, data), 2500);
  const first = rig.pullAll();
  assert.equal(ops(first), ['RW', 'CREDIT_REQUEST'], 'the credit ran out: one CREDIT_REQUEST, then silence');
  assert.is(first[0]?.header.len, 1000);
  assert.not.ok(rig.mux.hasPacketForGuest());

  // The guest answers with no new credit: no second request (no ping-pong).
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: G, dstPort: H, bufAlloc: 1000, fwdCnt: 0 });
  assert.equal(ops(rig.pullAll()), []);
  // Its application read 600 bytes.
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: G, dstPort: H, bufAlloc: 1000, fwdCnt: 600 });
  const second = rig.pullAll();
  assert.equal(ops(second), ['RW', 'CREDIT_REQUEST']);
  assert.is(second[0]?.header.len, 600);
  // It grows its buffer: everything left goes out.
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: G, dstPort: H, bufAlloc: 100_000, fwdCnt: 1600 });
  const third = rig.pullAll();
  assert.equal(ops(third), ['RW']);
  assert.equal([...concat([first[0]!.payload, second[0]!.payload, third[0]!.payload])], [...data]);
});

test('host -> guest credit: a guest that shrinks its buffer below what is in flight gets nothing', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig, { bufAlloc: 1000 });
  rig.mux.hostData(id, bytes(1000));
  assert.is(only(rig.pullAll()).header.len, 1000);
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: G, dstPort: H, bufAlloc: 500, fwdCnt: 0 });
  rig.mux.hostData(id, bytes(10));
  assert.equal(ops(rig.pullAll()), ['CREDIT_REQUEST']);
  // A bogus fwd_cnt ahead of what we sent gives no credit either (in flight wraps past buf_alloc).
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: G, dstPort: H, bufAlloc: 500, fwdCnt: 5000 });
  assert.equal(ops(rig.pullAll()), []);
});

test('a CREDIT_REQUEST from the guest is answered with a CREDIT_UPDATE carrying our fwd_cnt', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(10) });
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_REQUEST, srcPort: G, dstPort: H });
  const update = only(rig.pullAll());
  assert.is(update.header.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  assert.is(update.header.fwdCnt, 10);
  assert.is(update.header.bufAlloc, 256 * 1024);
  assert.equal([...rig.backend.bytesFor(id)], [...bytes(10)]);
});

test('guest -> host credit: a slow host holds the guest back; fwd_cnt moves only with what the host took', () => {
  const rig = new VsockRig({ bufAlloc: 4096 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 1000);
  const data = bytes(4096, 4);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: data });
  assert.equal(rig.backend.callsOf('deliver').map((c) => [c.offered, c.taken]), [[4096, 1000]]);
  // The guest believes 4096 - 4096 = 0; we freed 1000 it does not know about and 0 < 2048: update.
  const update = only(rig.pullAll());
  assert.is(update.header.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  assert.is(update.header.fwdCnt, 1000);
  assert.is(rig.mux.connectionInfo(id)?.accounting.toHostBytes, 3096);

  // Nothing is offered again until the host says it can take more.
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(1000, 5) });
  assert.is(rig.backend.callsOf('deliver').length, 1);
  rig.backend.budget.set(id, Number.POSITIVE_INFINITY);
  rig.mux.hostWritable(id, rig.now);
  assert.equal([...rig.backend.bytesFor(id)], [...concat([data, bytes(1000, 5)])]);
  assert.equal(ops(rig.pullAll()), ['CREDIT_UPDATE']);
  assert.is(rig.mux.connectionInfo(id)?.accounting.fwdCnt, 5096);
});

test('a guest sending more than its credit is reset and the host side told', () => {
  const rig = new VsockRig({ bufAlloc: 4096 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(4000) });
  assert.equal(ops(rig.pullAll()), []);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(97) });
  assert.is(rig.mux.stats.protocolViolations, 1);
  assert.equal(rig.backend.closed.get(id), ['reset']);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.connectionCount, 0);
});

test('half-close, guest side: SHUTDOWN(SEND) gives end-of-stream after the last byte reached the host; data still flows to the guest', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 5);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(20) });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_SEND });
  assert.is(rig.backend.callsOf('endOfStream').length, 0, 'not before the host took everything');
  rig.backend.budget.set(id, Number.POSITIVE_INFINITY);
  rig.mux.hostWritable(id, rig.now);
  assert.equal(rig.backend.callsOf('endOfStream'), [{ call: 'endOfStream', connId: id }]);
  const lastCalls = rig.backend.calls.slice(-2).map((c) => c.call);
  assert.equal(lastCalls, ['deliver', 'endOfStream']);

  rig.mux.hostData(id, bytes(7));
  assert.equal(ops(rig.pullAll()), ['RW']);
  // More data after SHUTDOWN(SEND) is a violation.
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(1) });
  assert.equal(rig.backend.closed.get(id), ['reset']);
  assert.equal(ops(rig.pullAll()), ['RST']);
});

test('half-close, host side: EOF becomes SHUTDOWN(SEND) after the buffered data; the guest can still send', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig, { bufAlloc: 10 });
  rig.mux.hostData(id, bytes(25, 6));
  rig.mux.hostEof(id);
  assert.is(rig.mux.hostData(id, bytes(5)), 5, 'data after EOF is dropped (counted as taken)');
  const first = rig.pullAll();
  assert.equal(ops(first), ['RW', 'CREDIT_REQUEST'], 'no SHUTDOWN while data waits');
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: G, dstPort: H, bufAlloc: 100, fwdCnt: 10 });
  const rest = rig.pullAll();
  assert.equal(ops(rest), ['RW', 'SHUTDOWN']);
  assert.is(rest[1]?.header.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
  assert.equal([...concat([first[0]!.payload, rest[0]!.payload])], [...bytes(25, 6)]);

  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(3) });
  assert.equal([...rig.backend.bytesFor(id)], [...bytes(3)]);
  assert.is(rig.mux.connectionCount, 1);
});

test('guest SHUTDOWN(RCV) drops the host data waiting for it and any later host data', () => {
  const rig = new VsockRig({ hostBufferBytes: 100 });
  const id = connectFromGuest(rig, { bufAlloc: 0 });
  assert.is(rig.mux.hostData(id, bytes(150)), 100);
  assert.equal(rig.backend.callsOf('pauseReading').length, 1);
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_RCV });
  assert.equal(rig.backend.callsOf('resumeReading').length, 1, 'the host reader is released: its data is discarded');
  assert.is(rig.mux.connectionInfo(id)?.accounting.toGuestBytes, 0);
  assert.is(rig.mux.hostData(id, bytes(50)), 50);
  assert.equal(ops(rig.pullAll()), [], 'nothing waits for the guest any more');
});

test('full close by the guest: SHUTDOWN(RCV) then SHUTDOWN(SEND) is confirmed with RST once its data reached the host', () => {
  const rig = new VsockRig({ closeTimeoutMs: 500 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(8) });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_RCV });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_SEND });
  assert.equal(ops(rig.pullAll()), [], 'the RST waits for the bytes to reach the host');
  assert.is(rig.mux.nextDeadline(), 500);
  rig.backend.budget.set(id, 8);
  rig.mux.hostWritable(id, rig.now);
  assert.equal([...rig.backend.bytesFor(id)], [...bytes(8)]);
  assert.equal(rig.backend.closed.get(id), ['closed']);
  assert.is(rig.backend.callsOf('endOfStream').length, 0, 'close, not a half-close');
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.connectionCount, 0);
});

test('full close by the guest: a host that never takes the last bytes is reset after closeTimeoutMs', () => {
  const rig = new VsockRig({ closeTimeoutMs: 500 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(8) });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_BOTH });
  rig.advance(500);
  assert.equal(rig.backend.closed.get(id), ['timeout']);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.connectionCount, 0);
});

test('full close by the guest: the close deadline counts from the host\'s last progress, so a slow reader gets every byte', () => {
  const rig = new VsockRig({ closeTimeoutMs: 500 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(8) });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_BOTH });
  // Two bytes every 400 ms: slower than closeTimeoutMs in all, never stuck for that long.
  for (let i = 0; i < 4; i++) {
    rig.advance(400);
    assert.is(rig.backend.closed.get(id), undefined, `still waiting after ${rig.now} ms`);
    rig.backend.budget.set(id, 2);
    rig.mux.hostWritable(id, rig.now);
  }
  assert.equal([...rig.backend.bytesFor(id)], [...bytes(8)]);
  assert.equal(rig.backend.closed.get(id), ['closed']);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.connectionCount, 0);
});

test('an RST from the guest after its SHUTDOWN(SEND) (Linux\'s own close timeout) still lets its bytes reach the host; nothing more goes to the guest', () => {
  const rig = new VsockRig({ closeTimeoutMs: 500 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(8) });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_BOTH });
  rig.mux.hostData(id, bytes(5));
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: G, dstPort: H });
  assert.is(rig.backend.closed.get(id), undefined, 'the host side is not reset');
  assert.equal(ops(rig.pullAll()), [], 'no data, credit update, SHUTDOWN or RST for a connection the guest reset');
  rig.backend.budget.set(id, 3);
  rig.mux.hostWritable(id, rig.now);
  rig.advance(400);
  rig.backend.budget.set(id, 5);
  rig.mux.hostWritable(id, rig.now);
  assert.equal([...rig.backend.bytesFor(id)], [...bytes(8)]);
  assert.equal(rig.backend.closed.get(id), ['closed']);
  assert.equal(ops(rig.pullAll()), []);
  assert.is(rig.mux.connectionCount, 0);
});

test('after the guest\'s RST, a host that takes nothing for closeTimeoutMs loses the rest: close(timeout), still no packet for the guest', () => {
  const rig = new VsockRig({ closeTimeoutMs: 500 });
  const id = connectFromGuest(rig);
  rig.backend.budget.set(id, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(8) });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_SEND });
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: G, dstPort: H });
  rig.advance(499);
  assert.is(rig.backend.closed.get(id), undefined);
  rig.advance(1);
  assert.equal(rig.backend.closed.get(id), ['timeout']);
  assert.equal(ops(rig.pullAll()), []);
  assert.is(rig.mux.connectionCount, 0);
});

test('full close by the host: SHUTDOWN(RCV|SEND) after the data; the guest RST ends it cleanly, or the timeout does', () => {
  const rig = new VsockRig({ closeTimeoutMs: 300 });
  const id = connectFromGuest(rig);
  rig.mux.hostData(id, bytes(9));
  rig.mux.hostClose(id, rig.now);
  const out = rig.pullAll();
  assert.equal(ops(out), ['RW', 'SHUTDOWN']);
  assert.is(out[1]?.header.flags, VIRTIO_VSOCK_SHUTDOWN_BOTH);
  // Guest data still in flight is dropped, yet keeps the credit moving.
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(4) });
  assert.is(rig.backend.bytesFor(id).length, 0);
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: G, dstPort: H });
  assert.equal(rig.backend.closed.get(id), ['closed']);
  assert.equal(ops(rig.pullAll()), [], 'an RST is never answered');
  assert.is(rig.mux.connectionCount, 0);

  const id2 = connectFromGuest(rig, { guestPort: G + 1 });
  rig.mux.hostClose(id2, rig.now);
  assert.equal(ops(rig.pullAll()), ['SHUTDOWN']);
  rig.advance(299);
  assert.equal(ops(rig.pullAll()), []);
  rig.advance(1);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.equal(rig.backend.closed.get(id2), ['timeout']);
  assert.is(rig.mux.connectionCount, 0);
});

test('full close by the host, answered by the guest with its own full SHUTDOWN: we confirm with RST', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.mux.hostClose(id, rig.now);
  assert.equal(ops(rig.pullAll()), ['SHUTDOWN']);
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: G, dstPort: H, flags: VIRTIO_VSOCK_SHUTDOWN_BOTH });
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.equal(rig.backend.closed.get(id), ['closed']);
  assert.is(rig.mux.connectionCount, 0);
});

test('RST from the guest drops the connection at once; the host side is told reset', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.mux.hostData(id, bytes(10));
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: G, dstPort: H });
  assert.equal(rig.backend.closed.get(id), ['reset']);
  assert.equal(ops(rig.pullAll()), []);
  assert.is(rig.mux.connectionCount, 0);
  // Later packets for it are answered with RST (but an RST is not).
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(1) });
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: G, dstPort: H });
  assert.equal(ops(rig.pullAll()), ['RST']);
});

test('a host-side error resets the connection: RST to the guest, close(reset) exactly once', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(10) });
  rig.mux.hostReset(id);
  rig.mux.hostReset(id);
  assert.equal(rig.backend.closed.get(id), ['reset']);
  // Guest packets while our RST waits are ignored; its own RST makes ours unnecessary.
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_REQUEST, srcPort: G, dstPort: H });
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.connectionCount, 0);
});

test('host connects to a listening guest port: REQUEST from a local port, RESPONSE gives connected', () => {
  const rig = new VsockRig();
  const r = rig.mux.hostConnect(52, rig.now);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.hostPort, 2 ** 30, 'local ports start at 1 << 30 like Firecracker');
  const request = only(rig.pullAll());
  assert.is(request.header.op, VIRTIO_VSOCK_OP_REQUEST);
  assert.is(request.header.srcPort, 2 ** 30);
  assert.is(request.header.dstPort, 52);
  assert.is(request.header.dstCid, GUEST_CID);
  rig.mux.hostData(r.connId, bytes(5));
  assert.equal(ops(rig.pullAll()), [], 'no data before the guest accepts');
  rig.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 52, dstPort: 2 ** 30, bufAlloc: 4096 });
  assert.equal(rig.backend.callsOf('connected'), [{ call: 'connected', connId: r.connId }]);
  const rw = only(rig.pullAll());
  assert.equal([...rw.payload], [...bytes(5)]);
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 52, dstPort: 2 ** 30, payload: bytes(3) });
  assert.equal([...rig.backend.bytesFor(r.connId)], [...bytes(3)]);
  // A second RESPONSE is a violation.
  rig.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 52, dstPort: 2 ** 30 });
  assert.equal(rig.backend.closed.get(r.connId), ['reset']);
});

test('host connects to a guest port nobody listens on: the guest RST gives close(refused)', () => {
  const rig = new VsockRig();
  const r = rig.mux.hostConnect(77, rig.now);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(ops(rig.pullAll()), ['REQUEST']);
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 77, dstPort: r.hostPort });
  assert.equal(rig.backend.closed.get(r.connId), ['refused']);
  assert.equal(ops(rig.pullAll()), []);
  assert.is(rig.mux.connectionCount, 0);
});

test('host connect timeouts: RST when the REQUEST went out, silence when it never did', () => {
  const rig = new VsockRig({ connectTimeoutMs: 2000 });
  const sent = rig.mux.hostConnect(77, rig.now);
  assert.equal(ops(rig.pullAll()), ['REQUEST']);
  const unsent = rig.mux.hostConnect(78, rig.now);
  assert.ok(sent.ok && unsent.ok);
  rig.advance(2000);
  if (!sent.ok || !unsent.ok) return;
  assert.equal(rig.backend.closed.get(sent.connId), ['timeout']);
  assert.equal(rig.backend.closed.get(unsent.connId), ['timeout']);
  const out = only(rig.pullAll());
  assert.is(out.header.op, VIRTIO_VSOCK_OP_RST);
  assert.is(out.header.dstPort, 77);
  assert.is(rig.mux.connectionCount, 0);
  // A RESPONSE after the timeout is for no connection: RST.
  rig.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 77, dstPort: sent.hostPort });
  assert.equal(ops(rig.pullAll()), ['RST']);
});

test('local ports: in turn from 1 << 30, skipping ports in use, wrapping below 1 << 31; explicit ports must be free', () => {
  const rig = new VsockRig();
  const a = rig.mux.hostConnect(1, 0);
  const b = rig.mux.hostConnect(1, 0);
  assert.equal([a.ok && a.hostPort, b.ok && b.hostPort], [2 ** 30, 2 ** 30 + 1]);
  assert.equal(rig.mux.hostConnect(5, 0, 2 ** 30 + 2).ok, true);
  assert.equal(rig.mux.hostConnect(5, 0, 2 ** 30 + 2), { ok: false, reason: 'port-in-use' });
  const c = rig.mux.hostConnect(5, 0);
  assert.is(c.ok && c.hostPort, 2 ** 30 + 3, 'the key (5, 2^30+2) is taken');

  // Wrap: the allocator goes from 2^31 - 1 back to 2^30, skipping the ports still in use.
  const wrap = new VsockRig();
  (wrap.mux as unknown as { lastLocalPort: number }).lastLocalPort = 2 ** 31 - 2;
  const ports = [0, 1, 2].map(() => {
    const r = wrap.mux.hostConnect(9, 0);
    return r.ok ? r.hostPort : -1;
  });
  assert.equal(ports, [2 ** 31 - 1, 2 ** 30, 2 ** 30 + 1]);
  (wrap.mux as unknown as { lastLocalPort: number }).lastLocalPort = 2 ** 31 - 1;
  const next = wrap.mux.hostConnect(9, 0);
  assert.is(next.ok && next.hostPort, 2 ** 30 + 2);
});

test('the connection bound: a REQUEST beyond maxConnections gets RST, hostConnect is refused', () => {
  const rig = new VsockRig({ maxConnections: 2 });
  connectFromGuest(rig, { guestPort: 1 });
  connectFromGuest(rig, { guestPort: 2 });
  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 3, dstPort: H });
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.stats.refusedTableFull, 1);
  assert.equal(rig.mux.hostConnect(7, 0), { ok: false, reason: 'too-many-connections' });
  assert.is(rig.mux.connectionCount, 2);
});

test('packets for no connection get one RST each (deduplicated, bounded); RST gets none', () => {
  const rig = new VsockRig({ maxPendingResets: 3 });
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2, payload: bytes(3) });
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2, payload: bytes(3) });
  rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 1, dstPort: 3 });
  rig.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 1, dstPort: 4 });
  assert.is(rig.mux.pendingResetCount, 2);
  assert.ok(rig.mux.canTakeGuestPacket());
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 1, dstPort: 5 });
  assert.not.ok(rig.mux.canTakeGuestPacket(), 'the reply queue is full: the device stops taking tx (§5.10.6.1)');
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 1, dstPort: 6 });
  assert.is(rig.mux.stats.resetsDropped, 1);
  const out = rig.pullAll();
  assert.equal(out.map((p) => [opName(p.header.op), p.header.srcPort, p.header.dstPort]), [
    ['RST', 2, 1],
    ['RST', 4, 1],
    ['RST', 5, 1],
  ]);
  assert.ok(rig.mux.canTakeGuestPacket());
});

test('malformed packets: wrong CIDs are dropped untouched; other faults reset the connection they name or get RST', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  const err = rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(4), srcCid: 9n });
  assert.is(err?.reason, 'wrong-src-cid');
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, payload: bytes(4), dstCid: 7n });
  assert.equal(ops(rig.pullAll()), []);
  assert.is(rig.backend.bytesFor(id).length, 0);
  assert.is(rig.mux.connectionInfo(id)?.state, 'established');

  assert.is(rig.send({ op: 0, srcPort: 5, dstPort: 6 })?.reason, 'unknown-op');
  assert.is(rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5, dstPort: 7, type: 2 })?.reason, 'unknown-type');
  assert.is(rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 5, dstPort: 8, type: 2 })?.reason, 'unknown-type');
  assert.equal(
    rig.pullAll().map((p) => [opName(p.header.op), p.header.srcPort]),
    [
      ['RST', 6],
      ['RST', 7],
    ],
    'an RST of unknown type is not answered',
  );

  assert.is(rig.mux.handleGuestPacket(new Uint8Array(20), new Uint8Array(0), rig.now)?.reason, 'short-header');
  assert.is(rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: G, dstPort: H, len: 100, payload: bytes(50) })?.reason, 'truncated');
  assert.equal(rig.backend.closed.get(id), ['reset']);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.mux.stats.invalidPackets.truncated, 1);
});

test('a malformed RST for a connection ends it without an RST back', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  assert.is(rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: G, dstPort: H, len: 4, payload: bytes(4) })?.reason, 'unexpected-payload');
  assert.equal(rig.backend.closed.get(id), ['reset']);
  assert.equal(ops(rig.pullAll()), []);
  assert.is(rig.mux.connectionCount, 0);
});

test('a REQUEST for a connection that exists resets it', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: G, dstPort: H });
  assert.equal(rig.backend.closed.get(id), ['reset']);
  assert.equal(ops(rig.pullAll()), ['RST']);
  assert.is(rig.backend.callsOf('onGuestConnect').length, 1);
});

test('back-pressure on the host reader: pause when hostBufferBytes wait, resume at half', () => {
  const rig = new VsockRig({ hostBufferBytes: 1000 });
  const id = connectFromGuest(rig);
  assert.is(rig.mux.hostData(id, bytes(1500, 7)), 1000);
  assert.is(rig.backend.callsOf('pauseReading').length, 1);
  assert.is(rig.mux.hostData(id, bytes(10)), 0);
  const first = rig.pull(44 + 400);
  assert.is(first?.header.len, 400);
  assert.is(rig.backend.callsOf('resumeReading').length, 0, '600 > 500 still wait');
  const second = rig.pull(44 + 100);
  assert.is(second?.header.len, 100);
  assert.is(rig.backend.callsOf('resumeReading').length, 1);
  assert.is(rig.mux.hostData(id, bytes(1500, 7).subarray(1000)), 500);
  const rest = rig.pullAll(44 + 4096);
  assert.equal([...concat([first!.payload, second!.payload, ...rest.map((p) => p.payload)])], [...bytes(1500, 7)]);
});

test('rx buffers: too small for a header gives nothing; a header-only buffer carries control packets but no data', () => {
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  rig.mux.hostData(id, bytes(10));
  assert.is(rig.pull(43), undefined);
  assert.is(rig.pull(Number.NaN), undefined);
  assert.is(rig.pull(44), undefined);
  assert.ok(rig.mux.hasPacketForGuest());
  rig.send({ op: VIRTIO_VSOCK_OP_CREDIT_REQUEST, srcPort: G, dstPort: H });
  assert.is(rig.pull(44)?.header.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  assert.is(rig.pull(45)?.header.len, 1);
});

test('the connections with something to send take turns, one packet each', () => {
  const rig = new VsockRig();
  const a = connectFromGuest(rig, { guestPort: 1 });
  const b = connectFromGuest(rig, { guestPort: 2 });
  rig.mux.hostData(a, bytes(300));
  rig.mux.hostData(b, bytes(300));
  const out = rig.pullAll(44 + 100);
  assert.equal(
    out.map((p) => p.header.dstPort),
    [1, 2, 1, 2, 1, 2],
  );
});

test('transport reset: every host side told device-reset, TRANSPORT_RESET for the event queue, nothing owed', () => {
  const rig = new VsockRig();
  const a = connectFromGuest(rig, { guestPort: 1 });
  const b = rig.mux.hostConnect(9, 0);
  rig.mux.hostData(a, bytes(5));
  rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 99 });
  rig.mux.transportReset();
  assert.equal(rig.backend.closed.get(a), ['device-reset']);
  assert.equal(b.ok && rig.backend.closed.get(b.connId), ['device-reset']);
  assert.is(rig.mux.connectionCount, 0);
  assert.not.ok(rig.mux.hasPacketForGuest());
  assert.ok(rig.mux.hasEventForGuest());
  assert.equal([...(rig.mux.takeEventForGuest() ?? [])], [0, 0, 0, 0]);
  assert.is(rig.mux.takeEventForGuest(), undefined);

  const c = connectFromGuest(rig, { guestPort: 3 });
  rig.mux.reset();
  assert.equal(rig.backend.closed.get(c), ['device-reset']);
  assert.not.ok(rig.mux.hasEventForGuest());
  const again = rig.mux.hostConnect(9, 0);
  assert.is(again.ok && again.hostPort, 2 ** 30, 'a device reset restarts the local ports');
});

test('backend contract: a re-entrant call and a bad deliver count are typed errors', async () => {
  const { VsockUsageError } = await import('../../src/devices/vsock/errors.js');
  const rig = new VsockRig();
  const id = connectFromGuest(rig);
  const original = rig.backend.close.bind(rig.backend);
  rig.backend.close = (connId, reason) => {
    original(connId, reason);
    rig.mux.hostData(connId, bytes(1));
  };
  assert.throws(() => rig.mux.hostReset(id), (e: unknown) => e instanceof VsockUsageError && e.reason === 're-entered');
  rig.backend.close = original;

  const id2 = connectFromGuest(rig, { guestPort: 5 });
  rig.backend.deliver = () => 7;
  assert.throws(
    () => rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5, dstPort: H, payload: bytes(3) }),
    (e: unknown) => e instanceof VsockUsageError && e.reason === 'bad-deliver-count',
  );
  assert.ok(id2 > 0);
  assert.throws(() => rig.mux.hostConnect(-1, 0), (e: unknown) => e instanceof VsockUsageError && e.reason === 'bad-port');
});

test.run();
