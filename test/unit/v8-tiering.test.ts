import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyVmmTiering, TIERING_ENV, VMM_TIERING_FLAGS } from '../../src/cli/v8-tiering.js';
import { packageRoot } from '../../src/package-root.js';

// In a child process (V8 flags are process-wide): how many calls a small function takes to
// reach optimized code, with V8's thresholds and with ours. Recompilation is made synchronous so
// that the count does not depend on a compiler thread; %GetOptimizationStatus bit 4 is
// "optimized" (V8's runtime-test.cc).
const CHILD = `
const { applyVmmTiering } = await import(process.argv[1]);
if (process.argv[2] === 'vmm') applyVmmTiering({});
function hot(a) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]; return s; }
function drive() {
  const arr = [1, 2, 3, 4];
  for (let calls = 1; calls <= 200000; calls++) {
    hot(arr);
    if ((%GetOptimizationStatus(hot) & 16) !== 0) return calls;
  }
  return -1;
}
%NeverOptimizeFunction(drive);
process.stdout.write(String(drive()));
`;

function callsToOptimize(mode: 'default' | 'vmm'): number {
  const mod = pathToFileURL(join(packageRoot(), 'dist', 'src', 'cli', 'v8-tiering.js')).href;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', '--input-type=module', '-e', CHILD, mod, mode], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const n = Number(r.stdout.trim());
  assert.ok(Number.isInteger(n), `child printed ${JSON.stringify(r.stdout)}; stderr ${r.stderr}`);
  return n;
}

test('the lowered thresholds optimize a hot function several times sooner than V8 does', () => {
  const dflt = callsToOptimize('default');
  const vmm = callsToOptimize('vmm');
  assert.ok(dflt > 0 && vmm > 0, `both optimized: ${dflt}, ${vmm}`);
  assert.ok(vmm * 4 <= dflt, `calls before optimization: ${vmm} with ours, ${dflt} with V8's`);
});

test(`${TIERING_ENV}=default leaves V8's thresholds`, () => {
  assert.equal(applyVmmTiering({ [TIERING_ENV]: 'default' }), []);
  assert.equal(VMM_TIERING_FLAGS, ['--interrupt-budget=8192', '--minimum-invocations-after-ic-update=50']);
});

test.run();
