// The exit benchmark end to end on a small run: every variant measures, and the TypeScript
// handlers decode exactly the exits the C++ floor decoded (runExitBench checks the checksums).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runExitBench } from '../../src/bench/exits/run.js';
import { formatTable, parseReport, toJson } from '../../src/bench/exits/report.js';
import { renderSvg } from '../../src/bench/exits/svg.js';
import { koffiUnavailable } from '../../src/bench/exits/koffi.js';
import { whereLabel } from '../helpers/where.js';

const test = suite(`bench exits [${whereLabel()}]`);

test('a short run measures every rung and renders', async () => {
  const report = await runExitBench({ iterations: 2000, repeat: 2, warmup: 200 });
  assert.is(report.rows.length, 11);
  for (const row of report.rows) {
    if (row.handler === 'koffi' && koffiUnavailable()) {
      assert.ok(row.skipped, 'koffi row skipped with a reason');
      continue;
    }
    assert.is(row.skipped, undefined, `${row.id} measured`);
    assert.is(row.samplesNsPerExit.length, 2, row.id);
    for (const ns of row.samplesNsPerExit) assert.ok(ns > 0 && Number.isFinite(ns), `${row.id}: ${ns}`);
  }
  assert.match(formatTable(report), /pio\s+cxx/);
  assert.equal(parseReport(toJson(report)).rows.length, 11);
  assert.match(renderSvg(report), /<svg[\s\S]*<\/svg>\s*$/);
});

test.run();
