// Runs a suite in the test bed, again in a fresh machine only after an emulated-machine fault
// (bed-attempt.ts), with the same environment (and so the same seeds), at most `maxRetries`
// times per run over all suites. A bed that faults more often than that is itself a failure
// someone must see: the run fails.
import { classifyBedAttempt, runnerFailure } from './bed-attempt.js';
import { shortEvidence } from './summary.js';
import type { SuiteReport } from './suite-report.js';

/**
 * Emulated-machine faults one run may retry; TSVMM_TESTBED_MAX_RETRIES overrides it. Set from the
 * measured rate (test/bed/README.md): about one bed machine in six faulted in the runs of
 * 2026-12-07, and a run uses about nine, so 3 keeps a healthy tsvmm's run red from bed faults
 * alone to a few percent, while a bed that faults more often still fails the run.
 */
export const DEFAULT_MAX_BED_RETRIES = 3;

export interface BedAttemptResult {
  output: string;
  exitCode: number;
}

export interface RetriedAttempt {
  suite: string;
  attempt: number;
  /** The bed's diagnosis of the fault. */
  evidence: string;
  /** Tests that failed in that attempt, by name. */
  failed: string[];
}

/** No retry starts later than this after the run began, so that retries cannot push CI's run
 * past its budget (README); TSVMM_TESTBED_RETRY_WINDOW_S overrides it. */
export const DEFAULT_RETRY_WINDOW_MS = 30 * 60_000;

/** The retries of one run, shared by its suites. */
export class BedRetryBudget {
  readonly retried: RetriedAttempt[] = [];
  private readonly startedAt: number;
  constructor(
    readonly maxRetries: number = DEFAULT_MAX_BED_RETRIES,
    readonly windowMs: number = DEFAULT_RETRY_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  /** Why no further retry may start, if none may. */
  get refusal(): string | undefined {
    if (this.retried.length >= this.maxRetries) return `${this.retried.length} retries already this run, the cap is ${this.maxRetries}`;
    if (this.now() - this.startedAt > this.windowMs) return `more than ${this.windowMs / 60_000} minutes since the run began, when no retry starts any more`;
    return undefined;
  }
}

export async function runSuiteInBed(suite: string, attempt: () => Promise<BedAttemptResult>, budget: BedRetryBudget, log: (line: string) => void): Promise<SuiteReport> {
  for (let n = 1; ; n++) {
    const r = await attempt();
    const v = classifyBedAttempt(r.output, r.exitCode);
    if (v.kind === 'completed') return v.report;
    const failed = v.report?.failures.map((f) => f.name) ?? [];
    const refusal = budget.refusal;
    if (refusal !== undefined) {
      log(`${suite}: attempt ${n}: the emulated machine faulted (${shortEvidence(v.evidence)}); ${refusal}: not retried, counted as failed`);
      const failure = runnerFailure(`${suite}: the emulated machine faulted and was not retried: ${refusal} (the fault: ${shortEvidence(v.evidence)})`);
      return v.report ? { ...v.report, failed: Math.max(v.report.failed, 1), failures: [...v.report.failures, ...failure.failures] } : failure;
    }
    budget.retried.push({ suite, attempt: n, evidence: v.evidence, failed });
    log(`RETRY: ${suite}: attempt ${n} hit an emulated-machine fault (${shortEvidence(v.evidence)})${failed.length ? `; failed there: ${failed.join(', ')}` : ''}; attempt ${n + 1} in a fresh machine, same seed`);
  }
}
