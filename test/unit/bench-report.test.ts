import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  type BenchReport,
  type BenchRow,
  type ExitKind,
  type Handler,
  type Rung,
  ModelError,
  ROW_ORDER,
  rowId,
  rungOf,
  sortRows,
} from '../../src/bench/exits/model.js';
import {
  type MeasuredRowSummary,
  type RowSummary,
  ReportParseError,
  formatDuration,
  formatTable,
  oneLine,
  parseReport,
  summarize,
  toJson,
} from '../../src/bench/exits/report.js';
import { decadeLabel, escapeXml, renderSvg } from '../../src/bench/exits/svg.js';

function row(exit: ExitKind, handler: Handler, samples: number[], skipped?: string): BenchRow {
  const r: BenchRow = {
    id: rowId(exit, handler),
    exit,
    handler,
    rung: rungOf(handler, exit),
    description: `${exit} handled by ${handler}`,
    iterations: 100000,
    samplesNsPerExit: samples,
  };
  if (skipped !== undefined) r.skipped = skipped;
  return r;
}

function sampleReport(): BenchReport {
  return {
    tool: 'tsvmm bench exits',
    version: 1,
    startedAt: '2025-06-01T12:00:00.000Z',
    host: {
      hostname: 'box <lab & "co">',
      kernel: '6.8.0',
      cpuModel: 'Test CPU',
      kvmKind: 'hardware',
      kvmDetail: 'kvm_intel',
      node: 'v20.20.2',
    },
    iterations: 100000,
    repeat: 3,
    rows: [
      row('pio', 'js-hop', [15000, 14800, 14000]),
      row('pio', 'cxx', [1400, 1450, 1500]),
      row('mmio', 'cxx', [2000, 2100, 2300]),
      row('mmio', 'js-hop', [38500, 39000, 38000]),
      row('pio', 'koffi', [], 'koffi is not installed'),
      row('cpuid', 'kernel', [70, 72, 75]),
      row('ioeventfd-pio', 'kernel', [180, 175, 190]),
      row('pio', 'js-worker', [2300, 2250, 2400]),
    ],
  };
}

function measured(summaries: RowSummary[], id: string): MeasuredRowSummary {
  const s = summaries.find((x) => x.id === id);
  if (s === undefined || s.status !== 'measured') throw new Error(`no measured summary for ${id}`);
  return s;
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
}

// --- model -----------------------------------------------------------------

test('rungOf: the ladder', () => {
  assert.is(rungOf('kernel', 'ioeventfd-pio'), 'no-exit-to-user');
  assert.is(rungOf('kernel', 'ioeventfd-mmio'), 'no-exit-to-user');
  assert.is(rungOf('kernel', 'cpuid'), 'in-kernel');
  assert.is(rungOf('cxx'), 'c++');
  assert.is(rungOf('js-hop'), 'typescript');
  assert.is(rungOf('js-worker'), 'typescript');
  assert.is(rungOf('koffi'), 'typescript');
  const loose = rungOf as (h: Handler, e?: ExitKind) => Rung;
  assert.throws(() => loose('kernel'), (e: unknown) => e instanceof ModelError && /exit kind/.test((e as Error).message));
});

test('sortRows follows ROW_ORDER', () => {
  const ids = sortRows(sampleReport().rows).map((r) => r.id);
  const expected = ROW_ORDER.filter((id) => ids.includes(id));
  assert.equal(ids, expected);
});

// --- summary -----------------------------------------------------------------

test('summarize: median, spread, exits/s', () => {
  const s = measured(summarize(sampleReport()), 'pio/js-hop');
  assert.is(s.medianNs, 14800);
  assert.is(s.minNs, 14000);
  assert.is(s.maxNs, 15000);
  assert.is(s.q1Ns, 14400);
  assert.is(s.q3Ns, 14900);
  assert.is(s.iqrNs, 500);
  assert.ok(close(s.exitsPerSec, 1e9 / 14800));
  assert.ok(close(s.relativeSpread, 1000 / 14800));
});

test('summarize: ratio and fixed cost are against the cxx row of the same exit kind', () => {
  const sums = summarize(sampleReport());
  const pioHop = measured(sums, 'pio/js-hop');
  assert.is(pioHop.floor?.floorId, 'pio/cxx');
  assert.ok(close(pioHop.floor?.ratio ?? Number.NaN, 14800 / 1450));
  assert.is(pioHop.floor?.fixedCostNs, 14800 - 1450);

  const mmioHop = measured(sums, 'mmio/js-hop');
  assert.is(mmioHop.floor?.floorId, 'mmio/cxx');
  assert.ok(close(mmioHop.floor?.ratio ?? Number.NaN, 38500 / 2100));
  assert.is(mmioHop.floor?.fixedCostNs, 38500 - 2100);

  const floor = measured(sums, 'pio/cxx');
  assert.is(floor.floor?.ratio, 1);
  assert.is(floor.floor?.fixedCostNs, 0);

  // No cxx row for these exit kinds.
  assert.is(measured(sums, 'cpuid/kernel').floor, null);
  assert.is(measured(sums, 'ioeventfd-pio/kernel').floor, null);
});

test('summarize: no ratio when the floor row is skipped or missing', () => {
  const r = sampleReport();
  r.rows = r.rows.map((x) => (x.id === 'pio/cxx' ? row('pio', 'cxx', [], 'addon not built') : x));
  r.rows = r.rows.filter((x) => x.id !== 'mmio/cxx');
  const sums = summarize(r);
  assert.is(measured(sums, 'pio/js-hop').floor, null);
  assert.is(measured(sums, 'mmio/js-hop').floor, null);
  const skipped = sums.find((s) => s.id === 'pio/cxx');
  assert.is(skipped?.status, 'skipped');
});

test('summarize: display order and skipped rows', () => {
  const sums = summarize(sampleReport());
  assert.equal(
    sums.map((s) => s.id),
    ['ioeventfd-pio/kernel', 'cpuid/kernel', 'pio/cxx', 'pio/js-hop', 'pio/js-worker', 'pio/koffi', 'mmio/cxx', 'mmio/js-hop'],
  );
  const k = sums.find((s) => s.id === 'pio/koffi');
  assert.equal(k?.status === 'skipped' ? k.reason : undefined, 'koffi is not installed');
});

// --- table -------------------------------------------------------------------

test('formatTable: header names host, kvm kind and run size', () => {
  const t = formatTable(sampleReport());
  const first = t.split('\n')[0] ?? '';
  assert.match(first, 'box <lab & "co">');
  assert.match(first, '/dev/kvm is hardware (kvm_intel)');
  assert.match(t, '100000 iterations x 3 repeats');
});

test('formatTable: one line per row, skipped reasons shown', () => {
  const r = sampleReport();
  const lines = formatTable(r).split('\n');
  for (const x of r.rows) {
    const re = new RegExp(`^${x.exit}\\s+${x.handler}\\s+${x.rung.replace('+', '\\+')}\\s`);
    assert.is(lines.filter((l) => re.test(l)).length, 1, `line for ${x.id}`);
  }
  const koffi = lines.find((l) => l.startsWith('pio') && l.includes('koffi')) ?? '';
  assert.match(koffi, 'skipped: koffi is not installed');
  const hop = lines.find((l) => /^pio\s+js-hop/.test(l)) ?? '';
  assert.match(hop, '14,800');
  assert.match(hop, '10.2x');
  assert.match(hop, '+13,350');
  assert.match(hop, '14,000..15,000 IQR 500');
  assert.match(hop, '67.6k');
});

test('formatTable: numeric columns are right-aligned under their titles', () => {
  const lines = formatTable(sampleReport()).split('\n');
  const header = lines.find((l) => l.startsWith('exit ')) ?? '';
  for (const title of ['median ns', 'exits/s', 'vs C++', '+ns vs C++']) {
    const end = header.indexOf(title) + title.length;
    const measuredLines = lines.filter((l) => /^(pio|mmio|cpuid|ioeventfd)/.test(l) && !l.includes('skipped'));
    assert.ok(measuredLines.length > 0);
    for (const l of measuredLines) {
      assert.ok(l[end - 1] !== ' ' && (l[end] === ' ' || l[end] === undefined), `${title} misaligned in: ${l}`);
    }
  }
});

// --- JSON --------------------------------------------------------------------

test('toJson: round-trips through parseReport, stable and 2-space indented', () => {
  const r = sampleReport();
  const json = toJson(r);
  assert.equal(parseReport(json), r);
  assert.is(toJson(parseReport(json)), json);
  assert.match(json, /^\{\n {2}"tool": "tsvmm bench exits",\n {2}"version": 1,/);
  const parsed = JSON.parse(json) as Record<string, unknown>;
  assert.equal(Object.keys(parsed), ['tool', 'version', 'startedAt', 'host', 'iterations', 'repeat', 'rows', 'summary']);
  assert.ok(Array.isArray(parsed['summary']));
});

test('toJson: key order does not depend on the input object', () => {
  const r = sampleReport();
  const shuffled = JSON.parse(JSON.stringify({ rows: r.rows, host: r.host, repeat: r.repeat, iterations: r.iterations, startedAt: r.startedAt, version: 1, tool: r.tool })) as BenchReport;
  assert.is(toJson(shuffled), toJson(r));
});

function rejects(mutate: (o: Record<string, unknown>) => void, path: string, detail: RegExp): void {
  const o = JSON.parse(toJson(sampleReport())) as Record<string, unknown>;
  mutate(o);
  try {
    parseReport(JSON.stringify(o));
  } catch (e) {
    assert.instance(e, ReportParseError);
    const err = e as ReportParseError;
    assert.is(err.path, path);
    assert.match(err.message, path);
    assert.match(err.message, detail);
    return;
  }
  assert.unreachable(`expected rejection at ${path}`);
}

function rows(o: Record<string, unknown>): Record<string, unknown>[] {
  return o['rows'] as Record<string, unknown>[];
}

test('parseReport: rejects malformed input naming the field and value', () => {
  assert.throws(() => parseReport('{not json'), (e: unknown) => e instanceof ReportParseError && /not valid JSON/.test((e as Error).message));
  assert.throws(() => parseReport('[]'), (e: unknown) => e instanceof ReportParseError && /\$: expected an object/.test((e as Error).message));
  rejects((o) => (o['tool'] = 'other'), '$.tool', /"other"/);
  rejects((o) => (o['version'] = 2), '$.version', /got 2/);
  rejects((o) => (o['startedAt'] = 'yesterday'), '$.startedAt', /"yesterday"/);
  rejects((o) => (o['repeat'] = 0), '$.repeat', /positive integer, got 0/);
  rejects((o) => delete o['rows'], '$.rows', /missing/);
  rejects((o) => delete (o['host'] as Record<string, unknown>)['kvmKind'], '$.host.kvmKind', /missing/);
  rejects((o) => ((o['host'] as Record<string, unknown>)['kvmKind'] = 'vmware'), '$.host.kvmKind', /"vmware"/);
  rejects((o) => (rows(o)[1]['exit'] = 'hlt'), '$.rows[1].exit', /"hlt"/);
  rejects((o) => (rows(o)[1]['handler'] = 'rust'), '$.rows[1].handler', /"rust"/);
  rejects((o) => (rows(o)[0]['id'] = 'pio/cxx'), '$.rows[0].id', /"pio\/js-hop".*"pio\/cxx"/);
  rejects((o) => (rows(o)[0]['rung'] = 'c++'), '$.rows[0].rung', /"typescript".*"c\+\+"/);
  rejects((o) => (rows(o)[0]['samplesNsPerExit'] = [1, 'x']), '$.rows[0].samplesNsPerExit[1]', /"x"/);
  rejects((o) => (rows(o)[0]['samplesNsPerExit'] = [1, -5]), '$.rows[0].samplesNsPerExit[1]', /-5/);
  rejects((o) => (rows(o)[0]['samplesNsPerExit'] = []), '$.rows[0].samplesNsPerExit', /at least one sample/);
  rejects((o) => (rows(o)[4]['samplesNsPerExit'] = [100]), '$.rows[4].samplesNsPerExit', /empty array for a skipped row/);
  rejects((o) => (rows(o)[4]['skipped'] = 42), '$.rows[4].skipped', /got 42/);
  rejects((o) => (rows(o)[0]['iterations'] = 1.5), '$.rows[0].iterations', /1\.5/);
  rejects((o) => rows(o).push(rows(o)[0]), '$.rows[8].id', /"pio\/js-hop"/);
});

// --- SVG ---------------------------------------------------------------------

/** Checks start/end tags nest properly; returns the tag names seen. */
function checkBalanced(svg: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, '');
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    if (name === undefined) continue;
    seen.push(name);
    if (selfClose === '/') continue;
    if (close === '/') {
      const top = stack.pop();
      assert.is(top, name, `</${name}> closes <${top ?? 'nothing'}>`);
    } else stack.push(name);
  }
  assert.equal(stack, [], 'unclosed tags');
  return seen;
}

test('renderSvg: well-formed-ish, one bar per measured row', () => {
  const r = sampleReport();
  const svg = renderSvg(r);
  assert.ok(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'));
  const tags = checkBalanced(svg);
  assert.is(tags[0], 'svg');
  const bars = svg.match(/class="bar"/g) ?? [];
  assert.is(bars.length, r.rows.filter((x) => x.skipped === undefined).length);
  assert.match(svg, 'skipped: koffi is not installed');
});

test('renderSvg: text is escaped', () => {
  const svg = renderSvg(sampleReport());
  assert.match(svg, 'box &lt;lab &amp; &quot;co&quot;&gt;');
  assert.not.match(svg, 'box <lab');
  assert.not.match(svg, /&(?!(amp|lt|gt|quot|apos);)/);
  assert.is(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
});

test('renderSvg: log axis labels, legend, title, value and ratio at bar end', () => {
  const svg = renderSvg(sampleReport());
  for (const label of ['10 ns', '100 ns', '1 µs', '10 µs', '100 µs']) assert.match(svg, `>${label}</text>`);
  for (const label of ['no exit to user space', 'handled in the kernel', 'handled in C++', 'handled in TypeScript']) assert.match(svg, label);
  assert.match(svg, '/dev/kvm: hardware');
  assert.match(svg, `${formatDuration(14800)}</tspan>`);
  assert.match(svg, '10.2× vs C++');
  assert.match(svg, 'C++ floor');
});

test('decadeLabel and formatDuration', () => {
  assert.equal([1, 2, 3, 4, 5, 6].map(decadeLabel), ['10 ns', '100 ns', '1 µs', '10 µs', '100 µs', '1 ms']);
  assert.is(formatDuration(61.25), '61.3 ns');
  assert.is(formatDuration(1450), '1.45 µs');
  assert.is(formatDuration(48200), '48.2 µs');
});

test('renderSvg: a report with nothing measured still renders', () => {
  const r = sampleReport();
  r.rows = [row('pio', 'cxx', [], 'no /dev/kvm')];
  r.host.kvmKind = 'absent';
  const svg = renderSvg(r);
  checkBalanced(svg);
  assert.not.match(svg, 'class="bar"');
  assert.match(svg, '/dev/kvm: absent');
  r.rows = [];
  checkBalanced(renderSvg(r));
  assert.match(formatTable(r), '/dev/kvm is absent');
});

// --- property: any report of known rows ----------------------------------------

const pairs: readonly [ExitKind, Handler][] = ROW_ORDER.map((id) => {
  const [exit, handler] = id.split('/') as [ExitKind, Handler];
  return [exit, handler];
});

const arbRow = (exit: ExitKind, handler: Handler): fc.Arbitrary<BenchRow> =>
  fc.oneof(
    fc.array(fc.double({ noNaN: true, min: 1, max: 1e6 }), { minLength: 1, maxLength: 7 }).map((s) => row(exit, handler, s)),
    fc.string({ maxLength: 40 }).map((reason) => row(exit, handler, [], reason)),
  );

const arbReport: fc.Arbitrary<BenchReport> = fc
  .subarray([...pairs], { minLength: 0 })
  .chain((ps) => fc.tuple(...ps.map(([e, h]) => arbRow(e, h))))
  .chain((rs) => fc.shuffledSubarray(rs, { minLength: rs.length, maxLength: rs.length }))
  .map((rs) => ({ ...sampleReport(), rows: rs }));

test('property: JSON round-trips; table and SVG show every row', () => {
  fc.assert(
    fc.property(arbReport, (r) => {
      const json = toJson(r);
      assert.equal(parseReport(json), r);
      const table = formatTable(r);
      const svg = renderSvg(r);
      checkBalanced(svg);
      const measuredCount = r.rows.filter((x) => x.skipped === undefined).length;
      assert.is((svg.match(/class="bar"/g) ?? []).length, measuredCount);
      const sums = summarize(r);
      assert.is(sums.length, r.rows.length);
      for (const s of sums) {
        if (s.status === 'skipped') {
          assert.ok(table.includes(`skipped: ${oneLine(s.reason)}`), `skipped reason of ${s.id}`);
        } else {
          const floorRow = r.rows.find((x) => x.exit === s.exit && x.handler === 'cxx' && x.skipped === undefined);
          assert.is(s.floor === null, floorRow === undefined);
          assert.ok(s.floor === null || s.floor.floorId === `${s.exit}/cxx`);
        }
      }
    }),
    { numRuns: 200 },
  );
});

test.run();
