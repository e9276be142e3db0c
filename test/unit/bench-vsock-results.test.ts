// The vsock benchmark's readers of vsockt's lines and its throughput figure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BenchOutputError, parseConnResults, parseLatency, parseMarks, throughput } from '../../src/bench/vsock/results.js';

const OUT = [
  'VSOCKT-LISTENING path=/tmp/x_6004\r',
  'VSOCKT-RESULT conn=1 mode=sink sent=0 received=4194304 ok=1 ms=250.0\r',
  'VSOCKT-RESULT conn=0 mode=sink sent=0 received=4194304 ok=1 ms=500.0',
  'noise VSOCKT-RESULT conn=9',
  'VSOCKT-DONE ok=1',
].join('\n');

test('connection results: every line with its fields, console CRs and other lines ignored', () => {
  const r = parseConnResults(OUT);
  assert.equal(r.map((x) => [x.conn, x.mode, x.received, x.ok, x.ms]), [
    [1, 'sink', 4194304, true, 250],
    [0, 'sink', 4194304, true, 500],
  ]);
});

test('a failed connection keeps its error text', () => {
  const [r] = parseConnResults('VSOCKT-RESULT conn=0 mode=send sent=5 received=0 ok=0 ms=1.5 error=send: Broken pipe');
  assert.is(r?.ok, false);
  assert.is(r?.error, 'send: Broken pipe');
});

test('throughput: all bytes over the slowest connection', () => {
  const t = throughput(parseConnResults(OUT), 2, 4194304, 'received');
  assert.is(t.ms, 500);
  assert.is(t.mibps, 16);
});

test('throughput refuses a short, failed or missing connection', () => {
  assert.throws(() => throughput(parseConnResults(OUT), 4, 4194304, 'received'), (e: unknown) => e instanceof BenchOutputError && /2 connections ended, not 4/.test(e.message));
  assert.throws(() => throughput(parseConnResults(OUT), 2, 8388608, 'received'), /received 4194304 bytes, not 8388608/);
  assert.throws(() => throughput(parseConnResults('VSOCKT-RESULT conn=0 mode=sink sent=0 received=1 ok=0 ms=1 error=recv: x'), 1, 1, 'received'), /failed: recv: x/);
});

test('a matching line with a bad number throws instead of being averaged', () => {
  assert.throws(() => parseConnResults('VSOCKT-RESULT conn=0 mode=sink sent=0 received=abc ok=1 ms=1'), (e: unknown) => e instanceof BenchOutputError);
  assert.throws(() => parseMarks('VSB-MARK g2h-1-begin -3'), (e: unknown) => e instanceof BenchOutputError);
});

test('latency and marks', () => {
  assert.equal(parseLatency('x\nVSOCKT-LATENCY rounds=50 failed=0 p50=190 p90=243 p99=458 max=1376 connected-p50=120\r\n'), { rounds: 50, failed: 0, p50: 190, p90: 243, p99: 458, max: 1376, connectedP50: 120 });
  assert.is(parseLatency('nothing'), undefined);
  assert.equal([...parseMarks('VSB-MARK g2h-1-begin 10\r\nVSB-MARK g2h-1-end 42\n')], [['g2h-1-begin', 10], ['g2h-1-end', 42]]);
});

test.run();
