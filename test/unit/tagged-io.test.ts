// vmm/io-ring.ts and vmm/io-threads.ts over vmm/tagged-io.ts: the addon's io_uring and a disk's
// own thread pool, on plain files (no KVM needed). Every test runs against both engines. Where
// this host or build has no io_uring (ioRingUnsupported says why) the ring's tests say so by name
// and check only that.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { IoRing, ioRingUnsupported } from '../../src/vmm/io-ring.js';
import { IoThreads } from '../../src/vmm/io-threads.js';
import type { TaggedIo } from '../../src/vmm/tagged-io.js';
import { DisposedError } from '../../src/vmm/errors.js';

interface Engine {
  name: string;
  /** The module and class, for the child process of the keep-alive test. */
  module: string;
  className: string;
  make(entries: number): TaggedIo;
  /** Why it cannot run here, or undefined. */
  unsupported: string | undefined;
}

const ENGINES: Engine[] = [
  { name: 'IoRing', module: '../../src/vmm/io-ring.js', className: 'IoRing', make: (n) => new IoRing(n), unsupported: ioRingUnsupported() },
  { name: 'IoThreads', module: '../../src/vmm/io-threads.js', className: 'IoThreads', make: (n) => new IoThreads(2, n), unsupported: undefined },
];

function withFile(engine: Engine, bytes: Uint8Array, body: (path: string, fd: number) => Promise<void>): () => Promise<void> {
  return async () => {
    if (engine.unsupported !== undefined) {
      console.log(`  (skipped: io_uring is not available here: ${engine.unsupported})`);
      assert.throws(() => engine.make(4), /io_uring is not available/);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-taggedio-'));
    const path = join(dir, 'f');
    writeFileSync(path, bytes);
    const fd = openSync(path, 'r+');
    try {
      await body(path, fd);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const ramp = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i & 0xff);
const run = (start: (done: (r: number) => void) => void): Promise<number> => new Promise((res) => start(res));

for (const engine of ENGINES) {
  test(
    `${engine.name}: readv fills the buffers in order; writev writes them; a read at the end is short; fdatasync completes`,
    withFile(engine, ramp(8192), async (path, fd) => {
      const io = engine.make(8);
      const a = new Uint8Array(100);
      const b = new Uint8Array(28);
      assert.is(await run((d) => io.readv(fd, [a, b], 1000, d)), 128);
      assert.equal([...a, ...b], [...ramp(8192).subarray(1000, 1128)]);
      assert.is(await run((d) => io.readv(fd, [new Uint8Array(512)], 8192 - 100, d)), 100, 'short at the end of the file');
      assert.is(await run((d) => io.writev(fd, [new Uint8Array(3).fill(7), new Uint8Array(2).fill(9)], 4096, d)), 5);
      assert.is(await run((d) => io.fdatasync(fd, d)), 0);
      assert.equal([...readFileSync(path).subarray(4095, 4102)], [4095 & 0xff, 7, 7, 7, 9, 9, 4101 & 0xff]);
      assert.is(io.inFlight, 0);
      io.close();
    }),
  );

  test(
    `${engine.name}: failures come back as -errno; a bad argument throws and it goes on; a closed one refuses new work`,
    withFile(engine, ramp(512), async (_path, fd) => {
      const io = engine.make(2);
      const ro = openSync(_path, 'r');
      try {
        const r = await run((d) => io.writev(ro, [new Uint8Array(4)], 0, d));
        assert.ok(r < 0);
        assert.is(getSystemErrorName(r), 'EBADF', 'a write to a read-only descriptor');
      } finally {
        closeSync(ro);
      }
      // A refused argument throws and leaves it as it was.
      assert.throws(() => io.readv(fd, [], 0, () => undefined), RangeError);
      // Every buffer must be a Uint8Array (guest memory views); the message names the bad one.
      const notBytes = [new Uint8Array(4), new Uint16Array(2), { byteLength: 4 }] as unknown as Uint8Array[];
      assert.throws(() => io.readv(fd, notBytes, 0, () => undefined), (e: unknown) => e instanceof TypeError && /buffer 1 is not a Uint8Array/.test(e.message));
      assert.throws(() => io.readv(fd, [notBytes[0], notBytes[2]] as Uint8Array[], 0, () => undefined), (e: unknown) => e instanceof TypeError && /buffer 1 is not a Uint8Array/.test(e.message));
      assert.is(io.inFlight, 0);
      assert.is(await run((d) => io.readv(fd, [new Uint8Array(4)], 0, d)), 4, 'still works');
      io.close();
      assert.throws(() => io.readv(fd, [new Uint8Array(4)], 0, () => undefined), (e: unknown) => e instanceof DisposedError);
      assert.throws(() => engine.make(0), RangeError);
    }),
  );

  test(
    `${engine.name}: more operations than entries: the rest wait their turn and every one completes once`,
    withFile(engine, ramp(64 * 1024), async (_path, fd) => {
      const io = engine.make(2);
      const bufs = Array.from({ length: 40 }, () => new Uint8Array(1024));
      const results: number[] = new Array<number>(40).fill(-1);
      let calls = 0;
      const all = Promise.all(
        bufs.map(
          (b, i) =>
            new Promise<void>((res) =>
              io.readv(fd, [b], i * 1024, (r) => {
                calls++;
                results[i] = r;
                res();
              }),
            ),
        ),
      );
      assert.is(io.inFlight, 40, 'two submitted, 38 waiting');
      await all;
      await new Promise((r) => setTimeout(r, 10));
      assert.is(calls, 40);
      assert.ok(results.every((r) => r === 1024));
      for (const [i, b] of bufs.entries()) assert.equal(b, ramp(64 * 1024).subarray(i * 1024, (i + 1) * 1024), `buffer ${i}`);
      assert.is(io.inFlight, 0);
      io.close();
    }),
  );

  test(`${engine.name}: an idle one does not keep the process alive; one with work in flight does until it completes`, () => {
    if (engine.unsupported !== undefined) {
      console.log(`  (skipped: io_uring is not available here: ${engine.unsupported})`);
      return;
    }
    const mod = fileURLToPath(new URL(engine.module, import.meta.url));
    // An idle one, never closed: the child exits at once. A read in flight: its callback runs first.
    const script = `
      import { ${engine.className} } from ${JSON.stringify(mod)};
      import { openSync } from 'node:fs';
      const idle = new ${engine.className}();
      const io = new ${engine.className}();
      io.readv(openSync(${JSON.stringify(process.execPath)}, 'r'), [new Uint8Array(16)], 0, (r) => console.log('read ' + r));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.is(out.trim(), 'read 16');
  });
}

test('IoThreads: eight writes at once on four threads all land, and an fdatasync after them completes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-iothreads-'));
  const path = join(dir, 'f');
  writeFileSync(path, new Uint8Array(8 * 4096));
  const fd = openSync(path, 'r+');
  const pool = new IoThreads(4, 8);
  try {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => run((d) => pool.writev(fd, [new Uint8Array(4096).fill(i + 1)], i * 4096, d))));
    assert.equal(results, new Array<number>(8).fill(4096));
    assert.is(await run((d) => pool.fdatasync(fd, d)), 0);
    const back = readFileSync(path);
    for (let i = 0; i < 8; i++) assert.ok(back.subarray(i * 4096, (i + 1) * 4096).every((x) => x === i + 1), `block ${i}`);
    assert.is(pool.inFlight, 0);
  } finally {
    pool.close();
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IoThreads: the thread count is 1 to 64', () => {
  assert.throws(() => new IoThreads(0), RangeError);
  assert.throws(() => new IoThreads(65), RangeError);
  assert.throws(() => new IoThreads(1.5), RangeError);
  new IoThreads(1).close();
});

test.run();
