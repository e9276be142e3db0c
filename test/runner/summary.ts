// The run's closing lines: the skipped tests by name, the retried attempts with what failed in
// them, and the line CI reads, exactly "N passed, N failed, N skipped".
import type { RetriedAttempt } from './bed-retries.js';
import type { SuiteReport } from './suite-report.js';

export function closingLines(totals: SuiteReport, retried: readonly RetriedAttempt[]): string[] {
  const lines: string[] = [];
  if (totals.failures.length > 0) {
    lines.push(`failed: ${totals.failed}`);
    for (const f of totals.failures) lines.push(`  - ${f.name}: ${firstLine(f.message)}`);
  }
  lines.push(`skipped: ${totals.skipped}`);
  for (const s of totals.skippedNames) lines.push(`  - ${s}`);
  const each = retried.map((r) => `${r.suite} attempt ${r.attempt}: ${shortEvidence(r.evidence)}; failed there: ${r.failed.length ? r.failed.join(', ') : 'no test (the machine froze before any reported)'}`);
  lines.push(`retried: ${retried.length}${each.length ? ` (${each.join(' | ')})` : ''}`);
  lines.push(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  return lines;
}

/** The bed's verdict without its console excerpt (the full text is in the attempt's log above). */
export function shortEvidence(evidence: string): string {
  const cut = evidence.replace(/^EMULATED-MACHINE-STALL: /, '').replace(/ \(console: [\s\S]*$/, '');
  return cut.length > 240 ? `${cut.slice(0, 237)}...` : cut;
}

function firstLine(message: string): string {
  const line = message.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}
