// virtio-blk FLUSH answers only once the backend's flush has finished (virtio 1.2 §5.2.6.4), and
// answers IOERR when it failed; FileBackend's flush is a real fdatasync, shown on a disk whose
// writeback fails (test/helpers/failing-disk.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statfsSync } from 'node:fs';
import { ioRingUnsupported } from '../../src/vmm/io-ring.js';
import {
  BlockBackendError,
  FileBackend,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_OUT,
  VirtioBlock,
  type BlockBackend,
  type IoEngine,
} from '../../src/devices/virtio/block/index.js';
import { GatedBackend, header, openFds, post, rig, sleep, statusAddr, statusOf, turns, used, type Posted, type Rig } from '../helpers/blk-rig.js';
import { failingDiskUnavailable, makeFailingDisk, type FailingDisk } from '../helpers/failing-disk.js';
import { testUnless } from '../helpers/skip.js';

const MiB = 1 << 20;
/** A status byte no answer has (OK 0, IOERR 1, UNSUPP 2): still there means not answered. */
const UNANSWERED = 0xee;

/** Posts a FLUSH whose status byte holds UNANSWERED. */
function postFlush(r: Rig): Posted {
  const p = post(r, [header(VIRTIO_BLK_T_FLUSH, 0)], [1]);
  r.memory.writeU8(statusAddr(p), UNANSWERED);
  return p;
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 13 + seed + (i >> 12)) & 0xff;
  return b;
}

test('FLUSH is not answered while the backend flush is in progress: no status, no used entry, no interrupt', async () => {
  const be = new GatedBackend();
  const dev = VirtioBlock.withBackend(be, { serial: 'flush' });
  const r = rig(dev);
  const p = postFlush(r);
  dev.notify(0);
  assert.equal(be.gates.map((g) => g.op), ['flush'], 'the FLUSH called backend.flush()');
  await turns(5);
  await sleep(20);
  assert.is(statusOf(r, p), UNANSWERED, 'status byte untouched');
  assert.is(r.driver.usedIdx, 0, 'used idx unchanged');
  assert.is(r.interrupts(), 0, 'no interrupt');
  assert.is(dev.inFlight, 1);
  assert.is(dev.metrics().flushes, 0);

  be.gates[0]?.release();
  const [e] = await used(r, 1);
  assert.is(e?.head, p.head);
  assert.is(e?.len, 1);
  assert.is(statusOf(r, p), VIRTIO_BLK_S_OK);
  assert.is(r.driver.usedIdx, 1);
  assert.is(r.interrupts(), 1);
  assert.is(dev.metrics().flushes, 1);
  assert.is(dev.inFlight, 0);
  await dev.dispose();
});

test('a failing backend flush answers the FLUSH VIRTIO_BLK_S_IOERR and counts a backend error', async () => {
  const be = new GatedBackend();
  const dev = VirtioBlock.withBackend(be, { serial: 'flush' });
  const r = rig(dev);
  const p = postFlush(r);
  dev.notify(0);
  await turns(2);
  assert.is(statusOf(r, p), UNANSWERED);
  assert.equal(be.gates.map((g) => g.op), ['flush']);
  be.gates[0]?.fail();
  const [e] = await used(r, 1);
  assert.is(e?.head, p.head);
  assert.is(statusOf(r, p), VIRTIO_BLK_S_IOERR);
  assert.is(dev.metrics().backendErrors, 1);
  assert.is(dev.metrics().ioErrors, 1);
  assert.is(dev.metrics().flushes, 0, 'a failed flush is not counted as one done');
  assert.is(r.interrupts(), 1);
  await dev.dispose();

  // A flush() that throws instead of rejecting is answered the same way.
  const throwing: BlockBackend = {
    path: '/throwing',
    readOnly: false,
    size: 64 * 512,
    startRead: (_p, _b, done) => done(undefined),
    startWrite: (_p, _b, done) => done(undefined),
    flush: () => {
      throw new BlockBackendError('flush', '/throwing', 0, 0, 'thrown');
    },
    writeZeroes: async () => undefined,
    discard: async () => undefined,
    close: async () => undefined,
  };
  const dev2 = VirtioBlock.withBackend(throwing, { serial: 'throw' });
  const r2 = rig(dev2);
  const p2 = postFlush(r2);
  dev2.notify(0);
  await used(r2, 1);
  assert.is(statusOf(r2, p2), VIRTIO_BLK_S_IOERR);
  assert.is(dev2.metrics().backendErrors, 1);
  await dev2.dispose();
});

// --- FileBackend over a disk whose writeback fails -----------------------------------------------

const noDisk = failingDiskUnavailable();

/** Why `engine` cannot be tested here, if it cannot. */
function engineUnavailable(engine: IoEngine): string | undefined {
  if (noDisk !== undefined) return noDisk;
  const why = engine === 'io_uring' ? ioRingUnsupported() : undefined;
  return why === undefined ? undefined : `io_uring: ${why}`;
}

/** Runs `body` over a fresh failing disk, tears it down, and checks that no descriptor leaked. */
async function withFailingDisk(body: (disk: FailingDisk) => Promise<void>): Promise<void> {
  const fdsBefore = openFds();
  const disk = await makeFailingDisk({ tmpfsMiB: 16, ext4MiB: 64, imageMiB: 48 });
  let bodyError: unknown;
  try {
    await body(disk);
  } catch (e) {
    bodyError = e;
  }
  try {
    await disk.dispose();
  } catch (e) {
    if (bodyError === undefined) throw e;
    process.stderr.write(`(also: ${e instanceof Error ? e.message : String(e)})\n`);
  }
  if (bodyError !== undefined) throw bodyError;
  await turns(2); // handle closes that libuv finishes on a later turn
  assert.is(openFds(), fdsBefore, 'file descriptors leaked');
}

/** Room left on the tmpfs under the ext4, in bytes. */
function roomLeft(disk: FailingDisk): number {
  const s = statfsSync(disk.backing);
  return s.bavail * s.bsize;
}

function assertFdatasyncFailed(e: unknown): void {
  assert.instance(e, BlockBackendError, `flush() must reject with a BlockBackendError, got ${String(e)}`);
  const err = e as BlockBackendError;
  assert.is(err.op, 'flush');
  assert.match(err.message, /fdatasync failed: (ENOSPC|EIO)\b/);
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  assert.ok(code === 'ENOSPC' || code === 'EIO', `the cause's code: ${String(code)}`);
}

/** The big write: more than the tmpfs can still hold once it is written back. */
const BIG = 24 * MiB;

for (const engine of ['threads', 'io_uring'] as const) {
  testUnless(test, engineUnavailable(engine), `[${engine}] FileBackend.flush() is fdatasync: it rejects when writeback to the disk fails, though the writes succeeded`, () =>
    withFailingDisk(async (disk) => {
      const be = await FileBackend.open(disk.image, false, { engine });
      try {
        assert.is(be.engine, engine);
        // While the tmpfs has room, writes are made durable without error.
        await be.write(0, [pattern(64 * 1024, 1)]);
        await be.flush();
        const room = roomLeft(disk);
        assert.ok(room < BIG - 4 * MiB, `the tmpfs must be too small for the big write: ${room} bytes left`);

        const big = pattern(BIG, 2);
        const wrote = await new Promise<BlockBackendError | undefined>((res) => be.startWrite(MiB, [big], res));
        assert.is(wrote, undefined, 'the buffered write succeeds (page cache)');
        const back = new Uint8Array(4096);
        await be.read(MiB + BIG - 4096, [back]);
        assert.equal(back, big.subarray(BIG - 4096), 'and reads back');

        const flushed = await be.flush().then(
          () => undefined,
          (e: unknown) => e,
        );
        assertFdatasyncFailed(flushed);
        assert.ok(roomLeft(disk) < MiB, `writeback ran the tmpfs out of room: ${roomLeft(disk)} bytes left`);
        // Linux reports a writeback error once; the backend keeps failing flushes after it.
        const again = await be.flush().then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.instance(again, BlockBackendError, 'a flush after a failed one fails too: the lost writes are not on disk');
        assert.match((again as Error).message, /an earlier fdatasync failed .*fdatasync failed: (ENOSPC|EIO)/);
      } finally {
        await be.close();
      }
    }),
  );

  testUnless(test, engineUnavailable(engine), `[${engine}] over a disk whose writeback fails: OUT answers OK, the FLUSH after it IOERR`, () =>
    withFailingDisk(async (disk) => {
      const dev = VirtioBlock.withBackend(await FileBackend.open(disk.image, false, { engine }), { serial: 'failing' });
      try {
        const r = rig(dev, { memorySize: 32 * MiB });
        // While the tmpfs has room: OUT and FLUSH both OK.
        const small = post(r, [header(VIRTIO_BLK_T_OUT, 0), pattern(64 * 1024, 3)], [1]);
        dev.notify(0);
        await used(r, 1);
        assert.is(statusOf(r, small), VIRTIO_BLK_S_OK);
        const f1 = postFlush(r);
        dev.notify(0);
        await used(r, 1);
        assert.is(statusOf(r, f1), VIRTIO_BLK_S_OK, 'a FLUSH with room for writeback');

        const out = post(r, [header(VIRTIO_BLK_T_OUT, MiB / 512), pattern(BIG, 4)], [1]);
        dev.notify(0);
        await used(r, 1);
        assert.is(statusOf(r, out), VIRTIO_BLK_S_OK, 'the big OUT succeeds (page cache)');
        const f2 = postFlush(r);
        dev.notify(0);
        const [e] = await used(r, 1);
        assert.is(e?.head, f2.head);
        assert.is(statusOf(r, f2), VIRTIO_BLK_S_IOERR, 'the FLUSH after it fails');
        assert.is(dev.metrics().writes, 2);
        assert.is(dev.metrics().flushes, 1);
        assert.is(dev.metrics().backendErrors, 1);
        assert.is(dev.metrics().engine, engine);
      } finally {
        await dev.dispose();
      }
    }),
  );
}

test.run();
