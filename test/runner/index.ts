// What scripts/test.mjs uses (it imports this from dist/ after the build).
export { classifyBedAttempt, parseReportLine, reportLine, runnerFailure, REPORT_LINE_PREFIX } from './bed-attempt.js';
export { BedRetryBudget, DEFAULT_MAX_BED_RETRIES, DEFAULT_RETRY_WINDOW_MS, runSuiteInBed } from './bed-retries.js';
export { runSeed, SEED_VARIABLE } from './run-seed.js';
export { addReports, EMPTY_REPORT, suiteReportFromUvu } from './suite-report.js';
export { closingLines } from './summary.js';
export { parseUvuOutput } from './uvu-output.js';
