// Harness lines: every line the test bed itself prints (host or guest side) starts with this
// prefix, so they stand apart from the command's own output in a CI log.
export const HARNESS_PREFIX = '[tsvmm-bed]';

/** One progress line on stderr (stdout stays the command's output). */
export function progress(message: string): void {
  process.stderr.write(`${HARNESS_PREFIX} ${message}\n`);
}
