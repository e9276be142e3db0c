// The block benchmark's reading of test/guest/blkbench.c's console lines (src/bench/blk/parse.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseGuestOutput } from '../../src/bench/blk/parse.js';

const line = (kind: string, test: string, iops: number): string =>
  `BLKBENCH-${kind} test=${test} bs=4096 qd=1 ops=${iops * 2} bytes=${iops * 8192} seconds=2.000000 iops=${iops}.0 mibps=1.000 requests=${iops * 2} interrupts=${iops * 2}\r`;

test('parseGuestOutput: warm-up lines are kept apart from the timed results', () => {
  const console = [
    '/ # /mnt/t/blkbench -w 2 /dev/vda 3 randread seqread',
    'BLKBENCH-DEVICE path=/dev/vda bytes=268435456 irq=virtio0\r',
    line('WARM', 'randread', 150),
    line('RESULT', 'randread', 400),
    line('WARM', 'seqread', 50),
    line('RESULT', 'seqread', 90),
    'blkbench: done\r',
  ].join('\n');
  const run = parseGuestOutput(console);
  assert.equal(run.device, { path: '/dev/vda', bytes: 268435456, irq: 'virtio0' });
  assert.equal(run.results.map((r) => [r.test, r.iops]), [['randread', 400], ['seqread', 90]]);
  assert.equal(run.warmups.map((r) => [r.test, r.iops]), [['randread', 150], ['seqread', 50]]);
  assert.ok(run.done);
});

test('parseGuestOutput: without -w there are no warm-ups; a bad field throws', () => {
  const run = parseGuestOutput([line('RESULT', 'randwrite', 10), 'blkbench: done'].join('\n'));
  assert.is(run.results.length, 1);
  assert.is(run.warmups.length, 0);
  assert.throws(() => parseGuestOutput('BLKBENCH-WARM test=randread bs=4096 qd=1 ops=x'), /numeric/);
  assert.throws(() => parseGuestOutput(line('WARM', 'sideways', 1)), /unknown test/);
});

test.run();
