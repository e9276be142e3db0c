import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  StatsError,
  describe,
  geomean,
  iqr,
  max,
  median,
  min,
  quantile,
  quartiles,
  relativeSpread,
} from '../../src/bench/stats.js';

const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 });
const samples = fc.array(finite, { minLength: 1, maxLength: 60 });
const positiveSamples = fc.array(fc.double({ noNaN: true, min: 1, max: 1e7 }), { minLength: 1, maxLength: 60 });

function throwsStats(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, StatsError);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a StatsError');
}

test('median of odd and even counts', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.is(median([7]), 7);
});

test('quartiles use linear interpolation between closest ranks (type 7)', () => {
  assert.equal(quartiles([1, 2, 3, 4, 5]), { q1: 2, median: 3, q3: 4 });
  assert.equal(quartiles([1, 2, 3, 4]), { q1: 1.75, median: 2.5, q3: 3.25 });
  assert.equal(quartiles([10]), { q1: 10, median: 10, q3: 10 });
  assert.is(quantile([0, 10], 0.3), 3);
  assert.is(iqr([1, 2, 3, 4]), 1.5);
});

test('min, max, relative spread', () => {
  assert.is(min([5, -2, 9]), -2);
  assert.is(max([5, -2, 9]), 9);
  assert.is(relativeSpread([90, 100, 110]), 0.2);
  assert.is(relativeSpread([50, 50]), 0);
});

test('describe gathers everything', () => {
  assert.equal(describe([4, 1, 3, 2]), {
    n: 4,
    min: 1,
    q1: 1.75,
    median: 2.5,
    q3: 3.25,
    max: 4,
    iqr: 1.5,
    relativeSpread: 3 / 2.5,
  });
  assert.is(describe([-1, 0, 0]).relativeSpread, null);
});

test('empty input is a typed error', () => {
  for (const fn of [median, min, max, quartiles, iqr, relativeSpread, describe]) {
    throwsStats(() => fn([]), /empty/);
  }
});

test('non-finite input names the value and its index', () => {
  throwsStats(() => median([1, Number.NaN]), /samples\[1\].*NaN/);
  throwsStats(() => max([Infinity]), /samples\[0\].*Infinity/);
});

test('bad quantile probability and non-positive median are typed errors', () => {
  throwsStats(() => quantile([1, 2], 1.5), /\[0, 1\].*1\.5/);
  throwsStats(() => relativeSpread([-3, -1]), /positive median.*-2/);
});

test('inputs are not mutated', () => {
  const xs = [3, 1, 2];
  describe(xs);
  median(xs);
  quartiles(xs);
  assert.equal(xs, [3, 1, 2]);
});

test('property: min <= q1 <= median <= q3 <= max, all within the data', () => {
  fc.assert(
    fc.property(samples, (xs) => {
      const d = describe(xs);
      const lo = Math.min(...xs);
      const hi = Math.max(...xs);
      return (
        d.min === lo &&
        d.max === hi &&
        d.min <= d.q1 &&
        d.q1 <= d.median &&
        d.median <= d.q3 &&
        d.q3 <= d.max &&
        d.iqr >= 0 &&
        d.n === xs.length
      );
    }),
  );
});

test('property: statistics do not depend on the order of the samples', () => {
  const withPermutation = samples.chain((xs) =>
    fc.tuple(fc.constant(xs), fc.shuffledSubarray(xs, { minLength: xs.length, maxLength: xs.length })),
  );
  fc.assert(
    fc.property(withPermutation, ([xs, perm]) => {
      assert.equal(describe(perm), describe(xs));
      assert.is(median(perm), median(xs));
    }),
  );
});

test('property: median of identical samples is that sample; spread is zero', () => {
  fc.assert(
    fc.property(fc.double({ noNaN: true, min: 1, max: 1e9 }), fc.integer({ min: 1, max: 20 }), (x, n) => {
      const xs = Array.from({ length: n }, () => x);
      return median(xs) === x && relativeSpread(xs) === 0 && iqr(xs) === 0;
    }),
  );
});

test('property: at least half the samples lie on each side of the median', () => {
  fc.assert(
    fc.property(samples, (xs) => {
      const m = median(xs);
      const atMost = xs.filter((x) => x <= m).length;
      const atLeast = xs.filter((x) => x >= m).length;
      return atMost * 2 >= xs.length && atLeast * 2 >= xs.length;
    }),
  );
});

test('property: relative spread is (max - min) / median and non-negative', () => {
  fc.assert(
    fc.property(positiveSamples, (xs) => {
      const r = relativeSpread(xs);
      return r >= 0 && Math.abs(r - (max(xs) - min(xs)) / median(xs)) <= 1e-12 * Math.max(1, r);
    }),
  );
});

test('geomean: of ratios, and refuses what has no logarithm', () => {
  assert.ok(Math.abs(geomean([2, 8]) - 4) < 1e-12);
  assert.throws(() => geomean([]), /at least one/);
  assert.throws(() => geomean([1, 0]), /positive/);
});

test.run();
