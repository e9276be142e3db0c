// What one test-bed attempt of a suite came to, and whether it may be run again. A retry is for
// the emulated machine's faults only, proven by evidence that does not come from tsvmm: the L1
// kernel's heartbeat went silent and the bed's watchdog killed the machine (test/bed/watchdog.ts),
// or a test's nested guest stopped and the bed's own diagnosis (test/helpers/bed-diagnosis.ts)
// found the emulated machine stalled (a control guest that does not use tsvmm stalled too, or
// L1's kernel logged a stall). A tsvmm guest that stops while the machine is healthy, a machine
// that dies, a missing report: failures, never retried.
import { EMULATED_MACHINE_STALL } from '../helpers/bed-diagnosis.js';
import type { SuiteReport } from './suite-report.js';

/** The line scripts/test.mjs prints inside the bed with its report as JSON. */
export const REPORT_LINE_PREFIX = '[tsvmm-test] report: ';
/** The bed CLI's summary line when its watchdog killed a machine whose heartbeat stopped. */
const FROZEN_LINE = /^\[tsvmm-bed\] (the test-bed VM froze: .*?)(?:; wall time .*)?$/m;

export type BedAttemptVerdict =
  | { kind: 'completed'; report: SuiteReport }
  | { kind: 'emulated-machine-fault'; evidence: string; report: SuiteReport | undefined };

export function reportLine(report: SuiteReport): string {
  return `${REPORT_LINE_PREFIX}${JSON.stringify(report)}`;
}

/** The last report line in `output`, if it holds a well-formed report. */
export function parseReportLine(output: string): SuiteReport | undefined {
  const lines = output.split('\n').filter((l) => l.startsWith(REPORT_LINE_PREFIX));
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  try {
    const r = JSON.parse(last.slice(REPORT_LINE_PREFIX.length)) as Partial<SuiteReport>;
    const counts = [r.passed, r.failed, r.skipped].every((n) => Number.isInteger(n) && (n as number) >= 0);
    if (!counts || !Array.isArray(r.failures) || !Array.isArray(r.skippedNames)) return undefined;
    return r as SuiteReport;
  } catch {
    return undefined;
  }
}

/**
 * Classifies one attempt from the bed CLI's output and exit status (124 timeout, 125 the bed
 * failed). Only a frozen machine, or failures every one of which carries the bed's stall
 * diagnosis, is an emulated-machine fault.
 */
export function classifyBedAttempt(output: string, exitCode: number): BedAttemptVerdict {
  const report = parseReportLine(output);
  const frozen = FROZEN_LINE.exec(output)?.[1];
  if (frozen !== undefined) return { kind: 'emulated-machine-fault', evidence: frozen, report };
  if (report === undefined) {
    const why = exitCode === 124 ? 'the test bed timed out' : exitCode === 125 ? 'the test-bed machine died or could not start' : `exit status ${exitCode}`;
    return { kind: 'completed', report: runnerFailure(`test bed: no report came back (${why})`) };
  }
  if (report.failed === 0 && exitCode !== 0) {
    return { kind: 'completed', report: { ...report, failed: 1, failures: [{ name: 'test bed', message: `exit status ${exitCode} although no test failed` }] } };
  }
  const stalls = report.failures.filter((f) => f.message.includes(EMULATED_MACHINE_STALL));
  if (report.failed > 0 && stalls.length === report.failed && stalls.length === report.failures.length) {
    const first = stalls[0]?.message ?? '';
    const line = first.split('\n').find((l) => l.includes(EMULATED_MACHINE_STALL)) ?? first;
    return { kind: 'emulated-machine-fault', evidence: line.trim(), report };
  }
  return { kind: 'completed', report };
}

/** A report of one failure the runner itself found (no test's). */
export function runnerFailure(message: string): SuiteReport {
  return { passed: 0, failed: 1, skipped: 0, failures: [{ name: 'test runner', message }], skippedNames: [] };
}
