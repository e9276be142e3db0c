// The event loop's nice boost (src/machine/thread-priority.ts), over a fake per-thread nice value.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describePriority, raiseEventLoop, type ThreadNice } from '../../src/machine/thread-priority.js';

function fakeNice(start: number, refuse?: string): ThreadNice & { value: number; sets: number[] } {
  const t = {
    value: start,
    sets: [] as number[],
    get: () => t.value,
    set: (n: number) => {
      t.sets.push(n);
      if (refuse) throw Object.assign(new Error(`setpriority: ${refuse}`), { code: refuse });
      t.value = n;
    },
  };
  return t;
}

test('raiseEventLoop: the event loop goes boost steps below the nice the vCPUs keep', () => {
  const n = fakeNice(0);
  const p = raiseEventLoop(5, n);
  assert.equal(p, { vcpuNice: 0, eventLoopNice: -5 });
  assert.is(n.value, -5);
  assert.is(describePriority(p), 'event loop: nice -5, vCPU threads 0');
  const low = fakeNice(-18);
  assert.equal(raiseEventLoop(5, low), { vcpuNice: -18, eventLoopNice: -20 }, 'stops at -20');
});

test('raiseEventLoop: boost 0, or already at -20, changes nothing and asks for nothing', () => {
  for (const [start, boost] of [[3, 0], [-20, 5]] as const) {
    const n = fakeNice(start);
    const p = raiseEventLoop(boost, n);
    assert.equal(p, { vcpuNice: start, eventLoopNice: start });
    assert.equal(n.sets, []);
    assert.match(describePriority(p), /as the vCPU threads$/);
  }
});

test('raiseEventLoop: a refused raise leaves both where they were and says why', () => {
  const n = fakeNice(0, 'EACCES');
  const p = raiseEventLoop(5, n);
  assert.equal(p, { vcpuNice: 0, eventLoopNice: 0, notRaised: 'EACCES' });
  assert.is(n.value, 0);
  assert.is(describePriority(p), 'event loop: nice 0, as the vCPU threads (not raised: EACCES)');
});

test('raiseEventLoop: a boost outside 0-39 is refused before anything changes', () => {
  for (const b of [-1, 40, 1.5, Number.NaN]) {
    const n = fakeNice(0);
    assert.throws(() => raiseEventLoop(b, n), /0 to 39/);
    assert.equal(n.sets, []);
  }
});

test.run();
