/**
 * Small, pure descriptive statistics for benchmark samples.
 *
 * Every function validates its input: an empty array, or one holding a value
 * that is not a finite number, throws a {@link StatsError} that names the
 * offending value and its index. Inputs are never mutated.
 *
 * Quantile method: linear interpolation between closest ranks, i.e. Hyndman &
 * Fan type 7 (the default of R's `quantile`, NumPy's `percentile` and
 * spreadsheet `QUARTILE.INC`). For sorted samples x[0..n-1] and probability
 * p, the position is h = (n - 1) * p and the quantile is
 * x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
 * So q1 = quantile(0.25), median = quantile(0.5), q3 = quantile(0.75), and
 * for a single sample all of them equal that sample.
 */

export class StatsError extends Error {
  override readonly name = 'StatsError';
}

/** Throws unless `xs` is a non-empty array of finite numbers. */
export function assertSamples(xs: readonly number[], what = 'samples'): void {
  if (!Array.isArray(xs)) {
    throw new StatsError(`${what}: expected an array of numbers, got ${typeof xs}`);
  }
  if (xs.length === 0) {
    throw new StatsError(`${what}: expected at least one sample, got an empty array`);
  }
  xs.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new StatsError(`${what}[${i}]: expected a finite number, got ${String(x)}`);
    }
  });
}

/** A sorted copy (ascending), after validation. */
export function sortedCopy(xs: readonly number[]): number[] {
  assertSamples(xs);
  return [...xs].sort((a, b) => a - b);
}

export function min(xs: readonly number[]): number {
  assertSamples(xs);
  return xs.reduce((m, x) => (x < m ? x : m), xs[0] as number);
}

export function max(xs: readonly number[]): number {
  assertSamples(xs);
  return xs.reduce((m, x) => (x > m ? x : m), xs[0] as number);
}

/** Type-7 quantile of already sorted samples; `p` in [0, 1]. */
function quantileOfSorted(sorted: readonly number[], p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  const t = h - lo;
  if (t === 0 || a === b) return a;
  const v = a + (b - a) * t;
  // Rounding may overshoot by an ulp; keep the result inside [a, b] so the
  // ordering min <= q1 <= median <= q3 <= max holds exactly.
  return Math.min(Math.max(v, a), b);
}

/** Type-7 quantile (see module comment); `p` must be in [0, 1]. */
export function quantile(xs: readonly number[], p: number): number {
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw new StatsError(`quantile: probability must be within [0, 1], got ${String(p)}`);
  }
  return quantileOfSorted(sortedCopy(xs), p);
}

export function median(xs: readonly number[]): number {
  return quantileOfSorted(sortedCopy(xs), 0.5);
}

export interface Quartiles {
  q1: number;
  median: number;
  q3: number;
}

/** First quartile, median and third quartile (type 7, see module comment). */
export function quartiles(xs: readonly number[]): Quartiles {
  const s = sortedCopy(xs);
  return {
    q1: quantileOfSorted(s, 0.25),
    median: quantileOfSorted(s, 0.5),
    q3: quantileOfSorted(s, 0.75),
  };
}

/** Interquartile range q3 - q1 (>= 0). */
export function iqr(xs: readonly number[]): number {
  const q = quartiles(xs);
  return q.q3 - q.q1;
}

/**
 * Relative spread (max - min) / median: 0 when all samples agree, 0.1 when
 * the range is 10% of the median. Needs a positive median.
 */
export function relativeSpread(xs: readonly number[]): number {
  const m = median(xs);
  if (!(m > 0)) {
    throw new StatsError(`relative spread: needs a positive median, got ${m}`);
  }
  return (max(xs) - min(xs)) / m;
}

/** The geometric mean of positive numbers (the mean of ratios that treats 2x and 0.5x alike). */
export function geomean(xs: readonly number[]): number {
  assertSamples(xs, 'geomean');
  if (xs.some((x) => x <= 0)) throw new StatsError(`geomean: expected positive numbers, got ${xs.join(', ')}`);
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

export interface Description {
  n: number;
  min: number;
  q1: number;
  median: number;
  q3: number;
  max: number;
  iqr: number;
  /** (max - min) / median, or null when the median is not positive. */
  relativeSpread: number | null;
}

/** All of the above in one pass over a single sorted copy. */
export function describe(xs: readonly number[]): Description {
  const s = sortedCopy(xs);
  const lo = s[0] as number;
  const hi = s[s.length - 1] as number;
  const q1 = quantileOfSorted(s, 0.25);
  const med = quantileOfSorted(s, 0.5);
  const q3 = quantileOfSorted(s, 0.75);
  return {
    n: s.length,
    min: lo,
    q1,
    median: med,
    q3,
    max: hi,
    iqr: q3 - q1,
    relativeSpread: med > 0 ? (hi - lo) / med : null,
  };
}
