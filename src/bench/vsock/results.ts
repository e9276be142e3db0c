// What the vsock benchmark (bench/vsock.ts) reads back and reports: the lines test/guest/vsockt.c
// prints (on either side of a connection), the guest's interrupt marks, and the figures made of
// them. Pure functions; a line that does not match is skipped, a matching line with a bad field
// throws (a benchmark must not report a figure it misread).

/** One `VSOCKT-RESULT` line: a connection that ended. */
export interface ConnResult {
  conn: number;
  mode: string;
  sent: number;
  received: number;
  ok: boolean;
  ms: number;
  error?: string;
}

/** The `VSOCKT-LATENCY` line: connection set-up to the peer's first byte, microseconds. */
export interface Latency {
  rounds: number;
  failed: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Median time until the connection was set up (hybrid: the OK line read), before the first byte. */
  connectedP50: number;
}

export class BenchOutputError extends Error {
  override readonly name = 'BenchOutputError';
}

function lines(text: string, prefix: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.startsWith(prefix));
}

function field(line: string, key: string): string {
  const m = new RegExp(`(?:^| )${key}=(\\S+)`).exec(line);
  if (!m?.[1]) throw new BenchOutputError(`no ${key}= in ${JSON.stringify(line)}`);
  return m[1];
}

function numeric(line: string, key: string): number {
  const v = Number(field(line, key));
  if (!Number.isFinite(v) || v < 0) throw new BenchOutputError(`${key}= is not a number in ${JSON.stringify(line)}`);
  return v;
}

export function parseConnResults(text: string): ConnResult[] {
  return lines(text, 'VSOCKT-RESULT ').map((l) => {
    const error = / error=(.*)$/.exec(l)?.[1];
    return {
      conn: numeric(l, 'conn'),
      mode: field(l, 'mode'),
      sent: numeric(l, 'sent'),
      received: numeric(l, 'received'),
      ok: field(l, 'ok') === '1',
      ms: numeric(l, 'ms'),
      ...(error === undefined ? {} : { error }),
    };
  });
}

export function parseLatency(text: string): Latency | undefined {
  const l = lines(text, 'VSOCKT-LATENCY ')[0];
  if (l === undefined) return undefined;
  return { rounds: numeric(l, 'rounds'), failed: numeric(l, 'failed'), p50: numeric(l, 'p50'), p90: numeric(l, 'p90'), p99: numeric(l, 'p99'), max: numeric(l, 'max'), connectedP50: numeric(l, 'connected-p50') };
}

/** `VSB-MARK <label> <count>` lines the guest script prints: its vsock device's interrupts so far. */
export function parseMarks(text: string): Map<string, number> {
  const marks = new Map<string, number>();
  for (const l of lines(text, 'VSB-MARK ')) {
    const [, label, count] = l.split(' ');
    const n = Number(count);
    if (label === undefined || count === undefined || !Number.isInteger(n) || n < 0) throw new BenchOutputError(`bad mark ${JSON.stringify(l)}`);
    marks.set(label, n);
  }
  return marks;
}

/**
 * A stream test's figure from the receiving or sending side's results: every connection must
 * have moved `bytesPerConn` and ended ok; the rate is all bytes over the slowest connection's
 * time (the connections start together).
 */
export function throughput(results: readonly ConnResult[], conns: number, bytesPerConn: number, side: 'sent' | 'received'): { mibps: number; ms: number } {
  if (results.length !== conns) throw new BenchOutputError(`${results.length} connections ended, not ${conns}`);
  for (const r of results) {
    if (!r.ok) throw new BenchOutputError(`connection ${r.conn} failed: ${r.error ?? 'not ok'}`);
    if (r[side] !== bytesPerConn) throw new BenchOutputError(`connection ${r.conn} ${side} ${r[side]} bytes, not ${bytesPerConn}`);
  }
  const ms = Math.max(...results.map((r) => r.ms));
  if (ms <= 0) throw new BenchOutputError('a stream test took no time');
  return { mibps: (conns * bytesPerConn) / (1024 * 1024) / (ms / 1000), ms };
}
