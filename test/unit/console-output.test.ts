// The console writer of the vCPU threads: a full, non-blocking pipe makes it wait, not fail.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeAll } from '../../src/machine/console-output.js';

test('writeAll waits out EAGAIN on a non-blocking pipe whose reader is slow, and loses nothing', async () => {
  // The reader starts reading only after 300 ms; 1 MiB is far more than a pipe buffer (64 KiB),
  // so write(2) on Node's non-blocking pipe fails with EAGAIN until then.
  const child = spawn(process.execPath, ['-e', `
    const h = require('node:crypto').createHash('sha256'); let n = 0;
    setTimeout(() => { process.stdin.on('data', (d) => { h.update(d); n += d.length; }); process.stdin.on('end', () => process.stdout.write(n + ' ' + h.digest('hex'))); }, 300);`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const fd = (child.stdin as unknown as { _handle: { fd: number } })._handle.fd; // the pipe's fd: what the vCPU threads write to
  const data = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  try {
    writeAll(fd, data); // blocks this thread until the reader has drained enough
  } finally {
    child.stdin.end();
  }
  await new Promise((r) => child.on('close', r));
  assert.is(out, `${data.byteLength} ${createHash('sha256').update(data).digest('hex')}`);
});

test.run();
