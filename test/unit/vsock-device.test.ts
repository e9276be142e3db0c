// virtio-vsock end to end without a VM: the device (device.ts) with the hybrid Unix-socket
// backend (hybrid-backend.ts) on real sockets, driven by the test guest's vsock driver through
// the virtio-mmio transport. The host side speaks Firecracker's protocol (docs/vsock.md).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioVsock } from '../../src/devices/vsock/device.js';
import { HybridVsockBackend, VsockBackendError } from '../../src/devices/vsock/hybrid-backend.js';
import {
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_BOTH,
  VSOCK_HOST_CID,
  encodeHeader,
} from '../../src/devices/vsock/packet.js';
import { VsockTestGuest, type ReceivedPacket, type TxLayout } from '../helpers/vsock-guest.js';

const CID = 3n;
const dir = mkdtempSync(join(tmpdir(), 'tsvmm-vsock-'));
let n = 0;

async function rig(): Promise<{ uds: string; device: VirtioVsock; backend: HybridVsockBackend; guest: VsockTestGuest }> {
  const uds = join(dir, `v${n++}.sock`);
  const backend = await HybridVsockBackend.listen(uds);
  const device = new VirtioVsock(CID, backend);
  const guest = new VsockTestGuest(device, CID);
  return { uds, device, backend, guest };
}

/** Polls `f` (with the guest's rx processed first) until it returns something, for up to 3 s. */
async function until<T>(what: string, guest: VsockTestGuest, f: () => T | undefined): Promise<T> {
  for (let i = 0; i < 300; i++) {
    guest.poll();
    const v = f();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function takeOp(guest: VsockTestGuest, op: number): ReceivedPacket | undefined {
  const i = guest.received.findIndex((p) => p.header.op === op);
  return i < 0 ? undefined : guest.received.splice(i, 1)[0];
}

/** A host program on the Unix socket; `gone()`: the VMM closed its side (EOF or close). */
function hostConnect(uds: string): { socket: Socket; data: () => string; ended: () => boolean; closed: () => boolean; gone: () => boolean } {
  const socket = connect({ path: uds, allowHalfOpen: true });
  let text = '';
  let ended = false;
  let closed = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('end', () => (ended = true));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  return { socket, data: () => text, ended: () => ended, closed: () => closed, gone: () => ended || closed };
}

/** CONNECT <port> from a host program, answered by the guest: returns the host side and the host port. */
async function established(uds: string, guest: VsockTestGuest, port: number): Promise<{ host: ReturnType<typeof hostConnect>; hostPort: number; request: ReceivedPacket }> {
  const host = hostConnect(uds);
  host.socket.write(`CONNECT ${port}\n`);
  const request = await until('REQUEST', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_REQUEST));
  guest.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: port, dstPort: request.header.srcPort });
  await until('OK', guest, () => host.data().startsWith('OK '));
  return { host, hostPort: request.header.srcPort, request };
}

test('host-initiated: CONNECT <port>, the guest accepts, OK <host port>, bytes both ways, clean close', async () => {
  const { uds, device, guest } = await rig();
  assert.is(statSync(uds).mode & 0o777, 0o600, 'the listening socket is 0600');
  const host = hostConnect(uds);
  host.socket.write('CONNECT 5000\nearly bytes');
  const req = await until('REQUEST', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_REQUEST));
  assert.is(req.header.dstPort, 5000);
  assert.is(req.header.dstCid, CID);
  assert.is(req.header.srcCid, VSOCK_HOST_CID);
  const hostPort = req.header.srcPort;
  assert.ok(hostPort >= 2 ** 30, 'host-side ports come from 2^30 up, as Firecracker');
  guest.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 5000, dstPort: hostPort });
  await until('OK line', guest, () => host.data().startsWith(`OK ${hostPort}\n`));
  const rw = await until('early bytes', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_RW));
  assert.is(Buffer.from(rw.payload).toString(), 'early bytes', 'bytes sent before OK reach the guest after it');
  for (const layout of ['header+payload', 'one-descriptor', 'split'] as TxLayout[]) {
    guest.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: hostPort }, Buffer.from(`[${layout}:${'x'.repeat(2500)}]`), layout);
  }
  await until('guest bytes at the host', guest, () => host.data().includes('[split:'));
  assert.match(host.data(), /\[header\+payload:x{2500}\]\[one-descriptor:x{2500}\]\[split:x{2500}\]$/, 'every descriptor layout arrives whole and in order');
  guest.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 5000, dstPort: hostPort, flags: VIRTIO_VSOCK_SHUTDOWN_BOTH });
  await until('EOF at the host', guest, () => host.ended());
  host.socket.end();
  await until('host socket closed', guest, () => host.closed());
  await until('connection table empty', guest, () => device.muxer.connectionCount === 0);
  await device.dispose();
});

test('a guest that answers the REQUEST at once, while the device is still serving its queues, still gets its host its OK', async () => {
  const { uds, device, guest } = await rig();
  // As a vCPU does: the guest handles the interrupt and answers before the device's call returns.
  guest.driver.onInterrupt = () => {
    guest.poll();
    for (const p of guest.received.splice(0)) {
      if (p.header.op === VIRTIO_VSOCK_OP_REQUEST) guest.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: p.header.dstPort, dstPort: p.header.srcPort });
    }
  };
  const host = hostConnect(uds);
  host.socket.write('CONNECT 5100\n');
  await until('OK line', guest, () => host.data().startsWith('OK '));
  guest.driver.onInterrupt = undefined;
  host.socket.destroy();
  await device.dispose();
});

test('a CONNECT to a port nobody listens on in the guest: RST, and the host connection closes without OK', async () => {
  const { uds, device, guest } = await rig();
  const host = hostConnect(uds);
  host.socket.write('CONNECT 6000\n');
  const req = await until('REQUEST', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_REQUEST));
  guest.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 6000, dstPort: req.header.srcPort });
  await until('host connection ended', guest, () => host.gone());
  assert.is(host.data(), '');
  await device.dispose();
});

test('bad handshakes close only their own connection', async () => {
  const { uds, device, backend, guest } = await rig();
  const good = hostConnect(uds);
  good.socket.write('CONNECT 7000\n');
  const req = await until('REQUEST', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_REQUEST));
  const bad = ['CONNECT x\n', 'HELLO 1\n', `CONNECT ${'9'.repeat(40)}\n`, 'CONNECT 4294967296\n', 'C'.repeat(100)].map((line) => {
    const h = hostConnect(uds);
    h.socket.write(line);
    return h;
  });
  for (const h of bad) await until('bad handshake closed', guest, () => h.gone());
  assert.is(backend.counters.badHandshakes, bad.length);
  guest.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 7000, dstPort: req.header.srcPort });
  await until('the good one still gets OK', guest, () => good.data().startsWith('OK '));
  good.socket.destroy();
  await device.dispose();
});

test('guest-initiated: a connection to host port P goes to <uds>_P; nothing listening there is an RST', async () => {
  const { uds, device, guest } = await rig();
  const got: string[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d: Buffer) => got.push(d.toString()));
    s.on('end', () => s.end('bye'));
  });
  await new Promise<void>((r) => server.listen(`${uds}_1234`, r));
  guest.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 40000, dstPort: 1234 });
  const resp = await until('RESPONSE', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_RESPONSE));
  assert.is(resp.header.dstPort, 40000);
  guest.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 40000, dstPort: 1234 }, Buffer.from('hi host'));
  await until('bytes at the listener', guest, () => got.join('') === 'hi host');
  guest.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 40000, dstPort: 1234, flags: 2 });
  const bye = await until('the listener\'s answer', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_RW));
  assert.is(Buffer.from(bye.payload).toString(), 'bye');
  guest.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 40001, dstPort: 999 });
  const rst = await until('RST for a port with no listener', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_RST));
  assert.is(rst.header.dstPort, 40001);
  await new Promise<void>((r) => server.close(() => r()));
  await device.dispose();
});

test('the uds_path: a stale socket is replaced, anything else there is refused, and it is removed on dispose', async () => {
  const uds = join(dir, 'stale.sock');
  const first = await HybridVsockBackend.listen(uds);
  // Left behind as by a VMM that was killed: the file stays, nobody listens.
  const stale = createServer();
  await first.dispose();
  await new Promise<void>((r) => stale.listen(uds, r));
  await new Promise<void>((r) => stale.close(() => r()));
  writeFileSync(join(dir, 'plain'), 'x');
  const again = await HybridVsockBackend.listen(uds);
  await again.dispose();
  assert.not.ok(readdirSync(dir).includes('stale.sock'), 'removed on dispose');
  try {
    await HybridVsockBackend.listen(join(dir, 'plain'));
    assert.unreachable('a regular file at uds_path is not replaced');
  } catch (e) {
    assert.ok(e instanceof VsockBackendError && /exists and is not a socket/.test(e.message), String(e));
  }
});

test('no fd left behind after connections and dispose', async () => {
  const before = readdirSync('/proc/self/fd').length;
  for (let round = 0; round < 3; round++) {
    const { uds, device, guest } = await rig();
    const hosts = Array.from({ length: 5 }, (_, i) => {
      const h = hostConnect(uds);
      h.socket.write(`CONNECT ${8000 + i}\n`);
      return h;
    });
    for (let i = 0; i < 5; i++) {
      const req = await until('REQUEST', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_REQUEST));
      guest.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: req.header.dstPort, dstPort: req.header.srcPort });
    }
    for (const h of hosts) await until('OK', guest, () => h.data().startsWith('OK '));
    await device.dispose();
    for (const h of hosts) {
      await until('ended by dispose', guest, () => h.gone());
      h.socket.destroy();
    }
  }
  assert.is(readdirSync('/proc/self/fd').length, before);
});

test('garbage from the guest is dropped or answered with RST, counted, and a good connection goes on', async () => {
  const { uds, device, guest } = await rig();
  const { host, hostPort } = await established(uds, guest, 9000);
  const header = (over: Partial<Parameters<typeof encodeHeader>[0]>): Uint8Array =>
    encodeHeader({ srcCid: CID, dstCid: VSOCK_HOST_CID, srcPort: 1, dstPort: 2, len: 0, type: 1, op: VIRTIO_VSOCK_OP_RW, flags: 0, bufAlloc: 0, fwdCnt: 0, ...over });
  guest.sendRaw(new Uint8Array(20), new Uint8Array(0)); // a short header
  guest.sendRaw(header({ len: 5000 }), new Uint8Array(100)); // claims more than its buffer
  guest.sendRaw(header({ len: 70_000 }), new Uint8Array(70_000), 'one-descriptor'); // over the 64 KiB maximum
  guest.sendRaw(header({ op: 42 }), new Uint8Array(0)); // unknown op
  guest.sendRaw(header({ type: 9 }), new Uint8Array(0)); // unknown type
  guest.sendRaw(header({ srcCid: 77n }), new Uint8Array(0)); // not the guest's CID
  guest.sendRaw(header({ dstCid: 5n }), new Uint8Array(0)); // not to the host
  guest.sendRaw(header({ srcPort: 31337, dstPort: 4242, len: 3 }), Uint8Array.of(1, 2, 3)); // no such connection
  const m = device.metrics();
  assert.is(m.invalidPackets, 7, JSON.stringify(m));
  const rst = await until('RST for the unknown connection', guest, () => guest.received.find((p) => p.header.op === VIRTIO_VSOCK_OP_RST && p.header.dstPort === 31337));
  assert.is(rst.header.srcPort, 4242);
  guest.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 9000, dstPort: hostPort }, Buffer.from('still here'));
  await until('the good connection still carries bytes', guest, () => host.data().endsWith('still here'));
  host.socket.destroy();
  await device.dispose();
});

test('a host reader that stops: the guest is held back by credit, the VMM holds a bounded amount, and everything arrives once it reads again', async () => {
  const { uds, device, guest } = await rig();
  const { host, hostPort, request: req } = await established(uds, guest, 9100);
  host.socket.pause();
  // The guest sends 4 KiB packets of a counting pattern as far as the host's credit lets it.
  const total = 2 * 1024 * 1024;
  const pattern = Buffer.from(Uint8Array.from({ length: total }, (_, i) => i % 251));
  let sent = 0;
  let peerBufAlloc = req.header.bufAlloc;
  let peerFwdCnt = req.header.fwdCnt;
  const absorb = (): void => {
    for (const p of guest.take()) {
      peerBufAlloc = p.header.bufAlloc;
      peerFwdCnt = p.header.fwdCnt;
    }
  };
  const chunk = (offset: number, n: number): Uint8Array => pattern.subarray(offset, offset + n);
  const pushAllowed = (): number => {
    absorb();
    let pushed = 0;
    for (;;) {
      const credit = peerBufAlloc - ((sent - peerFwdCnt) >>> 0);
      const n = Math.min(4096, credit, total - sent);
      if (n <= 0) return pushed;
      guest.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 9100, dstPort: hostPort, fwdCnt: 0 }, chunk(sent, n));
      sent += n;
      pushed += n;
      absorb();
    }
  };
  for (let i = 0; i < 50; i++) {
    pushAllowed();
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(sent < total, `the guest was held back (${sent} of ${total} bytes sent)`);
  assert.ok((device.muxer.connections()[0]?.accounting.toHostBytes ?? 0) <= 256 * 1024, 'the VMM holds at most buf_alloc for the host');
  // Read again: the rest flows, in order.
  let got = Buffer.alloc(0);
  host.socket.removeAllListeners('data');
  host.socket.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  host.socket.resume();
  for (let i = 0; i < 2000 && got.length < total; i++) {
    pushAllowed();
    await new Promise((r) => setTimeout(r, 2));
  }
  // The OK line arrived before the reader stopped (host.data() has it): `got` is the stream alone.
  const body = got;
  assert.is(sent, total);
  assert.is(body.length, total);
  assert.ok(body.equals(pattern), 'every byte in order');
  host.socket.destroy();
  await device.dispose();
});

test('host bytes still waiting in the backend when the host ends its stream reach the guest before the end', async () => {
  const { uds, device, guest } = await rig();
  // A guest with a 4 KiB receive buffer: tsvmm may send it little at a time and holds the rest.
  const host = hostConnect(uds);
  host.socket.write('CONNECT 9200\n');
  const request = await until('REQUEST', guest, () => takeOp(guest, VIRTIO_VSOCK_OP_REQUEST));
  const hostPort = request.header.srcPort;
  guest.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 9200, dstPort: hostPort, bufAlloc: 4096 });
  await until('OK', guest, () => host.data().startsWith('OK '));
  // One read's worth (64 KiB) fills what the muxer holds for the guest; the rest waits in the
  // backend.
  const total = 65536 + 10_000;
  const pattern = Buffer.from(Uint8Array.from({ length: total }, (_, i) => (i * 7) % 253));
  // The EOF comes in a later read than the bytes, while tsvmm still holds some of them.
  host.socket.write(pattern);
  await new Promise((r) => setTimeout(r, 100));
  host.socket.end();
  await new Promise((r) => setTimeout(r, 100));
  const got: Buffer[] = [];
  let received = 0;
  let shutdownAt = -1;
  await until('the whole stream, then SHUTDOWN', guest, () => {
    for (const p of guest.received.splice(0)) {
      if (p.header.op === VIRTIO_VSOCK_OP_RW) {
        got.push(Buffer.from(p.payload));
        received += p.payload.length;
      } else if (p.header.op === VIRTIO_VSOCK_OP_SHUTDOWN && shutdownAt < 0) shutdownAt = received;
    }
    // The guest consumed it all: tell the host (fwd_cnt) so that it may send more.
    guest.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 9200, dstPort: hostPort, fwdCnt: received, bufAlloc: 4096 });
    return shutdownAt >= 0;
  });
  assert.is(shutdownAt, total, 'SHUTDOWN came after every byte');
  assert.ok(Buffer.concat(got).equals(pattern), 'every byte in order');
  host.socket.destroy();
  await device.dispose();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
