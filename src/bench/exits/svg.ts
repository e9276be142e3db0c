/**
 * A self-contained SVG bar chart of a `tsvmm bench exits` report: one
 * horizontal bar per measured row, grouped by exit kind, bar length = median
 * ns per exit on a log10 axis, a whisker for min..max, value and ratio vs the
 * C++ floor at the bar end, colour by rung. Pure; no dependencies.
 */

import {
  type BenchReport,
  type ExitKind,
  type Rung,
  EXIT_DESCRIPTIONS,
  EXIT_LABELS,
  HANDLER_LABELS,
  RUNGS,
  RUNG_LABELS,
} from './model.js';
import { type MeasuredRowSummary, type RowSummary, formatDuration, formatRatio, summarize } from './report.js';

export const RUNG_COLOURS: Readonly<Record<Rung, string>> = {
  'no-exit-to-user': '#2a9d8f',
  'in-kernel': '#4a7fb5',
  'c++': '#8e6bbf',
  typescript: '#e07a3f',
};

/** Escapes text for use in XML character data and attribute values. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

// Layout (px).
const WIDTH = 1000;
const PLOT_LEFT = 190;
const PLOT_RIGHT = WIDTH - 190;
const TOP = 118;
const GROUP_HEADER = 26;
const ROW_H = 22;
const BAR_H = 12;
const GROUP_GAP = 10;
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
/** Generous average glyph width / font size, for fitting text. */
const GLYPH = 0.6;

/** Shortens `s` with an ellipsis so it fits about `px` at `fontSize`. */
function fit(s: string, px: number, fontSize: number): string {
  const maxChars = Math.max(1, Math.floor(px / (fontSize * GLYPH)));
  return s.length <= maxChars ? s : `${s.slice(0, maxChars - 1)}…`;
}

function textWidth(s: string, fontSize: number): number {
  return s.length * fontSize * GLYPH;
}

function num(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

interface TextOpts {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'bold' | 'normal';
  fill?: string;
  italic?: boolean;
}

function text(x: number, y: number, content: string, o: TextOpts = {}): string {
  const attrs = [
    `x="${num(x)}"`,
    `y="${num(y)}"`,
    `font-size="${o.size ?? 12}"`,
    o.anchor !== undefined && o.anchor !== 'start' ? `text-anchor="${o.anchor}"` : '',
    o.weight === 'bold' ? 'font-weight="bold"' : '',
    o.italic === true ? 'font-style="italic"' : '',
    `fill="${o.fill ?? '#222'}"`,
  ].filter((a) => a !== '');
  return `<text ${attrs.join(' ')}>${escapeXml(content)}</text>`;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1): string {
  return `<line x1="${num(x1)}" y1="${num(y1)}" x2="${num(x2)}" y2="${num(y2)}" stroke="${stroke}" stroke-width="${width}"/>`;
}

/** Log10 axis over whole decades [10^loExp, 10^hiExp]. */
export interface Axis {
  loExp: number;
  hiExp: number;
}

/** Decades enclosing all values, with the lowest strictly below the smallest value so every bar has length. */
export function axisFor(values: readonly number[]): Axis {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  if (positive.length === 0) return { loExp: 1, hiExp: 5 };
  const lo = Math.min(...positive);
  const hi = Math.max(...positive);
  let loExp = Math.floor(Math.log10(lo));
  if (10 ** loExp >= lo) loExp -= 1;
  let hiExp = Math.ceil(Math.log10(hi));
  if (hiExp <= loExp) hiExp = loExp + 1;
  return { loExp, hiExp };
}

function xOf(axis: Axis, ns: number): number {
  const l = Math.log10(Math.max(ns, 10 ** axis.loExp));
  const t = (l - axis.loExp) / (axis.hiExp - axis.loExp);
  return PLOT_LEFT + Math.min(1, t) * (PLOT_RIGHT - PLOT_LEFT);
}

/** '10 ns', '100 ns', '1 µs', '10 µs', '1 ms'. */
export function decadeLabel(exp: number): string {
  const units: readonly [number, string][] = [
    [9, 's'],
    [6, 'ms'],
    [3, 'µs'],
    [0, 'ns'],
  ];
  const found = units.find(([e]) => exp >= e);
  const [e, unit] = found ?? [0, 'ns'];
  const value = exp >= 0 ? (10 ** (exp - e)).toString() : (10 ** exp).toString();
  return `${value} ${unit}`;
}

interface Group {
  exit: ExitKind;
  rows: RowSummary[];
}

function groupByExit(summaries: readonly RowSummary[]): Group[] {
  const groups: Group[] = [];
  for (const s of summaries) {
    const last = groups[groups.length - 1];
    if (last !== undefined && last.exit === s.exit) last.rows.push(s);
    else groups.push({ exit: s.exit, rows: [s] });
  }
  return groups;
}

/** Value at the bar end, then (greyed) the ratio vs the C++ floor when there is one. */
function endLabel(x: number, y: number, s: MeasuredRowSummary): string {
  const value = escapeXml(formatDuration(s.medianNs));
  const ratio =
    s.floor === null ? '' : s.floor.floorId === s.id ? 'C++ floor' : `${formatRatio(s.floor.ratio).replace(/x$/, '×')} vs C++`;
  const tail = ratio === '' ? '' : `<tspan dx="8" fill="#666">${escapeXml(ratio)}</tspan>`;
  return `<text x="${num(x)}" y="${num(y)}" font-size="11" fill="#222"><tspan font-weight="bold">${value}</tspan>${tail}</text>`;
}

function measuredRow(axis: Axis, s: MeasuredRowSummary, y: number): string[] {
  const colour = RUNG_COLOURS[s.rung];
  const cy = y + ROW_H / 2;
  const xEnd = xOf(axis, s.medianNs);
  const xMin = xOf(axis, s.minNs);
  const xMax = xOf(axis, s.maxNs);
  const tip = `${s.id}: ${s.description}\nmedian ${formatDuration(s.medianNs)}, min ${formatDuration(s.minNs)}, max ${formatDuration(s.maxNs)}, n=${s.samples}`;
  return [
    `<g class="row" data-id="${escapeXml(s.id)}">`,
    `<title>${escapeXml(tip)}</title>`,
    `<rect class="bar" x="${num(PLOT_LEFT)}" y="${num(cy - BAR_H / 2)}" width="${num(Math.max(1, xEnd - PLOT_LEFT))}" height="${BAR_H}" fill="${colour}"/>`,
    line(xMin, cy, xMax, cy, '#333', 1.2),
    line(xMin, cy - 5, xMin, cy + 5, '#333', 1.2),
    line(xMax, cy - 5, xMax, cy + 5, '#333', 1.2),
    endLabel(Math.max(xEnd, xMax) + 6, cy + 4, s),
    '</g>',
  ];
}

function skippedRow(s: RowSummary & { status: 'skipped' }, y: number): string[] {
  const msg = `skipped: ${s.reason}`;
  return [
    `<g class="skipped" data-id="${escapeXml(s.id)}">`,
    `<title>${escapeXml(`${s.id}: ${s.description}\n${msg}`)}</title>`,
    text(PLOT_LEFT + 6, y + ROW_H / 2 + 4, fit(msg, WIDTH - PLOT_LEFT - 16, 11), { size: 11, italic: true, fill: '#888' }),
    '</g>',
  ];
}

function groupBlock(axis: Axis, g: Group, top: number): { parts: string[]; height: number } {
  const label = EXIT_LABELS[g.exit];
  const desc = fit(EXIT_DESCRIPTIONS[g.exit], WIDTH - 48 - textWidth(label, 13), 12);
  const parts = [
    // A white band under the header interrupts the gridlines, so each exit kind reads as its own panel.
    `<rect x="0" y="${num(top)}" width="${WIDTH}" height="${GROUP_HEADER - 2}" fill="#fff"/>`,
    `<text x="16" y="${num(top + 17)}" font-size="13" fill="#222"><tspan font-weight="bold">${escapeXml(label)}</tspan>` +
      `<tspan dx="10" font-size="12" fill="#666">${escapeXml(desc)}</tspan></text>`,
  ];
  g.rows.forEach((s, i) => {
    const y = top + GROUP_HEADER + i * ROW_H;
    parts.push(text(PLOT_LEFT - 8, y + ROW_H / 2 + 4, fit(HANDLER_LABELS[s.handler], PLOT_LEFT - 40, 12), { anchor: 'end' }));
    parts.push(...(s.status === 'measured' ? measuredRow(axis, s, y) : skippedRow(s, y)));
  });
  return { parts, height: GROUP_HEADER + g.rows.length * ROW_H + GROUP_GAP };
}

function gridlines(axis: Axis, top: number, bottom: number): string[] {
  const parts: string[] = [];
  for (let e = axis.loExp; e <= axis.hiExp; e++) {
    const x = xOf(axis, 10 ** e);
    parts.push(line(x, top, x, bottom, '#bbb', 1));
    parts.push(text(x, bottom + 16, decadeLabel(e), { size: 11, anchor: 'middle', fill: '#444' }));
    if (e < axis.hiExp) {
      for (let m = 2; m <= 9; m++) {
        const xm = xOf(axis, m * 10 ** e);
        parts.push(line(xm, top, xm, bottom, '#eee', 1));
      }
    }
  }
  return parts;
}

function legend(y: number): string[] {
  const parts: string[] = [];
  let x = 16;
  for (const r of RUNGS) {
    const label = RUNG_LABELS[r];
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${RUNG_COLOURS[r]}"/>`);
    parts.push(text(x + 18, y, label, { size: 12 }));
    x += 18 + textWidth(label, 12) + 22;
  }
  parts.push(line(x + 4, y - 4, x + 28, y - 4, '#333', 1.2));
  parts.push(line(x + 4, y - 9, x + 4, y + 1, '#333', 1.2));
  parts.push(line(x + 28, y - 9, x + 28, y + 1, '#333', 1.2));
  parts.push(text(x + 34, y, 'min..max', { size: 12 }));
  return parts;
}

/** The whole chart as a standalone SVG document. */
export function renderSvg(report: BenchReport): string {
  const summaries = summarize(report);
  const measured = summaries.filter((s): s is MeasuredRowSummary => s.status === 'measured');
  const axis = axisFor(measured.flatMap((s) => [s.minNs, s.maxNs, s.medianNs]));
  const h = report.host;

  const body: string[] = [];
  let y = TOP;
  for (const g of groupByExit(summaries)) {
    const block = groupBlock(axis, g, y);
    body.push(...block.parts);
    y += block.height;
  }
  if (summaries.length === 0) {
    body.push(text(PLOT_LEFT + 6, y + 20, 'no rows in this report', { size: 12, italic: true, fill: '#888' }));
    y += 40;
  }
  const plotBottom = y;
  const height = plotBottom + 70;

  const title = `VM exit cost by handler — ${h.hostname}, /dev/kvm: ${h.kvmKind}`;
  const detail = h.kvmDetail === '' ? '' : `${h.kvmDetail} · `;
  const subtitle = `${detail}kernel ${h.kernel} · ${h.cpuModel} · node ${h.node}`;
  const runLine = `${report.iterations} exits per repetition × ${report.repeat} repetitions · started ${report.startedAt}`;
  const note = 'bar: median ns per exit over the repeats (log scale); whisker: min..max; ratio: vs the C++ row of the same exit kind';

  const parts = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${num(height)}" viewBox="0 0 ${WIDTH} ${num(height)}" font-family="${FONT}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${WIDTH}" height="${num(height)}" fill="#fff"/>`,
    text(16, 28, fit(title, WIDTH - 32, 17), { size: 17, weight: 'bold' }),
    text(16, 50, fit(subtitle, WIDTH - 32, 11), { size: 11, fill: '#555' }),
    text(16, 66, fit(runLine, WIDTH - 32, 11), { size: 11, fill: '#555' }),
    ...legend(94),
    ...gridlines(axis, TOP, plotBottom),
    line(PLOT_LEFT, TOP, PLOT_LEFT, plotBottom, '#666', 1),
    ...body,
    text((PLOT_LEFT + PLOT_RIGHT) / 2, plotBottom + 36, 'ns per exit (log10 scale)', { size: 12, anchor: 'middle', fill: '#444' }),
    text(16, plotBottom + 58, fit(note, WIDTH - 32, 11), { size: 11, fill: '#666' }),
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}
