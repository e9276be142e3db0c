// Reads what one uvu 0.5 process printed: its own counts, the names of the tests that failed
// (with the first line of each failure's message), and the skipped tests that
// test/helpers/skip.ts named. uvu's "Total" counts only the tests that ran, so failed is
// Total - Passed; "Skipped" counts test.skip() and the tests a test.only() left out.
import { SKIP_LINE_PREFIX } from '../helpers/skip.js';

export interface UvuFailure {
  /** The suite's name, '' for the default suite. */
  suite: string;
  test: string;
  /** The failure's message (all its lines, without the stack). */
  message: string;
}

export interface UvuReport {
  ran: number;
  passed: number;
  failed: number;
  skipped: number;
  failures: UvuFailure[];
  /** "name: reason" of each test registered through skipTest(). */
  skippedNames: string[];
}

const ANSI = /\x1b\[[0-9;]*m/g;
/** uvu's failure heading: `  FAIL  <suite>  "<test>"` (the suite part only for named suites). */
const FAIL_HEADING = /^\s*FAIL\s+(?:([^"\s].*?)\s+)?"(.*)"\s*$/;
/** The stack lines uvu prints under a message start with "at " (indented). */
const STACK_LINE = /^\s+at\s/;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** The counts and names in uvu's output; undefined when it never printed its totals. */
export function parseUvuOutput(output: string): UvuReport | undefined {
  const plain = stripAnsi(output);
  const num = (label: string): number | undefined => {
    const all = [...plain.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)\\s*$`, 'gm'))];
    const last = all[all.length - 1];
    return last?.[1] === undefined ? undefined : Number(last[1]);
  };
  const ran = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  if (ran === undefined || passed === undefined || skipped === undefined) return undefined;
  return { ran, passed, failed: ran - passed, skipped, failures: parseFailures(plain), skippedNames: parseSkipLines(plain) };
}

/** The failure blocks uvu prints after a file's tests: heading, message lines, stack. */
export function parseFailures(plain: string): UvuFailure[] {
  const out: UvuFailure[] = [];
  let current: UvuFailure | undefined;
  let inStack = false;
  for (const line of plain.split('\n')) {
    const h = FAIL_HEADING.exec(line);
    if (h) {
      current = { suite: h[1] ?? '', test: h[2] ?? '', message: '' };
      out.push(current);
      inStack = false;
      continue;
    }
    if (!current || inStack) continue;
    if (STACK_LINE.test(line)) {
      inStack = true;
      continue;
    }
    if (/^\s*(Total|Passed|Skipped|Duration):/.test(line)) {
      current = undefined;
      continue;
    }
    current.message = current.message === '' ? line.trim() : `${current.message}\n${line.replace(/^ {4}/, '')}`;
  }
  for (const f of out) f.message = f.message.trimEnd();
  return out;
}

export function parseSkipLines(plain: string): string[] {
  const prefix = `${SKIP_LINE_PREFIX} `;
  return plain
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length).trim());
}

/** "suite: test" or "test", as a failure is listed in the run's summary. */
export function failureName(f: UvuFailure): string {
  return f.suite === '' ? f.test : `${f.suite}: ${f.test}`;
}
