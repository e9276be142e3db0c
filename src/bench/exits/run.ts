// `tsvmm bench exits`: runs every variant interleaved (a, b, c, d, a, b, ...) `repeat` times and
// collects ns per exit into a BenchReport.
import { hostInfo } from '../../check/host.js';
import { BenchGuest } from './guest.js';
import type { LoopResult } from './handler.js';
import { koffiUnavailable } from './koffi.js';
import { EXIT_DESCRIPTIONS, HANDLER_LABELS, rowId, rungOf, type BenchReport, type BenchRow, type ExitKind, type Handler } from './model.js';
import { BenchRunError, WorkerVariant, runCxx, runHop, runInKernel } from './variants.js';

export interface ExitBenchOptions {
  iterations: number;
  repeat: number;
  /** Exits run untimed before each timed run (JIT warm-up); default min(1000, iterations). */
  warmup?: number;
  onProgress?: (done: number, total: number, label: string) => void;
}

const USER_EXITS: readonly ExitKind[] = ['pio', 'mmio'];
const USER_HANDLERS: readonly Handler[] = ['cxx', 'js-hop', 'js-worker', 'koffi'];
const KERNEL_EXITS: readonly ExitKind[] = ['cpuid', 'ioeventfd-pio', 'ioeventfd-mmio'];

function newRow(exit: ExitKind, handler: Handler, iterations: number): BenchRow {
  return {
    id: rowId(exit, handler),
    exit,
    handler,
    rung: rungOf(handler, exit),
    description: `${EXIT_DESCRIPTIONS[exit]}; ${HANDLER_LABELS[handler]}`,
    iterations,
    samplesNsPerExit: [],
  };
}

/** A report whose every row is skipped for one reason (e.g. no /dev/kvm). */
export function skippedReport(opts: ExitBenchOptions, reason: string): BenchReport {
  const rows = [...KERNEL_EXITS.map((e) => newRow(e, 'kernel', opts.iterations))];
  for (const e of USER_EXITS) for (const h of USER_HANDLERS) rows.push(newRow(e, h, opts.iterations));
  for (const r of rows) r.skipped = reason;
  return { tool: 'tsvmm bench exits', version: 1, startedAt: new Date().toISOString(), host: hostInfo(), iterations: opts.iterations, repeat: opts.repeat, rows };
}

export async function runExitBench(opts: ExitBenchOptions): Promise<BenchReport> {
  const { iterations, repeat } = opts;
  const warmup = opts.warmup ?? Math.min(1000, iterations);
  const startedAt = new Date().toISOString();
  const guest = new BenchGuest();
  const koffiMissing = koffiUnavailable();
  const workers: Partial<Record<Handler, WorkerVariant>> = { 'js-worker': new WorkerVariant(guest, 'addon') };
  if (!koffiMissing) workers.koffi = new WorkerVariant(guest, 'koffi');

  const rows = new Map<string, BenchRow>();
  const row = (exit: ExitKind, handler: Handler): BenchRow => {
    const id = rowId(exit, handler);
    let r = rows.get(id);
    if (!r) rows.set(id, (r = newRow(exit, handler, iterations)));
    return r;
  };
  if (koffiMissing) for (const e of USER_EXITS) row(e, 'koffi').skipped = koffiMissing;

  const total = repeat * (KERNEL_EXITS.length + USER_EXITS.length * USER_HANDLERS.length);
  let done = 0;
  const record = (exit: ExitKind, handler: Handler, result: LoopResult | undefined, checksum?: number): void => {
    const r = row(exit, handler);
    done++;
    opts.onProgress?.(done, total, r.id);
    if (!result) return;
    if (result.exits !== iterations) {
      throw new BenchRunError(`${r.id}: ran ${result.exits} of ${iterations} exits (stopped by exit reason ${result.stoppedBy ?? '?'})`);
    }
    if (checksum !== undefined && result.checksum !== checksum) {
      throw new BenchRunError(`${r.id}: checksum ${result.checksum} differs from the C++ floor's ${checksum}: the variants did not handle the same exits`);
    }
    r.samplesNsPerExit.push(result.elapsedNs / iterations);
  };

  try {
    for (let k = 0; k < repeat; k++) {
      for (const exit of KERNEL_EXITS) record(exit, 'kernel', runInKernel(guest, exit, iterations));
      for (const exit of USER_EXITS) {
        const floor = runCxx(guest, exit, warmup, iterations);
        record(exit, 'cxx', floor);
        record(exit, 'js-hop', await runHop(guest, exit, warmup, iterations), floor.checksum);
        for (const h of ['js-worker', 'koffi'] as const) {
          const w = workers[h];
          record(exit, h, w ? await w.run(exit, warmup, iterations) : undefined, floor.checksum);
        }
      }
    }
  } finally {
    await Promise.all(Object.values(workers).map((w) => w.close()));
    guest.dispose();
  }
  return { tool: 'tsvmm bench exits', version: 1, startedAt, host: hostInfo(), iterations, repeat, rows: [...rows.values()] };
}
