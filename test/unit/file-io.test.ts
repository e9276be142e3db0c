// vmm/file-io.ts: the addon's non-blocking positional reads, on a plain file (no KVM needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preadNoWait } from '../../src/vmm/file-io.js';
import { testUnless } from '../helpers/skip.js';

/** Runs `body` with a fd of a fresh 64-byte file (byte i = i) in the temp directory. */
function withFile<T>(body: (fd: number) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-preadnw-'));
  try {
    const path = join(dir, 'f');
    writeFileSync(path, Uint8Array.from({ length: 64 }, (_, i) => i));
    const fd = openSync(path, 'r');
    try {
      return body(fd);
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A file system without RWF_NOWAIT reads (tmpfs) answers 'unsupported': then the reads cannot be checked. */
const noNowait = withFile((fd) => preadNoWait(fd, [new Uint8Array(1)], 0)) === 'unsupported' ? `${tmpdir()} has no RWF_NOWAIT reads` : undefined;

test('preadNoWait: bad buffer lists are refused before any read, naming the bad buffer', () => {
  withFile((fd) => {
    const a = new Uint8Array(3);
    const bad = (buffers: unknown, re: RegExp, type: typeof TypeError | typeof RangeError): void =>
      assert.throws(() => preadNoWait(fd, buffers as Uint8Array[], 0), (e: unknown) => e instanceof type && re.test((e as Error).message));
    bad([], /0 buffers; 1 to \d+ allowed/, RangeError);
    bad(new Uint8Array(4), /must be an array of Uint8Array/, TypeError);
    bad([a, new DataView(new ArrayBuffer(4))], /buffer 1 is not a Uint8Array/, TypeError);
    bad([a, new Uint8Array(2), 'abc'], /buffer 2 is not a Uint8Array/, TypeError);
  });
});

testUnless(test, noNowait, 'preadNoWait: reads cached data into the buffers in order; short at the end of the file', () => {
  withFile((fd) => {
    const a = new Uint8Array(3);
    const b = new Uint8Array(2);
    // Just written, so cached.
    assert.is(preadNoWait(fd, [a, b], 10), 5);
    assert.equal([...a, ...b], [10, 11, 12, 13, 14]);
    assert.is(preadNoWait(fd, [new Uint8Array(8)], 60), 4, 'short at the end of the file');
  });
});

test.run();
