// vmm/file-io.ts: the addon's non-blocking positional reads, on a plain file (no KVM needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preadNoWait } from '../../src/vmm/file-io.js';

test('preadNoWait: reads into the buffers in order, or says why not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-preadnw-'));
  try {
    const path = join(dir, 'f');
    writeFileSync(path, Uint8Array.from({ length: 64 }, (_, i) => i));
    const fd = openSync(path, 'r');
    try {
      const a = new Uint8Array(3);
      const b = new Uint8Array(2);
      // Bad buffer lists are refused before any read, naming the bad buffer.
      const bad = (buffers: unknown, re: RegExp, type: typeof TypeError | typeof RangeError): void =>
        assert.throws(() => preadNoWait(fd, buffers as Uint8Array[], 0), (e: unknown) => e instanceof type && re.test((e as Error).message));
      bad([], /0 buffers; 1 to \d+ allowed/, RangeError);
      bad(new Uint8Array(4), /must be an array of Uint8Array/, TypeError);
      bad([a, new DataView(new ArrayBuffer(4))], /buffer 1 is not a Uint8Array/, TypeError);
      bad([a, b, 'abc'], /buffer 2 is not a Uint8Array/, TypeError);
      const r = preadNoWait(fd, [a, b], 10);
      // Just written, so cached; a file system without RWF_NOWAIT (tmpfs) says so instead.
      if (r === 'unsupported') return;
      assert.is(r, 5);
      assert.equal([...a, ...b], [10, 11, 12, 13, 14]);
      assert.is(preadNoWait(fd, [new Uint8Array(8)], 60), 4, 'short at the end of the file');
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
