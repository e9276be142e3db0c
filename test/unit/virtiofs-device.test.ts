// The virtio-fs device (virtio 1.2 §5.11) through the virtio-mmio transport and the test guest
// driver, with a fake FUSE server that records each chain and answers when the test says:
// config space and features, the views a request arrives as, used lengths, out-of-order
// completion, the in-flight bound, malformed chains, a failing server, reset with requests in
// flight, and the DAX window's shared-memory registers; then its factory (openDevices).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { REG, STATUS } from '../../src/devices/virtio/mmio-regs.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/devices/virtio/chain.js';
import type { DeviceMetrics, SharedMemoryGrant } from '../../src/devices/virtio/device.js';
import { VirtioFs, VirtioFsError, type FuseChain, type FuseRequestHandler, type VirtioFsOptions } from '../../src/devices/virtiofs/index.js';
import { DeviceOpenError, openDevices, type FuseServerFactory } from '../../src/machine/device-factories.js';
import { DisposalStack } from '../../src/machine/disposal-stack.js';
import { ConfigError, type FsShareDescription, type VmDescription } from '../../src/machine/vm-description.js';
import { VirtioTestDriver } from '../helpers/virtio-driver.js';
import type { VirtqDriver } from '../helpers/virtq-driver.js';

const VERSION_1 = 1n << 32n;
const INDIRECT_DESC = 1n << 28n;
const EVENT_IDX = 1n << 29n;
const ALL = VERSION_1 | INDIRECT_DESC | EVENT_IDX;

/** One handle() call the fake server holds until the test answers it. */
interface Call {
  chain: FuseChain;
  queue: number;
  resolve(len: number): void;
  reject(e: unknown): void;
}

/** A FUSE server that answers nothing by itself (or throws at once when `throwNext` is set). */
class FakeServer implements FuseRequestHandler {
  readonly calls: Call[] = [];
  resets = 0;
  disposed = false;
  throwNext: Error | undefined;

  handle(chain: FuseChain, queue: number): Promise<number> {
    const thrown = this.throwNext;
    this.throwNext = undefined;
    if (thrown) throw thrown;
    return new Promise((resolve, reject) => this.calls.push({ chain, queue, resolve, reject }));
  }
  reset(): void {
    this.resets++;
  }
  metrics(): DeviceMetrics {
    return { fuseCalls: this.calls.length, requests: -1 };
  }
  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

interface Rig {
  server: FakeServer;
  device: VirtioFs;
  d: VirtioTestDriver;
  logs: string[];
  q(index: number): VirtqDriver;
}

function rig(options: Partial<VirtioFsOptions> = {}, sharedMemory: SharedMemoryGrant[] = [], init = true): Rig {
  const server = new FakeServer();
  const device = new VirtioFs(server, { tag: 'share', ...options });
  const logs: string[] = [];
  const d = new VirtioTestDriver(device, GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x800000 }]), { sharedMemory, log: (l) => logs.push(l) });
  if (init) d.init(ALL, { size: 16, bufferSpace: 0x10000 });
  return {
    server,
    device,
    d,
    logs,
    q: (index) => {
      const q = d.queues[index];
      if (!q) throw new Error(`no queue ${index}`);
      return q;
    },
  };
}

const turn = (): Promise<void> => new Promise((res) => setImmediate(res));
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed + i * 7) & 0xff);
const concat = (views: readonly Uint8Array[]): number[] => views.flatMap((v) => Array.from(v));

/** Posts a request of `readable` arrays and writable buffers of `writable` lengths on queue `index`, and kicks. */
function send(r: Rig, index: number, readable: Uint8Array[], writable: number[], indirect = false): number {
  const head = r.q(index).post(readable, writable, { indirect });
  r.d.kick(index);
  return head;
}

// Unhandled rejections are recorded while this file runs (and only then: the listener would
// otherwise keep Node from failing on another file's).
let unhandled: unknown[] = [];
const recordUnhandled = (e: unknown): void => void unhandled.push(e);
test.before(() => void process.on('unhandledRejection', recordUnhandled));
test.after(() => void process.off('unhandledRejection', recordUnhandled));
test.before.each(() => {
  unhandled = [];
});

test('config space: the tag NUL-padded to 36 bytes, then le32 num_request_queues; device id 26; hiprio plus N request queues of 1024', () => {
  const { d } = rig({ tag: 'données', numRequestQueues: 3 }, [], false);
  assert.is(d.read(REG.deviceId), 26);
  const config = d.configBytes(0, 40);
  const tag = Buffer.from('données', 'utf8');
  assert.equal(Array.from(config.subarray(0, tag.byteLength)), Array.from(tag), 'the tag as UTF-8');
  assert.ok(config.subarray(tag.byteLength, 36).every((b) => b === 0), 'NUL padded to 36 bytes');
  assert.is(new DataView(config.buffer).getUint32(36, true), 3);
  const sizes = [0, 1, 2, 3, 4].map((i) => {
    d.write(REG.queueSel, i);
    return d.read(REG.queueNumMax);
  });
  assert.equal(sizes, [1024, 1024, 1024, 1024, 0], 'hiprio and three request queues; no fifth queue');
  const full = rig({ tag: 'x'.repeat(36) }, [], false).d.configBytes(0, 40);
  assert.is(Buffer.from(full.subarray(0, 36)).toString(), 'x'.repeat(36), 'a 36-byte tag fills the field, with no NUL');
  assert.is(new DataView(full.buffer).getUint32(36, true), 1, 'one request queue by default');
});

test('features: no device bits; the transport offers VERSION_1, INDIRECT_DESC and EVENT_IDX, and they negotiate', () => {
  const { d, device } = rig({}, [], false);
  assert.is(device.features, 0n);
  assert.is(d.deviceFeatures(), ALL);
  assert.is(d.init(ALL), ALL);
  assert.ok(d.read(REG.status) & STATUS.DRIVER_OK);
});

test('bad options are VirtioFsErrors naming the value', () => {
  const bad: [Partial<VirtioFsOptions>, RegExp][] = [
    [{ tag: '' }, /0 bytes/],
    [{ tag: 'é'.repeat(19) }, /38 bytes/],
    [{ tag: 'a\0b' }, /NUL/],
    [{ tag: 'a\nb' }, /newline/],
    [{ numRequestQueues: 0 }, /0 request queues/],
    [{ numRequestQueues: 9 }, /9 request queues/],
    [{ daxWindowMiB: 3 }, /3 MiB/],
    [{ daxWindowMiB: -2 }, /-2 MiB/],
    [{ daxWindowMiB: 64 * 1024 + 2 }, /65538 MiB/],
    [{ maxInFlightPerQueue: 0 }, /maxInFlightPerQueue 0/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => new VirtioFs(new FakeServer(), { tag: 'ok', ...options }), (e: unknown) => e instanceof VirtioFsError && message.test(e.message), JSON.stringify(options));
  }
});

for (const indirect of [false, true]) {
  test(`a request's readable and writable views arrive intact and in order across descriptors${indirect ? ' (indirect table)' : ''}; the resolved length is the used length`, async () => {
    const r = rig();
    const parts = [bytes(40, 1), bytes(3, 2), bytes(129, 3)];
    const head = send(r, 1, parts, [16, 80, 7], indirect);
    assert.is(r.server.calls.length, 1);
    const call = r.server.calls[0] as Call;
    assert.is(call.queue, 1);
    assert.equal(call.chain.request.map((v) => v.byteLength), [40, 3, 129]);
    assert.equal(concat(call.chain.request), concat(parts));
    assert.equal(call.chain.reply.map((v) => v.byteLength), [16, 80, 7]);
    // The server writes its reply straight into the views: it lands in the guest's buffers.
    const reply = bytes(100, 9);
    let at = 0;
    for (const v of call.chain.reply) {
      const n = Math.min(v.byteLength, reply.byteLength - at);
      v.set(reply.subarray(at, at + n));
      at += n;
    }
    call.resolve(100);
    await turns(2);
    assert.equal(Array.from(r.q(1).readWritten(head, 100)), Array.from(reply));
    assert.equal(r.q(1).collectUsed(), [{ head, len: 100 }]);
    assert.ok(r.d.interrupts >= 1);
    const m = r.device.metrics();
    assert.equal([m.requests, m.queue1Requests, m.completed, m.inFlight], [1, 1, 1, 0]);
    assert.equal(unhandled, []);
  });
}

test('hiprio is queue 0 and each request queue its own index; a request with no reply buffers gets an empty reply list', async () => {
  const r = rig({ numRequestQueues: 2 });
  const forget = send(r, 0, [bytes(48, 1)], []);
  const other = send(r, 2, [bytes(40, 2)], [16]);
  assert.equal(r.server.calls.map((c) => [c.queue, c.chain.reply.length]), [[0, 0], [2, 1]]);
  for (const c of r.server.calls) c.resolve(0);
  await turns(2);
  assert.equal(r.q(0).collectUsed(), [{ head: forget, len: 0 }]);
  assert.equal(r.q(2).collectUsed(), [{ head: other, len: 0 }]);
  const m = r.device.metrics();
  assert.equal([m.hiprioRequests, m.queue1Requests, m.queue2Requests, m.requests], [1, 0, 1, 2]);
});

test('requests complete out of order, each with its own used length', async () => {
  const r = rig();
  const heads = [0, 1, 2].map((i) => send(r, 1, [bytes(40, i)], [64]));
  const [a, b, c] = r.server.calls as [Call, Call, Call];
  c.resolve(30);
  await turns(2);
  a.resolve(10);
  b.resolve(20);
  await turns(2);
  assert.equal(r.q(1).collectUsed(), [
    { head: heads[2], len: 30 },
    { head: heads[0], len: 10 },
    { head: heads[1], len: 20 },
  ]);
});

test('the in-flight bound: at most maxInFlightPerQueue requests at the server per queue; completions let the rest in', async () => {
  const r = rig({ maxInFlightPerQueue: 2, numRequestQueues: 2 });
  const heads = [0, 1, 2, 3, 4].map((i) => send(r, 1, [bytes(40, i)], [8]));
  assert.is(r.server.calls.length, 2, 'two at the server, three left in the ring');
  assert.is(r.device.metrics().inFlight, 2);
  send(r, 2, [bytes(40, 9)], [8]);
  assert.is(r.server.calls.length, 3, 'the bound is per queue');
  (r.server.calls[0] as Call).resolve(1);
  await turns(2);
  assert.is(r.server.calls.length, 4, 'one completion, one more request');
  for (let i = 1; i < 6; i++) {
    const call = r.server.calls[i] as Call;
    if (call.queue === 1) call.resolve(1);
    await turns(2);
  }
  for (let i = 0; i < r.server.calls.length; i++) (r.server.calls[i] as Call).resolve(1);
  await turns(2);
  assert.is(r.server.calls.length, 6);
  assert.equal(r.q(1).collectUsed().map((u) => u.head).sort(), [...heads].sort());
  assert.is(r.device.metrics().inFlight, 0);
  // Below the bound again, a new request reaches the server at once.
  send(r, 1, [bytes(40, 5)], [8]);
  assert.is(r.server.calls.length, 7);
});

test('a chain with a writable descriptor before a readable one is malformed (§2.7.4.2): used length 0, counted, the server never sees it', async () => {
  const r = rig();
  const q = r.q(1);
  const head = q.post([bytes(40, 1)], [64], { publish: false });
  const next = r.d.memory.readU16(q.desc + 16 * head + 14);
  const readable = q.buffersOf(head)?.readable[0];
  const writable = q.buffersOf(head)?.writable[0];
  if (!readable || !writable) throw new Error('posted chain not found');
  q.writeDesc(head, { addr: writable.addr, len: writable.len, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next });
  q.writeDesc(next, { addr: readable.addr, len: readable.len, flags: 0, next: 0 });
  q.publish();
  r.d.kick(1);
  const good = send(r, 1, [bytes(40, 2)], [8]);
  assert.is(r.server.calls.length, 1, 'only the well-formed request reaches the server');
  (r.server.calls[0] as Call).resolve(8);
  await turns(2);
  assert.equal(q.collectUsed(), [{ head, len: 0 }, { head: good, len: 8 }]);
  const m = r.device.metrics();
  assert.equal([m.malformedChains, m.requests, m.completed, m.handlerFailures], [1, 2, 1, 0]);
  assert.is(r.d.read(REG.status) & STATUS.NEEDS_RESET, 0, 'a malformed chain is not a broken queue');
});

test('a server that rejects, throws, or claims more bytes than the reply holds: used length 0, logged and counted, no unhandled rejection', async () => {
  const r = rig();
  const rejected = send(r, 1, [bytes(40, 1)], [16]);
  r.server.throwNext = new Error('thrown at once');
  const thrown = send(r, 1, [bytes(40, 2)], [16]);
  const overlong = send(r, 1, [bytes(40, 3)], [16]);
  const [a, b] = r.server.calls as [Call, Call];
  a.reject(new Error('server bug'));
  b.resolve(17);
  await turns(3);
  assert.equal(r.q(1).collectUsed().sort((x, y) => x.head - y.head), [
    { head: rejected, len: 0 },
    { head: thrown, len: 0 },
    { head: overlong, len: 0 },
  ].sort((x, y) => x.head - y.head));
  assert.is(r.device.metrics().handlerFailures, 3);
  assert.is(r.logs.length, 3);
  assert.match(r.logs.join('\n'), /server bug/);
  assert.match(r.logs.join('\n'), /thrown at once/);
  assert.match(r.logs.join('\n'), /used length 17 for a chain with 16 writable bytes/);
  assert.equal(unhandled, []);
  assert.is(r.d.read(REG.status) & STATUS.NEEDS_RESET, 0);
});

test('reset with requests in flight: the server is reset, late completions touch no ring and raise no interrupt, quiesce waits for them', async () => {
  const r = rig();
  const q = r.q(1);
  send(r, 1, [bytes(40, 1)], [16]);
  send(r, 1, [bytes(40, 2)], [16]);
  const [a, b] = r.server.calls as [Call, Call];
  r.d.write(REG.status, 0);
  assert.is(r.server.resets, 1);
  let quiet = false;
  void r.device.quiesce().then(() => (quiet = true));
  a.resolve(16);
  await turns(3);
  assert.not.ok(quiet, 'one request still at the server');
  const interrupts = r.d.interrupts;
  b.reject(new Error('aborted by the reset'));
  await turns(3);
  assert.ok(quiet, 'quiesce resolves once every request started before the reset has settled');
  assert.is(q.usedIdx, 0, 'no used entry');
  assert.is(r.d.interrupts, interrupts, 'no interrupt');
  const m = r.device.metrics();
  assert.equal([m.dropped, m.completed, m.inFlight], [2, 0, 0]);
  // The next activation starts afresh.
  r.d.queues.length = 0;
  r.d.init(ALL, { size: 16, bufferSpace: 0x10000 });
  const head = send(r, 1, [bytes(40, 3)], [16]);
  (r.server.calls[2] as Call).resolve(4);
  await turns(2);
  assert.equal(r.q(1).collectUsed(), [{ head, len: 4 }]);
  assert.is(r.server.resets, 1, 'DRIVER_OK resets nothing');
});

test('dispose waits for the requests in flight, then disposes of the server; nothing is opened or left open', async () => {
  const fds = readdirSync('/proc/self/fd').length;
  const r = rig();
  send(r, 1, [bytes(40, 1)], [16]);
  let disposed = false;
  const done = r.device.dispose().then(() => (disposed = true));
  await turns(2);
  assert.not.ok(disposed);
  assert.not.ok(r.server.disposed, 'the server is not disposed under a request');
  (r.server.calls[0] as Call).resolve(0);
  await done;
  assert.ok(r.server.disposed);
  assert.is(r.server.resets, 1);
  assert.is(readdirSync('/proc/self/fd').length, fds);
});

test('metrics: the server\'s merged in, the device\'s own keys winning; interrupts counted', async () => {
  const r = rig();
  send(r, 1, [bytes(40, 1)], [16]);
  (r.server.calls[0] as Call).resolve(0);
  await turns(2);
  const m = r.device.metrics();
  assert.is(m.fuseCalls, 1);
  assert.is(m.requests, 1, 'the device\'s requests, not the server\'s key of the same name');
  assert.is(m.interrupts, r.d.interrupts);
  assert.ok((m.interrupts as number) >= 1);
});

const SHM = (reg: 'base' | 'len', d: VirtioTestDriver): bigint => {
  const [lo, hi] = reg === 'base' ? [REG.shmBaseLow, REG.shmBaseHigh] : [REG.shmLenLow, REG.shmLenHigh];
  return (BigInt(d.read(hi)) << 32n) | BigInt(d.read(lo));
};

test('a DAX window: shared-memory region 0 of that size, 2 MiB aligned; SHMLen/SHMBase read the granted region', () => {
  const server = new FakeServer();
  const device = new VirtioFs(server, { tag: 'dax', daxWindowMiB: 6 });
  assert.equal(device.sharedMemory, [{ id: 0, length: 6n << 20n, align: 2n << 20n }]);
  const grant = { id: 0, guestPhysAddr: 0x1_4000_0000n, length: 6n << 20n };
  const d = new VirtioTestDriver(device, GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x100000 }]), { sharedMemory: [grant] });
  d.write(REG.shmSel, 0);
  assert.is(SHM('base', d), 0x1_4000_0000n);
  assert.is(SHM('len', d), 6n << 20n);
  d.write(REG.shmSel, 1);
  assert.is(SHM('len', d), 0xffff_ffff_ffff_ffffn, 'no region 1');
  assert.equal(device.daxWindow, grant);
});

test('no DAX window: no shared-memory region; SHMLen reads all ones, as Linux needs to treat the window as absent', () => {
  const { d, device } = rig({ daxWindowMiB: 0 }, [], false);
  assert.equal(device.sharedMemory, []);
  assert.is(device.daxWindow, undefined);
  d.write(REG.shmSel, 0);
  assert.is(SHM('len', d), 0xffff_ffff_ffff_ffffn);
  assert.is(SHM('base', d), 0n);
});

test('DRIVER_OK without the first request queue ready: NEEDS_RESET, and no request is taken', () => {
  const server = new FakeServer();
  const device = new VirtioFs(server, { tag: 't' });
  const d = new VirtioTestDriver(device, GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x100000 }]));
  d.write(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  d.write(REG.driverFeaturesSel, 1);
  d.write(REG.driverFeatures, 1);
  d.write(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
  d.write(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  assert.ok(d.read(REG.status) & STATUS.NEEDS_RESET);
  device.notify(1);
  assert.is(server.calls.length, 0);
});

// --- the factory ---------------------------------------------------------------------------------

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

const share = (fsId: string, tag: string, extra: Partial<FsShareDescription> = {}): FsShareDescription => ({ fsId, sharedDir: '/srv', tag, readOnly: false, daxWindowMiB: 0, ...extra });
const withShares = (fsShares: FsShareDescription[]): VmDescription => ({
  machine: { vcpuCount: 1, memSizeMiB: 64 },
  bootSource: { kernelImagePath: 'k', bootArgs: '' },
  drives: [],
  fsShares,
  networkInterfaces: [],
});

test('openDevices with the default server: the passthrough server over the share; a DAX window is refused until it exists; no fd left after dispose', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-fs-factory-'));
  try {
    // The first share opens /proc/self/fd, which the confined fs calls keep for the process's life.
    const warm = new DisposalStack();
    await openDevices(withShares([share('share0', 'a', { sharedDir: dir })]), warm);
    await warm.dispose();
    const fds = readdirSync('/proc/self/fd').length;
    const stack = new DisposalStack();
    const opened = await openDevices(withShares([share('share0', 'a', { sharedDir: dir })]), stack);
    assert.equal(opened.map((o) => [o.id, o.kind]), [['share0', 'virtio-fs']]);
    assert.ok(opened[0]?.device instanceof VirtioFs);
    await stack.dispose();
    assert.is(readdirSync('/proc/self/fd').length, fds, 'the server closed its share root');
    const dax = new DisposalStack();
    const e = await rejection(openDevices(withShares([share('share0', 'a', { sharedDir: dir, daxWindowMiB: 2 })]), dax));
    assert.ok(e instanceof DeviceOpenError && e.cause instanceof ConfigError && /share0: a DAX window \(dax=2\) is not part of this build yet/.test(e.message), String(e));
    assert.is(dax.size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openDevices with a FUSE server: one virtio-fs device per share, in order, each disposing of its server with the VM', async () => {
  const servers: [FsShareDescription, FakeServer][] = [];
  const fuseServer: FuseServerFactory = async (s) => {
    const server = new FakeServer();
    servers.push([s, server]);
    return server;
  };
  const stack = new DisposalStack();
  const shares = [share('share0', 'a'), share('share1', 'b', { daxWindowMiB: 4, readOnly: true })];
  const opened = await openDevices(withShares(shares), stack, { fuseServer });
  assert.equal(opened.map((o) => [o.id, o.kind, o.device.deviceId]), [['share0', 'virtio-fs', 26], ['share1', 'virtio-fs', 26]]);
  assert.equal(servers.map(([s]) => s), shares, 'the server gets the whole share (directory, read-only)');
  assert.equal(opened[1]?.device.sharedMemory, [{ id: 0, length: 4n << 20n, align: 2n << 20n }]);
  assert.is((opened[0]?.device as VirtioFs).tag, 'a');
  await stack.dispose();
  assert.ok(servers.every(([, s]) => s.disposed));
});

test('openDevices: a server that fails to start, or a share the device refuses, is a DeviceOpenError; what was opened is released', async () => {
  const started: FakeServer[] = [];
  const fuseServer: FuseServerFactory = async (s) => {
    if (s.fsId === 'broken') throw new Error('cannot open /srv: ENOENT');
    const server = new FakeServer();
    started.push(server);
    return server;
  };
  for (const [bad, message] of [
    [share('broken', 'b'), /virtio-fs broken: cannot open \/srv: ENOENT/],
    [share('badtag', 'x'.repeat(37)), /virtio-fs badtag: virtio-fs: tag .* 37 bytes/],
  ] as const) {
    started.length = 0;
    const stack = new DisposalStack();
    const e = await rejection(openDevices(withShares([share('ok', 'a'), bad]), stack, { fuseServer }));
    assert.ok(e instanceof DeviceOpenError && message.test(e.message), String(e));
    assert.ok(started.every((s, i) => s.disposed === (i > 0)), 'a server whose device could not be built is disposed at once');
    assert.is(stack.size, 1, 'the share opened before stays on the stack');
    await stack.dispose();
    assert.ok(started.every((s) => s.disposed));
  }
});

test.run();
