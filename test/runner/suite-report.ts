// The counts and names of one suite's run (one uvu process, or one test-bed attempt of it), and
// the run's totals built from them.
import { failureName, parseUvuOutput } from './uvu-output.js';

export interface SuiteReport {
  passed: number;
  failed: number;
  skipped: number;
  /** Each failed test by name, with its message. */
  failures: { name: string; message: string }[];
  /** Each skipped test as "name: reason". */
  skippedNames: string[];
}

export const EMPTY_REPORT: SuiteReport = Object.freeze({ passed: 0, failed: 0, skipped: 0, failures: [], skippedNames: [] }) as SuiteReport;

export interface UvuRun {
  output: string;
  /** uvu's exit status (null when killed). */
  code: number | null;
  timedOut: boolean;
  timeoutMs: number;
}

/**
 * One uvu process's report, `label` naming the suite. A crash before the totals, a timeout or a
 * non-zero exit with no failed test each count as a failure; what had passed before a timeout
 * still counts as passed.
 */
export function suiteReportFromUvu(label: string, run: UvuRun): SuiteReport {
  const u = parseUvuOutput(run.output);
  const failures = (u?.failures ?? []).map((f) => ({ name: failureName(f), message: f.message }));
  const base: SuiteReport = {
    passed: u?.passed ?? 0,
    failed: u?.failed ?? 0,
    skipped: u?.skipped ?? 0,
    failures,
    skippedNames: u?.skippedNames ?? [],
  };
  if (run.timedOut) {
    return { ...base, failed: base.failed + 1, failures: [...failures, { name: label, message: `timed out after ${run.timeoutMs / 1000} s (its process group was killed)` }] };
  }
  if (!u) return { ...base, failed: 1, failures: [{ name: label, message: `the test runner crashed (exit ${String(run.code)}) before reporting totals` }] };
  if (run.code !== 0 && base.failed === 0) {
    return { ...base, failed: 1, failures: [{ name: label, message: `uvu exited with status ${String(run.code)} outside any test` }] };
  }
  // Skips that no skipTest() line names (a bare test.skip, or tests a test.only left out).
  const unnamed = base.skipped - base.skippedNames.length;
  if (unnamed > 0) base.skippedNames = [...base.skippedNames, `${unnamed} test(s) in ${label} skipped without a reason (test.skip outside test/helpers/skip.ts, or test.only)`];
  return base;
}

export function addReports(a: SuiteReport, b: SuiteReport): SuiteReport {
  return {
    passed: a.passed + b.passed,
    failed: a.failed + b.failed,
    skipped: a.skipped + b.skipped,
    failures: [...a.failures, ...b.failures],
    skippedNames: [...a.skippedNames, ...b.skippedNames],
  };
}
