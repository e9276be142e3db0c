import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostMapping } from '../../src/vmm/mapping.js';
import { directIoAlignment } from '../../src/vmm/file-io.js';
import { ioRingUnsupported } from '../../src/vmm/io-ring.js';
import { spawnSync } from 'node:child_process';
import { mountExt4Loop, supportsODirect, type Ext4Loop } from '../helpers/ext4-loop.js';
import { testUnless } from '../helpers/skip.js';
import { VIRTQ_DESC_F_INDIRECT } from '../../src/devices/virtio/chain.js';
import type { GuestBuffer } from '../helpers/virtq-driver.js';
import { GatedBackend, SECTOR, header, openFds, post, rig, sleep, statusOf, used, type Posted, type Rig } from '../helpers/blk-rig.js';
import {
  BlockBackendError,
  CONFIG_OFFSETS,
  DIRECT_ALIGN,
  FileBackend,
  defaultIoEngine,
  READ_NOW_MAX,
  SEG_MAX,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VirtioBlock,
  VirtioBlockError,
  defaultSerial,
  serialBytes,
  type BlockBackend,
  type IoEngine,
} from '../../src/devices/virtio/block/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tsvmm-blk-'));
let fileNo = 0;

/** A temp image of `sectors` sectors with a recognisable pattern (byte i = (i * 7 + i >> 9) & 255). */
function image(sectors: number, extra = 0): { path: string; data: Uint8Array } {
  const data = new Uint8Array(sectors * SECTOR + extra);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  const path = join(dir, `disk${fileNo++}.img`);
  writeFileSync(path, data);
  return { path, data };
}

function fileBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

/** Registers a test for each I/O engine of FileBackend ('[io_uring] name', '[threads] name'); where
 * io_uring is not available its test is registered as skipped, with the reason. */
function forEachEngine(name: string, body: (engine: IoEngine) => Promise<void>, skipReason?: string): void {
  for (const engine of ['io_uring', 'threads'] as const) {
    testUnless(test, (engine === 'io_uring' ? ioRingUnsupported() : undefined) ?? skipReason, `[${engine}] ${name}`, () => body(engine));
  }
}

test('the io_uring engine: an image opens with it where io_uring is available, and is refused naming why where not', async () => {
  const { path } = image(1);
  const opened = await FileBackend.open(path, false, { engine: 'io_uring' }).then((b) => b, (e: unknown) => e);
  if (ioRingUnsupported() === undefined) {
    assert.instance(opened, FileBackend);
    assert.is((opened as FileBackend).engine, 'io_uring');
    await (opened as FileBackend).close();
    return;
  }
  assert.instance(opened, BlockBackendError);
  assert.match((opened as Error).message, /cannot use io_uring/);
});

/** Why the temp directory cannot take O_DIRECT, if it cannot (tmpfs before Linux 6.6). */
const noODirect = ((): string | undefined => {
  const probe = join(dir, 'odirect-probe');
  writeFileSync(probe, '');
  return supportsODirect(probe) ? undefined : `${tmpdir()} refuses O_DIRECT`;
})();

function segment(sector: number, numSectors: number, flags = 0): Uint8Array {
  const s = new Uint8Array(16);
  const v = new DataView(s.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, numSectors, true);
  v.setUint32(12, flags, true);
  return s;
}

function dataOf(r: Rig, p: Posted, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let at = 0;
  for (const b of p.writable) {
    const n = Math.min(b.len, len - at);
    if (n <= 0) break;
    out.set(r.memory.slice(b.addr, n), at);
    at += n;
  }
  return out;
}

/** Runs one request to completion; returns its status and used length. */
async function run(r: Rig, dev: VirtioBlock, readable: Uint8Array[], writableLens: number[], indirect = false): Promise<{ status: number; len: number; posted: Posted; data: Uint8Array }> {
  const p = post(r, readable, writableLens, indirect);
  dev.notify(0);
  const [e] = await used(r, 1);
  assert.ok(e);
  assert.is(e.head, p.head);
  const total = writableLens.reduce((a, b) => a + b, 0);
  return { status: statusOf(r, p), len: e.len, posted: p, data: dataOf(r, p, Math.max(0, total - 1)) };
}

test('config space: capacity, seg_max, blk_size, write-zeroes limits at the §5.2.4 offsets; features', async () => {
  const { path } = image(100, 300); // a partial last sector is not part of the capacity
  const dev = await VirtioBlock.open({ path, discard: false });
  const v = new DataView(dev.config.buffer, dev.config.byteOffset, dev.config.byteLength);
  assert.is(dev.deviceId, 2);
  assert.equal(dev.queueMaxSizes, [256]);
  assert.is(v.getBigUint64(CONFIG_OFFSETS.capacity, true), 100n);
  assert.is(CONFIG_OFFSETS.segMax, 12);
  assert.is(v.getUint32(12, true), SEG_MAX);
  assert.is(CONFIG_OFFSETS.blkSize, 20);
  assert.is(v.getUint32(20, true), 512);
  assert.is(v.getUint32(48, true), 65536); // max_write_zeroes_sectors: 32 MiB
  assert.is(v.getUint32(52, true), 16); // max_write_zeroes_seg
  assert.is(v.getUint8(56), 0); // write_zeroes_may_unmap
  assert.is(v.getUint32(36, true), 0); // no discard offered
  const bit = (n: number): boolean => ((dev.features >> BigInt(n)) & 1n) === 1n;
  assert.ok(bit(VIRTIO_BLK_F_SEG_MAX) && bit(VIRTIO_BLK_F_BLK_SIZE) && bit(VIRTIO_BLK_F_FLUSH) && bit(VIRTIO_BLK_F_WRITE_ZEROES));
  assert.not.ok(bit(VIRTIO_BLK_F_RO));
  assert.not.ok(bit(VIRTIO_BLK_F_DISCARD));
  await dev.dispose();

  const ro = await VirtioBlock.open({ path, readOnly: true, discard: true });
  assert.ok((ro.features >> BigInt(VIRTIO_BLK_F_RO)) & 1n);
  assert.not.ok((ro.features >> BigInt(VIRTIO_BLK_F_WRITE_ZEROES)) & 1n);
  assert.not.ok((ro.features >> BigInt(VIRTIO_BLK_F_DISCARD)) & 1n);
  await ro.dispose();

  const dis = await VirtioBlock.open({ path, discard: true });
  const dv = new DataView(dis.config.buffer);
  assert.ok((dis.features >> BigInt(VIRTIO_BLK_F_DISCARD)) & 1n);
  assert.is(dv.getUint32(36, true), 65536);
  assert.is(dv.getUint32(40, true), 16);
  assert.is(dv.getUint32(44, true), 1);
  await dis.dispose();
});

test('IN reads the file across several data descriptors (direct and indirect)', async () => {
  const { path, data } = image(64);
  const dev = await VirtioBlock.open({ path });
  const r = rig(dev);
  for (const indirect of [false, true]) {
    const res = await run(r, dev, [header(VIRTIO_BLK_T_IN, 5)], [512, 1024, 512, 1], indirect);
    assert.is(res.status, VIRTIO_BLK_S_OK);
    assert.is(res.len, 2049);
    assert.equal(res.data, data.subarray(5 * SECTOR, 9 * SECTOR));
  }
  // The status byte shares the last data descriptor.
  const res = await run(r, dev, [header(VIRTIO_BLK_T_IN, 63)], [512 + 1]);
  assert.is(res.status, VIRTIO_BLK_S_OK);
  assert.equal(res.data, data.subarray(63 * SECTOR));
  assert.is(dev.metrics().reads, 3);
  assert.is(dev.metrics().readBytes, 2048 * 2 + 512);
  assert.is(dev.metrics().descriptors, 5 + 5 + 2, 'header + 4 writable, twice (the indirect table itself not counted), then header + 1');
  assert.ok(r.interrupts() >= 1);
  await dev.dispose();
});

test('OUT writes the data descriptors to the file; FLUSH completes after fdatasync', async () => {
  const { path, data } = image(32);
  const dev = await VirtioBlock.open({ path });
  const r = rig(dev);
  const a = new Uint8Array(512).fill(0xaa);
  const b = new Uint8Array(1024).fill(0xbb);
  const res = await run(r, dev, [header(VIRTIO_BLK_T_OUT, 3), a, b], [1]);
  assert.is(res.status, VIRTIO_BLK_S_OK);
  assert.is(res.len, 1);
  const expected = data.slice();
  expected.set(a, 3 * SECTOR);
  expected.set(b, 4 * SECTOR);
  assert.equal(fileBytes(path), expected);
  // Header and data in one readable descriptor works too.
  const one = new Uint8Array(16 + 512);
  one.set(header(VIRTIO_BLK_T_OUT, 0));
  one.fill(0x11, 16);
  assert.is((await run(r, dev, [one], [1])).status, VIRTIO_BLK_S_OK);
  expected.fill(0x11, 0, 512);
  assert.equal(fileBytes(path), expected);

  const f = await run(r, dev, [header(VIRTIO_BLK_T_FLUSH, 0)], [1]);
  assert.is(f.status, VIRTIO_BLK_S_OK);
  assert.is(dev.metrics().flushes, 1);
  assert.is(dev.metrics().writes, 2);
  assert.is(dev.metrics().writtenBytes, 2048);
  await dev.dispose();
});

test('GET_ID answers the serial, NUL-padded; the default serial comes from the path', async () => {
  const { path } = image(8);
  const dev = await VirtioBlock.open({ path, serial: 'rootfs' });
  const r = rig(dev);
  const res = await run(r, dev, [header(VIRTIO_BLK_T_GET_ID, 0)], [20, 1]);
  assert.is(res.status, VIRTIO_BLK_S_OK);
  assert.equal(res.data, serialBytes('rootfs'));
  assert.is(new TextDecoder().decode(res.data.subarray(0, 6)), 'rootfs');
  assert.ok(res.data.subarray(6).every((x) => x === 0));
  // Too small a buffer: IOERR.
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_GET_ID, 0)], [19, 1])).status, VIRTIO_BLK_S_IOERR);
  await dev.dispose();

  const dflt = await VirtioBlock.open({ path });
  assert.is(dflt.serial, defaultSerial(path));
  assert.ok(new TextEncoder().encode(dflt.serial).byteLength <= 20);
  assert.match(dflt.serial, /^disk\d+\.img-[0-9a-f]{8}$/);
  assert.is.not(defaultSerial('/a/x.img'), defaultSerial('/b/x.img'));
  await dflt.dispose();

  try {
    await VirtioBlock.open({ path, serial: 'x'.repeat(21) });
    assert.unreachable('a 21-byte serial must be refused');
  } catch (e) {
    assert.instance(e, VirtioBlockError);
    assert.match((e as Error).message, /21 bytes/);
  }
});

test('a request beyond capacity gets IOERR and writes nothing (no short write)', async () => {
  const { path, data } = image(16);
  const dev = await VirtioBlock.open({ path });
  const r = rig(dev);
  // Straddles the end: sectors 15 and 16 of a 16-sector disk.
  const w = await run(r, dev, [header(VIRTIO_BLK_T_OUT, 15), new Uint8Array(1024).fill(0xee)], [1]);
  assert.is(w.status, VIRTIO_BLK_S_IOERR);
  assert.equal(fileBytes(path), data);
  // Far beyond, and a sector number that would overflow 64-bit arithmetic.
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_OUT, 1000), new Uint8Array(512)], [1])).status, VIRTIO_BLK_S_IOERR);
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ffffn)], [512, 1])).status, VIRTIO_BLK_S_IOERR);
  const rd = await run(r, dev, [header(VIRTIO_BLK_T_IN, 16)], [512, 1]);
  assert.is(rd.status, VIRTIO_BLK_S_IOERR);
  assert.ok(rd.data.every((x) => x === 0), 'an unanswered read leaves zeroes, not stale data');
  // Exactly up to the end is fine; zero-length at the end is fine.
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_IN, 15)], [512, 1])).status, VIRTIO_BLK_S_OK);
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_IN, 16)], [1])).status, VIRTIO_BLK_S_OK);
  // Data not a multiple of 512.
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_OUT, 0), new Uint8Array(100)], [1])).status, VIRTIO_BLK_S_IOERR);
  assert.equal(fileBytes(path), data);
  assert.is(dev.metrics().ioErrors, 5);
  await dev.dispose();
});

test('read-only disk: OUT and WRITE_ZEROES get IOERR, the file is untouched; IN and FLUSH work', async () => {
  const { path, data } = image(16);
  const dev = await VirtioBlock.open({ path, readOnly: true });
  const r = rig(dev, { features: dev.features | (1n << BigInt(VIRTIO_BLK_F_WRITE_ZEROES)) });
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_OUT, 0), new Uint8Array(512).fill(1)], [1])).status, VIRTIO_BLK_S_IOERR);
  // WRITE_ZEROES was not offered, so even a driver claiming it gets UNSUPP.
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_WRITE_ZEROES, 0), segment(0, 1)], [1])).status, VIRTIO_BLK_S_UNSUPP);
  const rd = await run(r, dev, [header(VIRTIO_BLK_T_IN, 2)], [512, 1]);
  assert.is(rd.status, VIRTIO_BLK_S_OK);
  assert.equal(rd.data, data.subarray(1024, 1536));
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_FLUSH, 0)], [1])).status, VIRTIO_BLK_S_OK);
  assert.equal(fileBytes(path), data);
  // The backend refuses writes on its own too.
  try {
    await new Promise<void>((res, rej) => dev.backend.startWrite(0, [new Uint8Array(512)], (e) => (e ? rej(e) : res())));
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BlockBackendError);
  }
  assert.equal(fileBytes(path), data);
  await dev.dispose();
});

test('unknown request types get UNSUPP; DISCARD without the feature gets UNSUPP', async () => {
  const { path } = image(8);
  const dev = await VirtioBlock.open({ path, discard: false });
  const r = rig(dev);
  for (const type of [2, 10, 14, 99, 0xffff_ffff]) {
    assert.is((await run(r, dev, [header(type, 0)], [64, 1])).status, VIRTIO_BLK_S_UNSUPP, `type ${type}`);
  }
  assert.is((await run(r, dev, [header(VIRTIO_BLK_T_DISCARD, 0), segment(0, 1)], [1])).status, VIRTIO_BLK_S_UNSUPP);
  assert.is(dev.metrics().unsupported, 6);
  await dev.dispose();
});

test('WRITE_ZEROES zeroes its segments; flags, limits and capacity are checked; DISCARD punches a hole where it can', async () => {
  const { path, data } = image(32);
  const dev = await VirtioBlock.open({ path, discard: true });
  const r = rig(dev);
  const res = await run(r, dev, [header(VIRTIO_BLK_T_WRITE_ZEROES, 0), segment(2, 3), segment(10, 1, 1)], [1]);
  assert.is(res.status, VIRTIO_BLK_S_OK);
  const expected = data.slice();
  expected.fill(0, 2 * SECTOR, 5 * SECTOR);
  expected.fill(0, 10 * SECTOR, 11 * SECTOR);
  assert.equal(fileBytes(path), expected);
  const st = async (rd: Uint8Array[]): Promise<number> => (await run(r, dev, rd, [1])).status;
  assert.is(await st([header(VIRTIO_BLK_T_WRITE_ZEROES, 0), segment(0, 1, 2)]), VIRTIO_BLK_S_UNSUPP); // reserved flag
  assert.is(await st([header(VIRTIO_BLK_T_WRITE_ZEROES, 0), segment(31, 2)]), VIRTIO_BLK_S_IOERR); // beyond capacity
  assert.is(await st([header(VIRTIO_BLK_T_WRITE_ZEROES, 0), segment(0, 65537)]), VIRTIO_BLK_S_IOERR); // over max sectors
  assert.is(await st([header(VIRTIO_BLK_T_WRITE_ZEROES, 0), new Uint8Array(8)]), VIRTIO_BLK_S_IOERR); // half a segment
  assert.is(await st([header(VIRTIO_BLK_T_WRITE_ZEROES, 0)]), VIRTIO_BLK_S_IOERR); // no segment
  const many = new Uint8Array(17 * 16); // 17 segments > max_write_zeroes_seg
  assert.is(await st([header(VIRTIO_BLK_T_WRITE_ZEROES, 0), many]), VIRTIO_BLK_S_IOERR);
  assert.is(await st([header(VIRTIO_BLK_T_DISCARD, 0), segment(0, 4, 1)]), VIRTIO_BLK_S_UNSUPP); // unmap on discard
  assert.is(await st([header(VIRTIO_BLK_T_DISCARD, 0), segment(30, 4)]), VIRTIO_BLK_S_IOERR);
  assert.equal(fileBytes(path), expected, 'refused requests change nothing');
  assert.is(await st([header(VIRTIO_BLK_T_DISCARD, 0), segment(0, 4)]), VIRTIO_BLK_S_OK);
  // Where the file system punches holes the range now reads as zeroes; elsewhere DISCARD was
  // offered (discard: true) but is a hint that changed nothing.
  const probe = await FileBackend.open(path, false);
  if (probe.canDiscard) expected.fill(0, 0, 4 * SECTOR);
  await probe.close();
  assert.equal(fileBytes(path), expected);
  assert.is(dev.metrics().writeZeroes, 1);
  assert.is(dev.metrics().discards, 1);
  await dev.dispose();
});

test('malformed chains: no status byte, short header, bad descriptors, broken queue — never a throw', async () => {
  const { path, data } = image(8);
  const dev = await VirtioBlock.open({ path });
  const r = rig(dev);
  // No writable byte at all: returned with len 0, nothing written.
  const p = post(r, [header(VIRTIO_BLK_T_OUT, 0), new Uint8Array(512).fill(9)], []);
  dev.notify(0);
  const [e] = await used(r, 1);
  assert.equal(e, { head: p.head, len: 0 });
  // A header shorter than 16 bytes: IOERR in the status byte.
  assert.is((await run(r, dev, [new Uint8Array(8)], [1])).status, VIRTIO_BLK_S_IOERR);
  assert.is((await run(r, dev, [], [600])).status, VIRTIO_BLK_S_IOERR);
  // A descriptor outside guest memory: the queue reports a chain error, the device returns it.
  const head = r.driver.post([header(VIRTIO_BLK_T_IN, 0)], [513], { indirect: true, publish: false });
  r.driver.writeDesc(head, { addr: 0x4000_0000, len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
  r.driver.publish();
  dev.notify(0);
  const [bad] = await used(r, 1);
  assert.equal(bad, { head, len: 0 });
  assert.equal(fileBytes(path), data);
  assert.is(dev.metrics().malformed, 2);
  assert.equal(r.resets, []);
  // avail.idx far ahead of the device: the queue is broken -> NEEDS_RESET, further notifies ignored.
  r.driver.setAvailIdx(r.driver.publishedIdx + 100);
  dev.notify(0);
  assert.is(r.resets.length, 1);
  assert.match(r.resets[0] as string, /avail/);
  dev.notify(0);
  assert.is(r.resets.length, 1);
  await dev.dispose();
});

/** `file` without readNow: every read goes through libuv's threadpool. */
function threadpoolOnly(file: FileBackend): BlockBackend {
  return {
    path: file.path,
    readOnly: file.readOnly,
    size: file.size,
    startRead: (pos, bufs, done) => file.startRead(pos, bufs, done),
    startWrite: (pos, bufs, done) => file.startWrite(pos, bufs, done),
    flush: () => file.flush(),
    writeZeroes: (pos, len) => file.writeZeroes(pos, len),
    discard: (pos, len) => file.discard(pos, len),
    close: () => file.close(),
  };
}

/**
 * A gated backend whose readNow answers from `answer`: 'hit' fills everything with 0xc3, a number
 * that many bytes; 'miss' nothing; 'fail' throws. Its startRead records what it was asked for and
 * fills it with 0x5a once released.
 */
class CachedBackend extends GatedBackend {
  nowCalls = 0;
  asked: { pos: number; length: number }[] = [];
  constructor(private readonly answer: 'hit' | 'miss' | 'fail' | number) {
    super();
  }
  readNow(_pos: number, buffers: readonly Uint8Array[], length: number): number {
    this.nowCalls++;
    if (this.answer === 'fail') throw new BlockBackendError('read', this.path, 0, 0, 'injected EIO');
    if (this.answer === 'miss') return 0;
    const n = this.answer === 'hit' ? length : this.answer;
    let left = n;
    for (const b of buffers) {
      b.fill(0xc3, 0, Math.min(left, b.byteLength));
      left -= Math.min(left, b.byteLength);
    }
    return n;
  }
  override startRead(pos: number, buffers: readonly Uint8Array[], done: (err: BlockBackendError | undefined) => void): void {
    this.asked.push({ pos, length: buffers.reduce((n, b) => n + b.byteLength, 0) });
    super.startRead(pos, buffers, (err) => {
      if (!err) for (const b of buffers) b.fill(0x5a);
      done(err);
    });
  }
}

test('a read the backend answers at once completes inside notify, one interrupt for the batch', async () => {
  const be = new CachedBackend('hit');
  const dev = VirtioBlock.withBackend(be, { serial: 'c' });
  const r = rig(dev);
  const a = post(r, [header(VIRTIO_BLK_T_IN, 0)], [512, 512, 1]);
  const b = post(r, [header(VIRTIO_BLK_T_IN, 8)], [4096, 1]);
  dev.notify(0);
  // No await: completed synchronously, no threadpool or setImmediate involved.
  assert.is(r.driver.usedIdx, 2);
  assert.is(r.interrupts(), 1);
  assert.is(statusOf(r, a), VIRTIO_BLK_S_OK);
  assert.is(statusOf(r, b), VIRTIO_BLK_S_OK);
  assert.ok(r.memory.slice((b.writable[0] as GuestBuffer).addr, 4096).every((x) => x === 0xc3));
  assert.equal(r.driver.collectUsed().map((u) => u.len), [1025, 4097]);
  assert.is(be.gates.length, 0);
  assert.is(dev.metrics().cachedReads, 2);
  assert.is(dev.metrics().reads, 2);
  await sleep(5);
  assert.is(r.interrupts(), 1, 'no second interrupt from a leftover setImmediate');
  await dev.dispose();
});

test('a read the backend cannot answer at once goes the asynchronous way; a failing one is IOERR', async () => {
  const miss = new CachedBackend('miss');
  const dev = VirtioBlock.withBackend(miss, { serial: 'm' });
  const r = rig(dev);
  const a = post(r, [header(VIRTIO_BLK_T_IN, 0)], [512, 1]);
  dev.notify(0);
  assert.is(miss.nowCalls, 1);
  assert.is(r.driver.usedIdx, 0);
  assert.is(miss.gates.length, 1);
  miss.gates[0]?.release();
  await used(r, 1);
  assert.is(statusOf(r, a), VIRTIO_BLK_S_OK);
  assert.is(dev.metrics().cachedReads, 0);
  await dev.dispose();

  const fail = new CachedBackend('fail');
  const dev2 = VirtioBlock.withBackend(fail, { serial: 'f' });
  const r2 = rig(dev2);
  const c = post(r2, [header(VIRTIO_BLK_T_IN, 0)], [512, 1]);
  dev2.notify(0);
  assert.is(r2.driver.usedIdx, 1);
  assert.is(statusOf(r2, c), VIRTIO_BLK_S_IOERR);
  assert.is(dev2.metrics().backendErrors, 1);
  assert.is(fail.gates.length, 0);
  await dev2.dispose();
});

test('a read whose prefix the backend answers at once reads only the rest the asynchronous way', async () => {
  const be = new CachedBackend(1536);
  const dev = VirtioBlock.withBackend(be, { serial: 'p' });
  const r = rig(dev);
  // Two data buffers: the cached prefix ends inside the second one.
  const a = post(r, [header(VIRTIO_BLK_T_IN, 8)], [1024, 3072, 1]);
  dev.notify(0);
  assert.is(be.nowCalls, 1);
  assert.is(r.driver.usedIdx, 0, 'not answered before the rest is read');
  assert.equal(be.asked, [{ pos: 8 * SECTOR + 1536, length: 4096 - 1536 }]);
  be.gates[0]?.release();
  await used(r, 1);
  assert.is(statusOf(r, a), VIRTIO_BLK_S_OK);
  const data = new Uint8Array([...r.memory.slice((a.writable[0] as GuestBuffer).addr, 1024), ...r.memory.slice((a.writable[1] as GuestBuffer).addr, 3072)]);
  assert.ok(data.subarray(0, 1536).every((x) => x === 0xc3), 'the prefix, from readNow');
  assert.ok(data.subarray(1536).every((x) => x === 0x5a), 'the rest, from startRead');
  assert.is(dev.metrics().partlyCachedReads, 1);
  assert.is(dev.metrics().cachedReads, 0);
  assert.is(dev.metrics().reads, 1);
  assert.is(dev.metrics().readBytes, 4096);
  await dev.dispose();
});

test('FileBackend.readNow: reads what is cached at once, never past the end, never above READ_NOW_MAX', async () => {
  const { path, data } = image(2048 + 8); // 1 MiB + 4 KiB
  const be = await FileBackend.open(path, true);
  const buf = new Uint8Array(4096);
  // The file was just written: its pages are cached, unless this file system has no RWF_NOWAIT
  // (tmpfs): then readNow declines, and keeps declining without asking the kernel again.
  const hit = be.readNow(4096, [buf.subarray(0, 1024), buf.subarray(1024)], 4096);
  assert.ok(hit === 0 || hit === 4096, `all or nothing of a cached file: ${hit}`);
  if (hit) assert.equal(buf, data.subarray(4096, 8192));
  // Across the end of the file: what is there (the caller's startRead then fails on the rest).
  const tail = new Uint8Array(1024);
  const atEnd = be.readNow(data.length - 512, [tail], 1024);
  assert.is(atEnd, hit ? 512 : 0, 'a read crossing the end of the file');
  if (atEnd) assert.equal(tail.subarray(0, 512), data.subarray(data.length - 512));
  assert.is(be.readNow(0, [new Uint8Array(READ_NOW_MAX + 4096)], READ_NOW_MAX + 4096), 0, 'above READ_NOW_MAX');
  await be.close();
  assert.is(be.readNow(0, [buf], 4096), 0, 'after close');
});

forEachEngine('FileBackend.startWrite: writes every buffer in order and calls back once; read-only and closed images fail with a BlockBackendError', async (engine) => {
  const { path, data } = image(16);
  const be = await FileBackend.open(path, false, { engine });
  const parts = [Uint8Array.from({ length: 700 }, (_, i) => i & 0xff), Uint8Array.from({ length: 1348 }, (_, i) => 255 - (i & 0xff))];
  const calls: (BlockBackendError | undefined)[] = [];
  await new Promise<void>((res) => be.startWrite(1024, parts, (e) => (calls.push(e), res())));
  await new Promise((r) => setTimeout(r, 20)); // a second call would come by now
  assert.equal(calls, [undefined]);
  const want = data.slice();
  want.set(parts[0] as Uint8Array, 1024);
  want.set(parts[1] as Uint8Array, 1024 + 700);
  assert.equal(fileBytes(path), want);
  await be.write(0, [new Uint8Array(512).fill(9)]); // the promise form goes the same way
  assert.is(await new Promise<BlockBackendError | undefined>((res) => be.startWrite(0, [], res)), undefined, 'no data: nothing to write, no error');
  assert.equal(fileBytes(path).subarray(0, 512), new Uint8Array(512).fill(9));
  await be.close();
  const closed = await new Promise<BlockBackendError | undefined>((res) => be.startWrite(0, [new Uint8Array(512)], res));
  assert.instance(closed, BlockBackendError);
  assert.match((closed as Error).message, /closed/);

  const ro = await FileBackend.open(path, true, { engine });
  const refused = await new Promise<BlockBackendError | undefined>((res) => ro.startWrite(0, [new Uint8Array(512)], res));
  assert.instance(refused, BlockBackendError);
  assert.match((refused as Error).message, /read-only/);
  await ro.close();
  assert.equal(fileBytes(path).subarray(0, 512), new Uint8Array(512).fill(9), 'nothing written by the refused calls');
});

test('completions come out of order; a backend failure is IOERR', async () => {
  const be = new GatedBackend();
  const dev = VirtioBlock.withBackend(be, { serial: 'g' });
  const r = rig(dev);
  const a = post(r, [header(VIRTIO_BLK_T_IN, 0)], [512, 1]);
  const b = post(r, [header(VIRTIO_BLK_T_OUT, 1), new Uint8Array(512)], [1]);
  dev.notify(0);
  assert.is(be.gates.length, 2);
  assert.is(dev.inFlight, 2);
  be.gates[1]?.release();
  const [first] = await used(r, 1);
  assert.is(first?.head, b.head);
  assert.is(statusOf(r, b), VIRTIO_BLK_S_OK);
  be.gates[0]?.fail();
  const [second] = await used(r, 1);
  assert.is(second?.head, a.head);
  assert.is(statusOf(r, a), VIRTIO_BLK_S_IOERR);
  assert.is(dev.metrics().backendErrors, 1);
  assert.is(dev.inFlight, 0);
  await dev.dispose();
  assert.ok(be.closed);
});

test('reset while a request is in flight: its completion touches neither the ring, the status nor the data buffers', async () => {
  const be = new GatedBackend();
  const dev = VirtioBlock.withBackend(be, { serial: 'g' });
  const r = rig(dev);
  const p = post(r, [header(VIRTIO_BLK_T_OUT, 0), new Uint8Array(512)], [1]);
  r.memory.writeU8((p.writable[0] as GuestBuffer).addr, 0x5a);
  dev.notify(0);
  dev.reset();
  be.gates[0]?.release();
  await dev.whenIdle();
  await sleep(5);
  assert.is(r.driver.usedIdx, 0);
  assert.is(r.memory.readU8((p.writable[0] as GuestBuffer).addr), 0x5a);
  assert.is(dev.metrics().dropped, 1);
  assert.is(r.interrupts(), 0);
  // Notifies after reset are ignored until the next activate.
  dev.notify(0);
  assert.is(be.gates.length, 1);

  // With a real file: a read in the threadpool at reset time completes nothing either. Its data
  // goes straight into the guest's buffer, so quiesce() (what the transport holds the driver's
  // reset for) waits for it. (The file is cached, so the backend is kept off the readNow path.)
  const { path, data } = image(8);
  const real = VirtioBlock.withBackend(threadpoolOnly(await FileBackend.open(path, false)));
  const r2 = rig(real);
  const pIn = post(r2, [header(VIRTIO_BLK_T_IN, 0)], [4096, 1]);
  const inBuf = pIn.writable[0] as GuestBuffer;
  r2.memory.fill(inBuf.addr, inBuf.len, 0x77);
  real.notify(0);
  real.reset();
  assert.is(real.inFlight, 1, 'the read is in the threadpool');
  await real.quiesce();
  assert.is(real.inFlight, 0, 'quiesce() waited for it');
  await sleep(5);
  assert.is(r2.driver.usedIdx, 0);
  assert.is(real.metrics().dropped, 1);
  assert.equal(r2.memory.slice(inBuf.addr, inBuf.len), data.subarray(0, 4096), 'the data landed before quiesce() resolved');
  const r3 = rig(real);
  const res = await run(r3, real, [header(VIRTIO_BLK_T_IN, 1)], [512, 1]);
  assert.is(res.status, VIRTIO_BLK_S_OK);
  assert.equal(res.data, data.subarray(512, 1024));
  await real.dispose();
  await dev.dispose();
});

test('many requests in one notify: all complete, interrupts are coalesced; dispose leaks no fd', async () => {
  const before = openFds();
  const { path, data } = image(64);
  const dev = await VirtioBlock.open({ path });
  const r = rig(dev);
  const posted: Posted[] = [];
  for (let i = 0; i < 8; i++) posted.push(post(r, [header(VIRTIO_BLK_T_IN, i * 4)], [1024, 1024, 1], true));
  dev.notify(0);
  const entries = await used(r, 8);
  assert.equal(entries.map((e) => e.head).sort((x, y) => x - y), posted.map((p) => p.head).sort((x, y) => x - y));
  for (let i = 0; i < 8; i++) {
    assert.equal(dataOf(r, posted[i] as Posted, 2048), data.subarray(i * 2048, (i + 1) * 2048));
  }
  assert.ok(r.interrupts() >= 1 && r.interrupts() <= 8, `${r.interrupts()} interrupts`);
  assert.is(dev.metrics().interrupts, r.interrupts());
  // dispose with a request in flight waits for it, then closes the file.
  post(r, [header(VIRTIO_BLK_T_IN, 0)], [512, 1]);
  dev.notify(0);
  await dev.dispose();
  assert.is(dev.inFlight, 0);
  assert.is(openFds(), before);
});

test('FileBackend: opening a missing image is a BlockBackendError naming the path', async () => {
  try {
    await FileBackend.open(join(dir, 'missing.img'), false);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BlockBackendError);
    assert.match((e as Error).message, /missing\.img.*ENOENT/);
  }
});

forEachEngine('FileBackend: a read past the end of an image that shrank fails naming it; a write of nothing is done', async (engine) => {
  const { path } = image(8);
  const be = await FileBackend.open(path, false, { engine });
  truncateSync(path, 1024);
  const buf = new Uint8Array(2048);
  try {
    await be.read(0, [buf]);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, BlockBackendError);
    assert.match((e as Error).message, /read of .*\[0, \+2048\): end of file after 1024 bytes: the image shrank below its opened size 4096/);
  }
  await be.write(0, []);
  await be.close();
});

test('DISCARD and WRITE_ZEROES use fallocate: a discard frees the blocks, zeroes read back; DISCARD is offered where holes can be punched', async () => {
  // Two file systems where there are: the temp directory's, and tmpfs (/dev/shm: punches holes,
  // has no FALLOC_FL_ZERO_RANGE, so WRITE_ZEROES writes zeroes there).
  const dirs = [dir, ...(existsSync('/dev/shm') ? [mkdtempSync('/dev/shm/tsvmm-blk-')] : [])];
  try {
    for (const where of dirs) {
      const path = join(where, 'sparse.img');
      const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 7 + 1) & 0xff);
      writeFileSync(path, data);
      const be = await FileBackend.open(path, false);
      const blocksBefore = statSync(path).blocks;
      await be.writeZeroes(4096, 8192);
      data.fill(0, 4096, 12288);
      assert.equal(fileBytes(path), data, `${where}: zeroes`);
      if (be.canDiscard) {
        await be.discard(512 * 1024, 256 * 1024);
        data.fill(0, 512 * 1024, 768 * 1024);
        assert.equal(fileBytes(path), data, `${where}: the discarded range reads as zeroes`);
        assert.ok(statSync(path).blocks <= blocksBefore - 256 * 2, `${where}: 256 KiB of blocks freed (${blocksBefore} -> ${statSync(path).blocks})`);
      } else {
        console.log(`  (${where} punches no holes: DISCARD is not offered there)`);
      }
      const dev = await VirtioBlock.withBackend(be);
      assert.is(((dev.features >> BigInt(VIRTIO_BLK_F_DISCARD)) & 1n) === 1n, be.canDiscard, `${where}: DISCARD offered iff holes can be punched`);
      await dev.dispose();
      const ro = await FileBackend.open(path, true);
      assert.not.ok(ro.canDiscard, 'a read-only image never discards');
      await ro.close();
    }
  } finally {
    for (const d of dirs.slice(1)) rmSync(d, { recursive: true, force: true });
  }
});

test('the default engine: threads for a buffered image; defaultIoEngine says io_uring for O_DIRECT where there is io_uring', async () => {
  const ring = ioRingUnsupported() === undefined;
  assert.is(defaultIoEngine(false), 'threads');
  assert.is(defaultIoEngine(true), ring ? 'io_uring' : 'threads');
  const { path } = image(8);
  const be = await FileBackend.open(path, false);
  assert.is(be.engine, 'threads');
  await be.close();
});

testUnless(test, noODirect, 'the default engine of an O_DIRECT image: io_uring where there is io_uring, threads otherwise', async () => {
  const { path } = image(8);
  const direct = await FileBackend.open(path, false, { direct: true });
  assert.is(direct.engine, ioRingUnsupported() === undefined ? 'io_uring' : 'threads');
  await direct.close();
});

test('a direct open: O_DIRECT where the file system takes it, refused naming it where not', async () => {
  const { path } = image(8);
  const opened = await FileBackend.open(path, false, { direct: true, engine: 'threads' }).then((b) => b, (e: unknown) => e);
  if (noODirect === undefined) {
    assert.instance(opened, FileBackend);
    assert.ok((opened as FileBackend).direct);
    await (opened as FileBackend).close();
    return;
  }
  assert.instance(opened, BlockBackendError);
  assert.match((opened as Error).message, /does not support O_DIRECT/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

forEachEngine('direct mode (O_DIRECT): aligned transfers go past the page cache; odd ones and WRITE_ZEROES go buffered, coherently', async (engine) => {
  const { path, data } = image(64);
  const be = await FileBackend.open(path, false, { direct: true, engine });
  assert.ok(be.direct);
  assert.is(be.engine, engine);
  // Page-aligned memory, as guest RAM is (an addon mapping), so O_DIRECT takes the transfers.
  const mem = HostMapping.allocate(1 << 16);
  const bytes = mem.bytes();
  try {
    const out = bytes.subarray(0, 4096);
    for (let i = 0; i < out.length; i++) out[i] = (i * 13) & 0xff;
    await be.write(8192, [out.subarray(0, 2048), out.subarray(2048)]);
    assert.equal(fileBytes(path).subarray(8192, 12288), out);
    const back = bytes.subarray(4096, 8192);
    await be.read(8192, [back]);
    assert.equal(back, out);
    assert.is(be.bufferedFallbacks, 0, 'aligned: all O_DIRECT');
    // Cached or not, nothing is read on the calling thread in direct mode.
    assert.is(be.readNow(0, [bytes.subarray(0, 512)], 512), 0);

    // A buffer at an odd address: O_DIRECT would refuse it, the buffered descriptor takes it.
    const odd = bytes.subarray(8192 + 1, 8192 + 1 + 1024); // an odd address: no O_DIRECT memory alignment allows it
    await be.read(1024, [odd]);
    assert.equal(odd, data.subarray(1024, 2048));
    assert.is(be.bufferedFallbacks, 1);
    assert.is(be.directRefused, 0, 'statx (or the 512 default) said so: no O_DIRECT call was refused');
    odd.fill(0xab);
    await be.write(0, [odd]);
    assert.is(be.bufferedFallbacks, 2);
    // ...and an O_DIRECT read right after sees that buffered write (Linux writes dirty pages back first).
    const aligned = bytes.subarray(16384, 16384 + 1024);
    await be.read(0, [aligned]);
    assert.ok(aligned.every((b) => b === 0xab));
    assert.is(be.bufferedFallbacks, 2);
    // WRITE_ZEROES writes from our own zero buffer: buffered; later direct reads see zeroes.
    await be.writeZeroes(4096, 4096);
    await be.read(4096, [aligned]);
    assert.ok(aligned.every((b) => b === 0));
    await be.flush();
    assert.equal(fileBytes(path).subarray(4096, 8192), new Uint8Array(4096));
  } finally {
    mem.dispose();
    await be.close();
  }

  // Through the device: the test driver's buffers are 8-byte aligned in ordinary memory, so this is
  // the fallback path end to end; the metrics show it.
  const dev = await VirtioBlock.open({ path, direct: true, engine });
  const r = rig(dev);
  const w = await run(r, dev, [header(VIRTIO_BLK_T_OUT, 10), new Uint8Array(512).fill(0x5c)], [1]);
  assert.is(w.status, VIRTIO_BLK_S_OK);
  const rd = await run(r, dev, [header(VIRTIO_BLK_T_IN, 10)], [512, 1]);
  assert.is(rd.status, VIRTIO_BLK_S_OK);
  assert.ok(rd.data.every((b) => b === 0x5c));
  assert.is(dev.metrics().cachedReads, 0);
  assert.ok((dev.metrics().bufferedFallbacks ?? 0) >= 1);
  assert.is(dev.metrics().directRefused, 0);
  assert.is(dev.metrics().engine, engine);
  await dev.dispose();
}, noODirect);

test('interrupt checks: at once for the last request in flight, once per turn while others are still in flight', async () => {
  const be = new GatedBackend();
  const dev = VirtioBlock.withBackend(be, { serial: 'i' });
  const r = rig(dev);
  // Three writes in flight; the first two complete in one turn, the third later.
  for (let i = 0; i < 3; i++) post(r, [header(VIRTIO_BLK_T_OUT, i), new Uint8Array(512)], [1]);
  dev.notify(0);
  assert.is(be.gates.length, 3);
  be.gates[0]?.release();
  be.gates[1]?.release();
  await Promise.resolve();
  await Promise.resolve(); // the gates' promise callbacks have run: two completions, others in flight
  assert.is(r.driver.usedIdx, 2);
  assert.is(r.interrupts(), 0, 'with a request still in flight the check waits for the end of the turn');
  await new Promise((res) => setImmediate(res));
  assert.is(r.interrupts(), 1, 'one interrupt for both');
  be.gates[2]?.release();
  await Promise.resolve();
  await Promise.resolve();
  assert.is(r.driver.usedIdx, 3);
  assert.is(r.interrupts(), 2, 'the last request in flight: interrupt without waiting for another turn');
  await sleep(5);
  assert.is(r.interrupts(), 2, 'and no second one from a leftover check');
  assert.is(dev.metrics().interrupts, 2);
  await dev.dispose();
});

/** Why no loop device with an ext4 file system can be made here (root, losetup, /dev/loop-control). */
const noLoopDevice = process.getuid?.() !== 0 ? 'not root (losetup and mount need it)' : spawnSync('losetup', ['--version'], { timeout: 10_000 }).status !== 0 ? 'no losetup' : !existsSync('/dev/loop-control') ? 'no /dev/loop-control (no loop driver here)' : undefined;

testUnless(test, noLoopDevice, 'direct mode on a disk with 4 KiB sectors: the block size the driver sees is 4096, and a 512-byte request goes buffered', async () => {
  // A loop device with 4 KiB logical sectors carrying an ext4 file system.
  const work = mkdtempSync(join(tmpdir(), 'tsvmm-4kn-'));
  let fs: Ext4Loop;
  try {
    fs = mountExt4Loop(work, 64, 4096);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  try {
    const path = join(fs.path, 'disk.img');
    const data = new Uint8Array(64 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    writeFileSync(path, data);
    const be = await FileBackend.open(path, false, { direct: true });
    try {
      assert.equal(be.alignment?.offset, 4096, 'statx: O_DIRECT offsets in 4 KiB');
      assert.is(be.blockSize, 4096);
      const blk = VirtioBlock.withBackend(be, { serial: 'fourk' });
      assert.is(new DataView(blk.config.buffer, blk.config.byteOffset).getUint32(CONFIG_OFFSETS.blkSize, true), 4096, 'blk_size for the driver');
      const ram = HostMapping.allocate(1 << 16);
      try {
        const bytes = ram.bytes();
        await be.read(8192, [bytes.subarray(0, 4096)]);
        assert.equal(bytes.subarray(0, 4096), data.subarray(8192, 12288));
        assert.is(be.bufferedFallbacks, 0, '4 KiB-aligned: O_DIRECT');
        await be.read(512, [bytes.subarray(4096, 4608)]);
        assert.equal(bytes.subarray(4096, 4608), data.subarray(512, 1024));
        assert.is(be.bufferedFallbacks, 1, 'a 512-byte request: buffered');
        assert.is(be.directRefused, 0, '...without a failed O_DIRECT call first');
      } finally {
        ram.dispose();
      }
    } finally {
      await be.close();
    }
  } finally {
    fs.unmount();
    rmSync(work, { recursive: true, force: true });
  }
});

test('direct mode: the O_DIRECT alignment comes from statx where the file system reports it', async () => {
  const { path } = image(16);
  if (!supportsODirect(path)) return; // covered by the refusal check in the direct-mode test
  const be = await FileBackend.open(path, false, { direct: true });
  const fd = openSync(path, 'r');
  try {
    const reported = directIoAlignment(fd);
    assert.equal(be.alignment, reported ?? { memory: DIRECT_ALIGN, offset: DIRECT_ALIGN });
    assert.is(be.blockSize, Math.max(512, be.alignment?.offset ?? 0));
  } finally {
    closeSync(fd);
    await be.close();
  }
  const buffered = await FileBackend.open(path, false);
  assert.is(buffered.alignment, undefined);
  assert.is(buffered.blockSize, 512);
  const plain = VirtioBlock.withBackend(buffered);
  assert.not.ok('bufferedFallbacks' in plain.metrics(), 'the direct-mode counters appear only in direct mode');
  await plain.dispose();
});

test.run();
