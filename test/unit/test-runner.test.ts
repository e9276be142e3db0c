// test/runner/: how scripts/test.mjs counts (uvu's own output, read from a real uvu run and from
// recorded text), when a test-bed attempt may be retried (only an emulated-machine fault the bed
// diagnosed; a tsvmm hang in a healthy machine is a failure), the retry cap, the seed, and the
// closing lines CI reads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../src/package-root.js';
import { EMULATED_MACHINE_STALL } from '../helpers/bed-diagnosis.js';
import {
  addReports,
  BedRetryBudget,
  classifyBedAttempt,
  closingLines,
  EMPTY_REPORT,
  parseUvuOutput,
  reportLine,
  runSeed,
  runSuiteInBed,
  suiteReportFromUvu,
} from '../runner/index.js';
import type { SuiteReport } from '../runner/suite-report.js';

const ESC = '\u001b';
/** Recorded from uvu 0.5.6: a failing test (two-line message), a named suite's thrown error, one test.skip. */
const RECORDED = `${ESC}[1m${ESC}[4m${ESC}[37ma.test.mjs${ESC}[22m${ESC}[24m${ESC}[39m\n${ESC}[90m• ${ESC}[39m${ESC}[31m✘ ${ESC}[39m${ESC}[31m  (1 / 2)\n${ESC}[39m\n  ${ESC}[1m${ESC}[41m FAIL ${ESC}[22m${ESC}[49m ${ESC}[2m"${ESC}[22m${ESC}[31m${ESC}[1mfails with "quotes"${ESC}[39m${ESC}[22m${ESC}[2m"${ESC}[22m\n    first line\nsecond line${ESC}[3m${ESC}[2m  (ok)${ESC}[23m${ESC}[22m\n${ESC}[90m\n    second line\n    at assert (file:///x/node_modules/uvu/assert/index.mjs:33:8)\n    at Object.handler (file:///tmp/a.test.mjs:4:44)\n${ESC}[39m\n\n\n${ESC}[47m${ESC}[1m${ESC}[30m named suite [x] ${ESC}[39m${ESC}[49m${ESC}[22m ${ESC}[31m✘ ${ESC}[39m${ESC}[31m  (0 / 1)\n${ESC}[39m\n  ${ESC}[1m${ESC}[41m FAIL ${ESC}[22m${ESC}[49m${ESC}[31m${ESC}[47m${ESC}[1m named suite [x] ${ESC}[49m${ESC}[22m${ESC}[39m ${ESC}[2m"${ESC}[22m${ESC}[31m${ESC}[1mboom${ESC}[39m${ESC}[22m${ESC}[2m"${ESC}[22m\n    thrown error\n${ESC}[90m\n    at Object.handler (file:///tmp/a.test.mjs:8:25)${ESC}[39m\n\n\n\n  Total:     3${ESC}[31m\n  Passed:    1${ESC}[39m\n  Skipped:   ${ESC}[33m1${ESC}[39m\n  Duration:  1.28ms\n\n`;

test('uvu output: failed is Total - Passed (Total counts only tests that ran), skips come from uvu, failures by name', () => {
  const r = parseUvuOutput(RECORDED);
  assert.ok(r);
  assert.equal([r.ran, r.passed, r.failed, r.skipped], [3, 1, 2, 1]);
  assert.equal(
    r.failures.map((f) => [f.suite, f.test]),
    [
      ['', 'fails with "quotes"'],
      ['named suite [x]', 'boom'],
    ],
  );
  assert.match(r.failures[0]?.message ?? '', /^first line\nsecond line/);
  assert.is(r.failures[1]?.message, 'thrown error');
  assert.is(parseUvuOutput('a crash before any totals\n'), undefined);
});

/** Runs real uvu over `files` (name -> source) in a scratch folder under dist/, where 'uvu' resolves. */
function runUvu(files: Record<string, string>): { output: string; code: number | null } {
  const dir = mkdtempSync(join(packageRoot(), 'dist', '.runner-fixture-'));
  try {
    for (const [name, src] of Object.entries(files)) writeFileSync(join(dir, name), src);
    const r = spawnSync(process.execPath, [join(packageRoot(), 'node_modules', 'uvu', 'bin.js'), dir, '^[^/]+\\.test\\.mjs$'], { encoding: 'utf8', timeout: 60_000 });
    return { output: `${r.stdout}${r.stderr}`, code: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SKIP_HELPER = pathToFileURL(join(packageRoot(), 'dist', 'test', 'helpers', 'skip.js')).href;

test('a real uvu run: skipTest() is counted as skipped and named with its reason; a failure is a failure', () => {
  const u = runUvu({
    'a.test.mjs': `import { test } from 'uvu';\nimport { skipTest } from ${JSON.stringify(SKIP_HELPER)};\ntest('ok', () => {});\nskipTest(test, 'needs io_uring', 'io_uring is not available here: ENOSYS');\ntest('bad', () => { throw new Error('nope'); });\ntest.run();\n`,
  });
  const r = suiteReportFromUvu('unit', { ...u, timedOut: false, timeoutMs: 1000 });
  assert.equal([r.passed, r.failed, r.skipped], [1, 1, 1]);
  assert.equal(r.skippedNames, ['needs io_uring: io_uring is not available here: ENOSYS']);
  assert.equal(r.failures, [{ name: 'bad', message: 'nope' }]);
});

test('a real uvu run: test.only cannot cancel failures, and what it left out is counted as skipped without a reason', () => {
  const u = runUvu({
    'a.test.mjs': `import { test } from 'uvu';\ntest('other', () => {});\ntest('another', () => {});\ntest.only('focused', () => { throw new Error('broken'); });\ntest.run();\n`,
  });
  const r = suiteReportFromUvu('unit', { ...u, timedOut: false, timeoutMs: 1000 });
  assert.is(r.failed, 1, 'the focused failure still counts');
  assert.is(r.passed, 0);
  assert.is(r.skipped, 2);
  assert.match(r.skippedNames.join('\n'), /2 test\(s\) in unit skipped without a reason/);
});

test('suite reports: a crash, a timeout and a non-zero exit with no failed test each count as a failure', () => {
  const crash = suiteReportFromUvu('unit', { output: 'SyntaxError: x\n', code: 1, timedOut: false, timeoutMs: 1000 });
  assert.equal([crash.failed, crash.failures[0]?.name], [1, 'unit']);
  const ok = `  Total:     2\n  Passed:    2\n  Skipped:   0\n`;
  const timedOut = suiteReportFromUvu('linux', { output: ok, code: null, timedOut: true, timeoutMs: 5000 });
  assert.equal([timedOut.passed, timedOut.failed], [2, 1]);
  assert.match(timedOut.failures[0]?.message ?? '', /timed out after 5 s/);
  const exit = suiteReportFromUvu('unit', { output: ok, code: 1, timedOut: false, timeoutMs: 1000 });
  assert.equal([exit.passed, exit.failed], [2, 1]);
});

const report = (r: Partial<SuiteReport>): SuiteReport => ({ ...EMPTY_REPORT, ...r });
const bedOutput = (r: SuiteReport, extra = ''): string => `[tsvmm-bed] booting ...\n${extra}${reportLine(r)}\n[tsvmm-bed] the command exited with status ${r.failed ? 1 : 0}; wall time 100.00 s\n`;
const HANG_HEALTHY = report({
  passed: 3,
  failed: 1,
  failures: [{ name: 'virtio-blk: durability', message: 'boot 2 did not get to its kill: it timed out\n[runTsvmm: emulated machine healthy: QEMU microvm booted the kernels/ guest to its marker in 4.1 s]' }],
});
const STALL = `${EMULATED_MACHINE_STALL}: emulated machine stalled: QEMU microvm did not finish booting the kernels/ guest in 120 s`;

test('bed attempts: a tsvmm hang in a healthy machine is a failure, not a retry', () => {
  const v = classifyBedAttempt(bedOutput(HANG_HEALTHY), 1);
  assert.is(v.kind, 'completed');
  assert.is(v.kind === 'completed' && v.report.failed, 1);
});

test('bed attempts: a frozen machine, or failures that all carry the stall diagnosis, are emulated-machine faults', () => {
  const frozen = classifyBedAttempt('[tsvmm-bed] the test-bed VM froze: no heartbeat from its kernel for 60 s while the command ran (its timers stopped); QEMU was killed; wall time 300.00 s\n', 125);
  assert.is(frozen.kind, 'emulated-machine-fault');
  assert.match(frozen.kind === 'emulated-machine-fault' ? frozen.evidence : '', /no heartbeat from its kernel for 60 s/);
  const stalled = report({ failed: 2, failures: [{ name: 'a', message: STALL }, { name: 'b', message: `${EMULATED_MACHINE_STALL}: not run: earlier stall` }] });
  const v = classifyBedAttempt(bedOutput(stalled), 1);
  assert.is(v.kind, 'emulated-machine-fault');
  assert.match(v.kind === 'emulated-machine-fault' ? v.evidence : '', /control guest|QEMU microvm/);
  // One real failure beside a stall: not retried, the real one must be seen.
  const mixed = report({ failed: 2, failures: [{ name: 'a', message: STALL }, { name: 'b', message: 'expected 0, got 1' }] });
  assert.is(classifyBedAttempt(bedOutput(mixed), 1).kind, 'completed');
});

test('bed attempts: no report back, or a non-zero exit with nothing failed, count as one failure', () => {
  for (const [out, code] of [['[tsvmm-bed] the test-bed VM died: QEMU was killed by SIGKILL\n', 125], ['', 124]] as const) {
    const v = classifyBedAttempt(out, code);
    assert.is(v.kind === 'completed' && v.report.failed, 1, out);
  }
  const v = classifyBedAttempt(bedOutput(report({ passed: 4 })), 3);
  assert.equal(v.kind === 'completed' && [v.report.passed, v.report.failed], [4, 1]);
});

/** A bed that answers with the given outputs in turn. */
function fakeBed(outputs: [string, number][]): { attempt: () => Promise<{ output: string; exitCode: number }>; calls: () => number } {
  let i = 0;
  return {
    attempt: async () => {
      const [output, exitCode] = outputs[Math.min(i, outputs.length - 1)] as [string, number];
      i++;
      return { output, exitCode };
    },
    calls: () => i,
  };
}

test('retries: a fault is retried with its failures recorded; a healthy-machine hang is never retried', async () => {
  const logs: string[] = [];
  const budget = new BedRetryBudget(2);
  const stalled = report({ passed: 1, failed: 1, failures: [{ name: 'durability', message: STALL }] });
  const bed = fakeBed([
    [bedOutput(stalled), 1],
    [bedOutput(report({ passed: 2 })), 0],
  ]);
  const r = await runSuiteInBed('kvm-linux-file:x', bed.attempt, budget, (l) => logs.push(l));
  assert.equal([r.passed, r.failed, bed.calls()], [2, 0, 2]);
  assert.equal(budget.retried, [{ suite: 'kvm-linux-file:x', attempt: 1, evidence: STALL, failed: ['durability'] }]);

  const hang = fakeBed([[bedOutput(HANG_HEALTHY), 1], [bedOutput(report({ passed: 4 })), 0]]);
  const h = await runSuiteInBed('kvm-linux-file:y', hang.attempt, budget, () => undefined);
  assert.equal([h.failed, hang.calls()], [1, 1], 'failed, and run once');
});

test('retries: past the cap a fault fails the run; the default cap is 3', async () => {
  assert.is(new BedRetryBudget().maxRetries, 3);
  const budget = new BedRetryBudget(2);
  const frozen = '[tsvmm-bed] the test-bed VM froze: no heartbeat from its kernel for 60 s while the command ran (its timers stopped); QEMU was killed\n';
  const bed = fakeBed([[frozen, 125]]);
  const r = await runSuiteInBed('kvm-toy', bed.attempt, budget, () => undefined);
  assert.is(bed.calls(), 3, 'two retries, then no more');
  assert.is(r.failed, 1);
  assert.match(r.failures[0]?.message ?? '', /not retried: 2 retries already this run, the cap is 2/);
  assert.is(budget.retried.length, 2);
});

test('retries: none starts once the retry window has passed, so CI keeps its time budget', async () => {
  let t = 0;
  const budget = new BedRetryBudget(3, 30 * 60_000, () => t);
  const frozen = '[tsvmm-bed] the test-bed VM froze: no heartbeat from its kernel for 60 s while the command ran (its timers stopped); QEMU was killed\n';
  const bed = fakeBed([[frozen, 125]]);
  t = 31 * 60_000;
  const r = await runSuiteInBed('kvm-toy', bed.attempt, budget, () => undefined);
  assert.equal([bed.calls(), r.failed, budget.retried.length], [1, 1, 0]);
  assert.match(r.failures[0]?.message ?? '', /more than 30 minutes since the run began/);
});

test('closing lines: failures and skips by name, the retried line just before the closing line, which CI reads', () => {
  const totals = addReports(report({ passed: 5, skipped: 1, skippedNames: ['t1: no io_uring'] }), report({ failed: 1, failures: [{ name: 'b', message: 'nope\nmore' }] }));
  const lines = closingLines(totals, [{ suite: 's', attempt: 1, evidence: 'emulated machine stalled: x', failed: ['a'] }]);
  assert.is(lines[lines.length - 1], '5 passed, 1 failed, 1 skipped');
  assert.match(lines[lines.length - 2] ?? '', /^retried: 1 \(s attempt 1: emulated machine stalled: x; failed there: a\)$/);
  assert.ok(lines.includes('  - t1: no io_uring'));
  assert.ok(lines.includes('  - b: nope'));
  assert.is(closingLines(EMPTY_REPORT, []).slice(-2).join('\n'), 'retried: 0\n0 passed, 0 failed, 0 skipped');
  // The verdict's console excerpt stays in the attempt's log, out of the summary line.
  const long = closingLines(EMPTY_REPORT, [{ suite: 's', attempt: 1, evidence: `${EMULATED_MACHINE_STALL}: emulated machine stalled: QEMU microvm's run did not end in 120 s (console: "a\r\nb")`, failed: [] }]);
  assert.match(long[long.length - 2] ?? '', /^retried: 1 \(s attempt 1: emulated machine stalled: QEMU microvm's run did not end in 120 s; failed there: no test/);
});

test('the run seed: from TSVMM_TEST_SEED when set (and checked), else drawn', () => {
  assert.equal(runSeed({ TSVMM_TEST_SEED: '12345' }), { seed: 12345, fromEnv: true });
  assert.equal(runSeed({}, () => 0.5), { seed: Math.floor(0.5 * 0x7fffffff), fromEnv: false });
  assert.throws(() => runSeed({ TSVMM_TEST_SEED: 'abc' }), /TSVMM_TEST_SEED=abc/);
});

test.run();
