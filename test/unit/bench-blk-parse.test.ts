// The block benchmark's reading of test/guest/blkbench.c's console lines (src/bench/blk/parse.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseGuestOutput } from '../../src/bench/blk/parse.js';
import { formatPairedTable, formatTable, ratioPairs, summarise, type VmmRun } from '../../src/bench/blk/report.js';

const line = (kind: string, test: string, iops: number): string =>
  `BLKBENCH-${kind} test=${test} bs=4096 qd=1 ops=${iops * 2} bytes=${iops * 8192} seconds=2.000000 iops=${iops}.0 mibps=1.000 requests=${iops * 2} interrupts=${iops * 2} segments=1\r`;

/** One boot of `variant` in `round` whose random-read test did `iops`. */
const run = (variant: string, round: number, iops: number): VmmRun => ({
  variant,
  round,
  wallMs: 1,
  guest: parseGuestOutput([line('RESULT', 'randread', iops), 'blkbench: done'].join('\n')),
});

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
  assert.equal(run.results.map((r) => r.segments), [1, 1]);
  assert.ok(run.done);
});

test('parseGuestOutput: without -w there are no warm-ups; a bad field throws', () => {
  const run = parseGuestOutput([line('RESULT', 'randwrite', 10), 'blkbench: done'].join('\n'));
  assert.is(run.results.length, 1);
  assert.is(run.warmups.length, 0);
  assert.throws(() => parseGuestOutput('BLKBENCH-WARM test=randread bs=4096 qd=1 ops=x'), /numeric/);
  assert.throws(() => parseGuestOutput(line('WARM', 'sideways', 1)), /unknown test/);
  // A line without segments= (a blkbench from before -l) is refused, not read as 0 segments.
  assert.throws(() => parseGuestOutput(line('RESULT', 'randread', 1).replace(' segments=1', '')), /numeric segments/);
});

test('summarise: every tsvmm variant gets a ratio against every peer, keyed ours/peer', () => {
  const names = ['tsvmm', 'tsvmm-direct', 'qemu-none', 'qemu-writeback'];
  assert.equal(ratioPairs(names).map(([k]) => k), ['tsvmm/qemu-none', 'tsvmm/qemu-writeback', 'tsvmm-direct/qemu-none', 'tsvmm-direct/qemu-writeback']);
  const runs = [run('tsvmm', 0, 300), run('tsvmm', 1, 500), run('tsvmm-direct', 0, 200), run('tsvmm-direct', 1, 200), run('qemu-none', 0, 100), run('qemu-none', 1, 100), run('qemu-writeback', 0, 400), run('qemu-writeback', 1, 400)];
  const [f] = summarise(runs, names);
  assert.equal(f?.ratios, { 'tsvmm/qemu-none': 4, 'tsvmm/qemu-writeback': 1, 'tsvmm-direct/qemu-none': 2, 'tsvmm-direct/qemu-writeback': 0.5 });
  const table = formatTable(summarise(runs, names), names).split('\n');
  assert.match(table[0] ?? '', /tsvmm-direct\/qemu-none/);
  assert.match(table[2] ?? '', /\| +2\.00x \|/);
});

test('summarise: paired ratios are taken round by round, and their geometric mean summarises them', () => {
  // tsvmm is 2x QEMU on machine 0 and 0.5x on machine 1: each round's ratio compares two runs on
  // one machine. Round 2 lacks QEMU (a discarded boot): it has no ratio.
  const runs = [run('tsvmm', 0, 400), run('qemu-writeback', 0, 200), run('tsvmm', 1, 100), run('qemu-writeback', 1, 200), run('tsvmm', 2, 999)];
  const names = ['tsvmm', 'qemu-writeback'];
  const [f] = summarise(runs, names);
  const p = f?.pairedRatios['tsvmm/qemu-writeback'];
  assert.equal(p?.perRound, [2, 0.5]);
  assert.is(p?.geomean, 1);
  assert.is(p?.min, 0.5);
  assert.is(p?.max, 2);
  assert.match(formatPairedTable(summarise(runs, names), names).split('\n')[2] ?? '', /1\.00x \[0\.50-2\.00\]: 2\.00 0\.50/);
});

test.run();
