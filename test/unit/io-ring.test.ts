// vmm/io-ring.ts: the addon's io_uring, on plain files (no KVM needed). Where this host or build
// has no io_uring (ioRingUnsupported says why) the tests are registered as skipped with that
// reason, and one test checks that a ring cannot be made.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { IoRing, ioRingUnsupported } from '../../src/vmm/io-ring.js';
import { DisposedError } from '../../src/vmm/errors.js';
import { testUnless } from '../helpers/skip.js';

const unsupported = ioRingUnsupported();
/** The tests that need a ring: registered as skipped where there is none. */
const ringTest = (name: string, body: () => void | Promise<void>): void => testUnless(test, unsupported === undefined ? undefined : `io_uring is not available here: ${unsupported}`, name, body);

test('a ring is made where ioRingUnsupported() says io_uring is available, and refused naming why where not', () => {
  if (unsupported !== undefined) {
    assert.throws(() => new IoRing(4), /io_uring is not available/);
    return;
  }
  new IoRing(4).close();
});

function withFile(bytes: Uint8Array, body: (path: string, fd: number) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-ioring-'));
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

ringTest(
  'readv fills the buffers in order; writev writes them; a read at the end is short; fdatasync completes',
  withFile(ramp(8192), async (path, fd) => {
    const ring = new IoRing(8);
    const a = new Uint8Array(100);
    const b = new Uint8Array(28);
    assert.is(await run((d) => ring.readv(fd, [a, b], 1000, d)), 128);
    assert.equal([...a, ...b], [...ramp(8192).subarray(1000, 1128)]);
    assert.is(await run((d) => ring.readv(fd, [new Uint8Array(512)], 8192 - 100, d)), 100, 'short at the end of the file');
    assert.is(await run((d) => ring.writev(fd, [new Uint8Array(3).fill(7), new Uint8Array(2).fill(9)], 4096, d)), 5);
    assert.is(await run((d) => ring.fdatasync(fd, d)), 0);
    assert.equal([...readFileSync(path).subarray(4095, 4102)], [4095 & 0xff, 7, 7, 7, 9, 9, 4101 & 0xff]);
    assert.is(ring.inFlight, 0);
    ring.close();
  }),
);

ringTest(
  'failures come back as -errno; a bad argument throws and the ring goes on; a closed ring refuses new work',
  withFile(ramp(512), async (_path, fd) => {
    const ring = new IoRing(2);
    const ro = openSync(_path, 'r');
    try {
      const r = await run((d) => ring.writev(ro, [new Uint8Array(4)], 0, d));
      assert.ok(r < 0);
      assert.is(getSystemErrorName(r), 'EBADF', 'a write to a read-only descriptor');
    } finally {
      closeSync(ro);
    }
    // A refused argument throws and leaves the ring as it was.
    assert.throws(() => ring.readv(fd, [], 0, () => undefined), RangeError);
    // Every buffer must be a Uint8Array (guest memory views); the message names the bad one.
    const notBytes = [new Uint8Array(4), new Uint16Array(2), { byteLength: 4 }] as unknown as Uint8Array[];
    assert.throws(() => ring.readv(fd, notBytes, 0, () => undefined), (e: unknown) => e instanceof TypeError && /buffer 1 is not a Uint8Array/.test(e.message));
    assert.throws(() => ring.readv(fd, [notBytes[0], notBytes[2]] as Uint8Array[], 0, () => undefined), (e: unknown) => e instanceof TypeError && /buffer 1 is not a Uint8Array/.test(e.message));
    assert.is(ring.inFlight, 0);
    assert.is(await run((d) => ring.readv(fd, [new Uint8Array(4)], 0, d)), 4, 'still works');
    ring.close();
    assert.throws(() => ring.readv(fd, [new Uint8Array(4)], 0, () => undefined), (e: unknown) => e instanceof DisposedError);
    assert.throws(() => new IoRing(0), RangeError);
  }),
);

ringTest(
  'more operations than ring entries: the rest wait their turn and every one completes once',
  withFile(ramp(64 * 1024), async (_path, fd) => {
    const ring = new IoRing(2);
    const bufs = Array.from({ length: 40 }, () => new Uint8Array(1024));
    const results: number[] = new Array<number>(40).fill(-1);
    let calls = 0;
    const all = Promise.all(
      bufs.map(
        (b, i) =>
          new Promise<void>((res) =>
            ring.readv(fd, [b], i * 1024, (r) => {
              calls++;
              results[i] = r;
              res();
            }),
          ),
      ),
    );
    assert.is(ring.inFlight, 40, 'two submitted, 38 waiting');
    await all;
    await new Promise((r) => setTimeout(r, 10));
    assert.is(calls, 40);
    assert.ok(results.every((r) => r === 1024));
    for (const [i, b] of bufs.entries()) assert.equal(b, ramp(64 * 1024).subarray(i * 1024, (i + 1) * 1024), `buffer ${i}`);
    assert.is(ring.inFlight, 0);
    ring.close();
  }),
);

ringTest('an idle ring does not keep the process alive; one with work in flight does until it completes', () => {
  const mod = fileURLToPath(new URL('../../src/vmm/io-ring.js', import.meta.url));
  // An idle ring, never closed: the child exits at once. A read in flight: its callback runs first.
  const script = `
    import { IoRing } from ${JSON.stringify(mod)};
    import { openSync } from 'node:fs';
    const idle = new IoRing(4);
    const ring = new IoRing(4);
    ring.readv(openSync(${JSON.stringify(process.execPath)}, 'r'), [new Uint8Array(16)], 0, (r) => console.log('read ' + r));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.is(out.trim(), 'read 16');
});

test.run();
