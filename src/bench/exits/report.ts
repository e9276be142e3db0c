/**
 * Summary, plain-text table, JSON form and JSON validation for the results of
 * `tsvmm bench exits`. Everything here is pure.
 */

import { describe } from '../stats.js';
import {
  type BenchReport,
  type BenchRow,
  type ExitKind,
  type Handler,
  type HostInfo,
  type Rung,
  isExitKind,
  isHandler,
  isKvmKind,
  isMeasured,
  isRung,
  rowId,
  rungOf,
  sortRows,
} from './model.js';

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/** Comparison with the C++ floor: the 'cxx' row of the same exit kind. */
export interface FloorComparison {
  /** id of the floor row, e.g. 'pio/cxx'. */
  floorId: string;
  floorMedianNs: number;
  /** median / floor median. */
  ratio: number;
  /** median - floor median: ns this handler adds per exit on top of C++. */
  fixedCostNs: number;
}

interface RowIdentity {
  id: string;
  exit: ExitKind;
  handler: Handler;
  rung: Rung;
  description: string;
}

export interface MeasuredRowSummary extends RowIdentity {
  status: 'measured';
  iterations: number;
  samples: number;
  medianNs: number;
  minNs: number;
  maxNs: number;
  q1Ns: number;
  q3Ns: number;
  iqrNs: number;
  /** (max - min) / median. */
  relativeSpread: number;
  /** 1e9 / median. */
  exitsPerSec: number;
  /** null when the same exit kind has no measured 'cxx' row. */
  floor: FloorComparison | null;
}

export interface SkippedRowSummary extends RowIdentity {
  status: 'skipped';
  reason: string;
}

export type RowSummary = MeasuredRowSummary | SkippedRowSummary;

export class ReportError extends Error {
  override readonly name: string = 'ReportError';
}

function identity(row: BenchRow): RowIdentity {
  return { id: row.id, exit: row.exit, handler: row.handler, rung: row.rung, description: row.description };
}

function floorRowFor(rows: readonly BenchRow[], exit: ExitKind): BenchRow | undefined {
  return rows.find((r) => r.exit === exit && r.handler === 'cxx' && isMeasured(r));
}

function measuredSummary(row: BenchRow, floor: BenchRow | undefined): MeasuredRowSummary {
  const d = describe(row.samplesNsPerExit);
  if (!(d.median > 0)) {
    throw new ReportError(`row ${row.id}: median ns per exit must be positive, got ${d.median}`);
  }
  let comparison: FloorComparison | null = null;
  if (floor !== undefined) {
    const floorMedian = describe(floor.samplesNsPerExit).median;
    if (floorMedian > 0) {
      comparison = {
        floorId: floor.id,
        floorMedianNs: floorMedian,
        ratio: d.median / floorMedian,
        fixedCostNs: d.median - floorMedian,
      };
    }
  }
  return {
    status: 'measured',
    ...identity(row),
    iterations: row.iterations,
    samples: d.n,
    medianNs: d.median,
    minNs: d.min,
    maxNs: d.max,
    q1Ns: d.q1,
    q3Ns: d.q3,
    iqrNs: d.iqr,
    relativeSpread: (d.max - d.min) / d.median,
    exitsPerSec: 1e9 / d.median,
    floor: comparison,
  };
}

/**
 * One summary per row, in display order (see model ROW_ORDER). A row is
 * 'skipped' when it carries a reason or has no samples.
 */
export function summarize(report: BenchReport): RowSummary[] {
  return sortRows(report.rows).map((row): RowSummary => {
    if (!isMeasured(row)) {
      return { status: 'skipped', ...identity(row), reason: row.skipped ?? 'no samples' };
    }
    return measuredSummary(row, floorRowFor(report.rows, row.exit));
  });
}

// ---------------------------------------------------------------------------
// Number formatting (shared with svg.ts)
// ---------------------------------------------------------------------------

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A plain ns figure: one decimal below 100, whole numbers with thousands separators above. */
export function formatNsPlain(ns: number): string {
  const sign = ns < 0 ? '-' : '';
  const a = Math.abs(ns);
  if (a < 100) return sign + a.toFixed(1);
  return sign + groupThousands(Math.round(a).toString());
}

/** Three significant digits, no exponent: 1.23, 12.3, 123, 1230. */
export function sig3(x: number): string {
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 100) return Math.round(x).toString();
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** A duration with its unit: '61.3 ns', '1.23 µs', '48.2 µs', '1.20 ms'. */
export function formatDuration(ns: number): string {
  const a = Math.abs(ns);
  if (a < 1e3) return `${sig3(ns)} ns`;
  if (a < 1e6) return `${sig3(ns / 1e3)} µs`;
  if (a < 1e9) return `${sig3(ns / 1e6)} ms`;
  return `${sig3(ns / 1e9)} s`;
}

/** A rate: '16.3M', '952k', '20.1k', '850'. */
export function formatRate(perSec: number): string {
  if (perSec >= 1e9) return `${sig3(perSec / 1e9)}G`;
  if (perSec >= 1e6) return `${sig3(perSec / 1e6)}M`;
  if (perSec >= 1e3) return `${sig3(perSec / 1e3)}k`;
  return sig3(perSec);
}

/** A ratio: '1.00x', '15.2x', '812x'. */
export function formatRatio(r: number): string {
  return `${sig3(r)}x`;
}

/** Added ns with an explicit sign: '+0.0', '+1,234', '-2.1'. */
export function formatAddedNs(ns: number): string {
  const s = formatNsPlain(ns);
  return ns < 0 ? s : `+${s}`;
}

// ---------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------

type Align = 'left' | 'right';

interface Column {
  title: string;
  align: Align;
}

const COLUMNS: readonly Column[] = [
  { title: 'exit', align: 'left' },
  { title: 'handler', align: 'left' },
  { title: 'rung', align: 'left' },
  { title: 'median ns', align: 'right' },
  { title: 'spread ns (min..max, IQR)', align: 'left' },
  { title: 'exits/s', align: 'right' },
  { title: 'vs C++', align: 'right' },
  { title: '+ns vs C++', align: 'right' },
];

/** Columns before the measurements; a skipped row's reason spans the rest. */
const IDENTITY_COLUMNS = 3;

type TableLine = { kind: 'cells'; cells: string[] } | { kind: 'skipped'; cells: string[]; reason: string } | { kind: 'gap' };

/** Collapses runs of whitespace (newlines included) so a free-text reason stays on its table line. */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function pad(s: string, width: number, align: Align): string {
  return align === 'left' ? s.padEnd(width) : s.padStart(width);
}

function spreadCell(s: MeasuredRowSummary): string {
  return `${formatNsPlain(s.minNs)}..${formatNsPlain(s.maxNs)} IQR ${formatNsPlain(s.iqrNs)}`;
}

function lineFor(s: RowSummary): TableLine {
  const ident = [s.exit, s.handler, s.rung];
  if (s.status === 'skipped') return { kind: 'skipped', cells: ident, reason: s.reason };
  return {
    kind: 'cells',
    cells: [
      ...ident,
      formatNsPlain(s.medianNs),
      spreadCell(s),
      formatRate(s.exitsPerSec),
      s.floor === null ? '-' : formatRatio(s.floor.ratio),
      s.floor === null ? '-' : formatAddedNs(s.floor.fixedCostNs),
    ],
  };
}

/** Table section: exits that stay in the kernel together, then one section per exit kind that reaches user space. */
function sectionOf(s: RowSummary): string {
  return s.rung === 'no-exit-to-user' || s.rung === 'in-kernel' ? 'kernel' : s.exit;
}

/** Summaries as table lines, with a blank line between sections. */
function tableLines(summaries: readonly RowSummary[]): TableLine[] {
  const out: TableLine[] = [];
  summaries.forEach((s, i) => {
    const prev = summaries[i - 1];
    if (prev !== undefined && sectionOf(prev) !== sectionOf(s)) out.push({ kind: 'gap' });
    out.push(lineFor(s));
  });
  return out;
}

function columnWidths(lines: readonly TableLine[]): number[] {
  return COLUMNS.map((c, i) =>
    lines.reduce((w, l) => {
      if (l.kind === 'gap') return w;
      const cell = l.cells[i];
      return cell === undefined ? w : Math.max(w, cell.length);
    }, c.title.length),
  );
}

function renderCells(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => pad(c, widths[i] ?? c.length, COLUMNS[i]?.align ?? 'left'))
    .join('  ')
    .trimEnd();
}

/** The header: host, which kind of /dev/kvm the numbers came from, and the run size. */
export function headerLines(report: BenchReport): string[] {
  const h = report.host;
  const detail = h.kvmDetail === '' ? '' : ` (${h.kvmDetail})`;
  return [
    `tsvmm bench exits on ${h.hostname}: /dev/kvm is ${h.kvmKind}${detail}`,
    `kernel ${h.kernel}, cpu ${h.cpuModel}, node ${h.node}, started ${report.startedAt}`,
    `${report.iterations} iterations x ${report.repeat} repeats; per row: median of the repeats' ns per exit`,
  ];
}

const FOOTER = [
  'vs C++: median / median of the C++ (cxx) row of the same exit kind.',
  '+ns vs C++: median - that C++ floor = ns the handler adds to every exit (carries between machines better than the ratio).',
];

/** A plain-text table, columns aligned, one line per row (skipped rows show their reason). */
export function formatTable(report: BenchReport): string {
  const lines = tableLines(summarize(report));
  const widths = columnWidths(lines);
  const titles = COLUMNS.map((c) => c.title);
  const rule = widths.map((w) => '-'.repeat(w));
  const body = lines.map((l) => {
    if (l.kind === 'gap') return '';
    const ident = renderCells(l.cells, widths);
    if (l.kind === 'cells') return ident;
    const identWidth = widths.slice(0, IDENTITY_COLUMNS).reduce((a, w) => a + w + 2, 0);
    return `${ident.padEnd(identWidth)}skipped: ${oneLine(l.reason)}`;
  });
  return [...headerLines(report), '', renderCells(titles, widths), renderCells(rule, widths), ...body, '', ...FOOTER].join('\n') + '\n';
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

function canonicalHost(h: HostInfo): HostInfo {
  return {
    hostname: h.hostname,
    kernel: h.kernel,
    cpuModel: h.cpuModel,
    kvmKind: h.kvmKind,
    kvmDetail: h.kvmDetail,
    node: h.node,
  };
}

function canonicalRow(r: BenchRow): BenchRow {
  const row: BenchRow = {
    id: r.id,
    exit: r.exit,
    handler: r.handler,
    rung: r.rung,
    description: r.description,
    iterations: r.iterations,
    samplesNsPerExit: [...r.samplesNsPerExit],
  };
  if (r.skipped !== undefined) row.skipped = r.skipped;
  return row;
}

function canonicalSummary(s: RowSummary): RowSummary {
  const ident = { id: s.id, exit: s.exit, handler: s.handler, rung: s.rung, description: s.description };
  if (s.status === 'skipped') return { status: 'skipped', ...ident, reason: s.reason };
  return {
    status: 'measured',
    ...ident,
    iterations: s.iterations,
    samples: s.samples,
    medianNs: s.medianNs,
    minNs: s.minNs,
    maxNs: s.maxNs,
    q1Ns: s.q1Ns,
    q3Ns: s.q3Ns,
    iqrNs: s.iqrNs,
    relativeSpread: s.relativeSpread,
    exitsPerSec: s.exitsPerSec,
    floor:
      s.floor === null
        ? null
        : { floorId: s.floor.floorId, floorMedianNs: s.floor.floorMedianNs, ratio: s.floor.ratio, fixedCostNs: s.floor.fixedCostNs },
  };
}

export interface ReportWithSummary extends BenchReport {
  summary: RowSummary[];
}

/** The report (rows in their original order) plus `summary` (display order); fixed key order, 2-space indent. */
export function toJson(report: BenchReport): string {
  const out: ReportWithSummary = {
    tool: report.tool,
    version: report.version,
    startedAt: report.startedAt,
    host: canonicalHost(report.host),
    iterations: report.iterations,
    repeat: report.repeat,
    rows: report.rows.map(canonicalRow),
    summary: summarize(report).map(canonicalSummary),
  };
  return JSON.stringify(out, null, 2) + '\n';
}

// ---------------------------------------------------------------------------
// Validation of saved JSON
// ---------------------------------------------------------------------------

/** A saved report did not have the expected shape; `path` names the field. */
export class ReportParseError extends ReportError {
  override readonly name = 'ReportParseError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`invalid bench report at ${path}: ${problem}`);
  }
}

type Obj = Record<string, unknown>;

function show(v: unknown): string {
  if (v === undefined) return 'undefined (missing)';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object' && v !== null) return 'an object';
  return String(v);
}

function fail(path: string, expected: string, got: unknown): never {
  throw new ReportParseError(path, `expected ${expected}, got ${show(got)}`);
}

function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object', v);
  return v as Obj;
}

function str(o: Obj, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(`${path}.${key}`, 'a string', v);
  return v;
}

function positiveInt(o: Obj, key: string, path: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) fail(`${path}.${key}`, 'a positive integer', v);
  return v;
}

function parseHost(v: unknown, path: string): HostInfo {
  const o = obj(v, path);
  const kvmKind = o['kvmKind'];
  if (!isKvmKind(kvmKind)) fail(`${path}.kvmKind`, "one of 'hardware', 'kvm-pvm', 'testbed', 'absent', 'unknown'", kvmKind);
  return {
    hostname: str(o, 'hostname', path),
    kernel: str(o, 'kernel', path),
    cpuModel: str(o, 'cpuModel', path),
    kvmKind,
    kvmDetail: str(o, 'kvmDetail', path),
    node: str(o, 'node', path),
  };
}

function parseSamples(v: unknown, path: string): number[] {
  if (!Array.isArray(v)) fail(path, 'an array of numbers', v);
  return v.map((x: unknown, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) fail(`${path}[${i}]`, 'a finite number > 0 (ns per exit)', x);
    return x;
  });
}

function parseRow(v: unknown, path: string): BenchRow {
  const o = obj(v, path);
  const exit = o['exit'];
  if (!isExitKind(exit)) fail(`${path}.exit`, 'an exit kind (pio, mmio, cpuid, ioeventfd-pio, ioeventfd-mmio)', exit);
  const handler = o['handler'];
  if (!isHandler(handler)) fail(`${path}.handler`, 'a handler (kernel, cxx, js-hop, js-worker, koffi)', handler);
  const id = str(o, 'id', path);
  if (id !== rowId(exit, handler)) fail(`${path}.id`, JSON.stringify(rowId(exit, handler)), id);
  const rung = o['rung'];
  if (!isRung(rung)) fail(`${path}.rung`, 'a rung (no-exit-to-user, in-kernel, c++, typescript)', rung);
  const expectedRung = rungOf(handler, exit);
  if (rung !== expectedRung) fail(`${path}.rung`, `${JSON.stringify(expectedRung)} for ${id}`, rung);
  const samples = parseSamples(o['samplesNsPerExit'], `${path}.samplesNsPerExit`);
  const row: BenchRow = {
    id,
    exit,
    handler,
    rung,
    description: str(o, 'description', path),
    iterations: positiveInt(o, 'iterations', path),
    samplesNsPerExit: samples,
  };
  if (o['skipped'] !== undefined) {
    row.skipped = str(o, 'skipped', path);
    if (samples.length > 0) fail(`${path}.samplesNsPerExit`, 'an empty array for a skipped row', samples);
  } else if (samples.length === 0) {
    fail(`${path}.samplesNsPerExit`, 'at least one sample (or a "skipped" reason)', samples);
  }
  return row;
}

/** Validates an already parsed value; returns a fresh BenchReport holding only the known fields. */
export function validateReport(value: unknown): BenchReport {
  const o = obj(value, '$');
  if (o['tool'] !== 'tsvmm bench exits') fail('$.tool', '"tsvmm bench exits"', o['tool']);
  if (o['version'] !== 1) fail('$.version', '1', o['version']);
  const startedAt = str(o, 'startedAt', '$');
  if (Number.isNaN(Date.parse(startedAt))) fail('$.startedAt', 'an ISO 8601 timestamp', startedAt);
  const rowsValue = o['rows'];
  if (!Array.isArray(rowsValue)) fail('$.rows', 'an array of rows', rowsValue);
  const rows = rowsValue.map((r: unknown, i) => parseRow(r, `$.rows[${i}]`));
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    if (seen.has(r.id)) fail(`$.rows[${i}].id`, 'an id not used by an earlier row', r.id);
    seen.add(r.id);
  });
  return {
    tool: 'tsvmm bench exits',
    version: 1,
    startedAt,
    host: parseHost(o['host'], '$.host'),
    iterations: positiveInt(o, 'iterations', '$'),
    repeat: positiveInt(o, 'repeat', '$'),
    rows,
  };
}

/** Parses a saved report (plain, or as written by toJson); throws ReportParseError naming the bad field. */
export function parseReport(json: string): BenchReport {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new ReportParseError('$', `not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return validateReport(value);
}
