// A test that cannot run here (no io_uring in this build, no guest kernel built, a file system
// that refuses O_DIRECT, not root) is registered as skipped, never run as an empty pass: uvu then
// counts it under "Skipped", and the line printed here names it with its reason, which
// scripts/test.mjs gathers into the run's "skipped:" list.
import type { Test } from 'uvu';

/** The start of the line that names a skipped test (test/runner/uvu-output.ts reads it). */
export const SKIP_LINE_PREFIX = '[tsvmm-skip]';

type Body = () => void | Promise<void>;

/** Registers `name` as skipped because of `reason`, and says so on stdout. */
export function skipTest(test: Test, name: string, reason: string): void {
  process.stdout.write(`${SKIP_LINE_PREFIX} ${name}: ${reason.replace(/\s+/g, ' ').trim()}\n`);
  test.skip(name, () => undefined);
}

/** Registers `name` with `body`, or as skipped when `skipReason` is defined. */
export function testUnless(test: Test, skipReason: string | undefined, name: string, body: Body): void {
  if (skipReason === undefined) test(name, body);
  else skipTest(test, name, skipReason);
}
