import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseBenchExitsArgs, svgPathFor } from '../../src/cli/bench-args.js';
import { UsageError } from '../../src/cli/errors.js';
import { main } from '../../src/cli/main.js';

test('bench exits defaults', () => {
  const a = parseBenchExitsArgs([]);
  assert.equal(a, { iterations: 50_000, repeat: 5, json: 'results/exits.json', help: false });
});

test('bench exits takes --iterations, --repeat and --json', () => {
  const a = parseBenchExitsArgs(['--iterations', '2000', '--repeat=3', '--json', '/tmp/x.json']);
  assert.is(a.iterations, 2000);
  assert.is(a.repeat, 3);
  assert.is(a.json, '/tmp/x.json');
});

test('bench exits rejects bad numbers and unknown flags with a UsageError', () => {
  for (const argv of [['--iterations', 'abc'], ['--iterations', '10'], ['--repeat', '0'], ['--repeat', '1.5'], ['--bogus'], ['extra']]) {
    assert.throws(() => parseBenchExitsArgs(argv), (e: unknown) => e instanceof UsageError && e.usage !== undefined, argv.join(' '));
  }
});

test('svg path sits beside the json', () => {
  assert.is(svgPathFor('results/exits.json'), 'results/exits.svg');
  assert.is(svgPathFor('out'), 'out.svg');
});

test('main: unknown command and missing benchmark name exit 2', async () => {
  const errors: string[] = [];
  const orig = console.error;
  console.error = (s: string): void => {
    errors.push(s);
  };
  try {
    assert.is(await main(['frobnicate']), 2);
    assert.is(await main(['bench']), 2);
    assert.is(await main(['bench', 'nope']), 2);
    assert.is(await main(['check', 'extra']), 2);
  } finally {
    console.error = orig;
  }
  assert.match(errors[0] ?? '', /unknown command 'frobnicate'/);
  assert.match(errors[2] ?? '', /unknown benchmark 'nope'/);
});

test.run();
