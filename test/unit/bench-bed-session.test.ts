// What a benchmark run in the test bed sends back: its quoted command line, the echoed lines and
// the one JSON line among them (src/bench/guest-bench.ts BedSession).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BedSession } from '../../src/bench/guest-bench.js';

test('the command line quotes every word for the shell, quotes inside words too', () => {
  assert.is(BedSession.commandLine(['node', "it's", 'a b']), `'node' 'it'\\''s' 'a b'`);
});

test('echo writes whole lines as they complete, never the JSON line; result parses the JSON', () => {
  const io = new BedSession('X-JSON ');
  const written: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => {
    written.push(s);
    return true;
  }) as typeof process.stdout.write;
  try {
    io.echo('first li');
    io.echo('ne\nX-JSON {"a"');
    io.echo(':1}\r\nlast\n');
  } finally {
    process.stdout.write = write;
  }
  assert.equal(written, ['first line\n', 'last\n']);
  assert.equal(io.result('x\nX-JSON {"a":1}\r\ny'), { a: 1 });
  assert.is(io.result('nothing here'), undefined);
});

test.run();
