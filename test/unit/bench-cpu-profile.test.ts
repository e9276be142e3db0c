// The CPU-profile summary the benchmarks print: self time summed per function, largest first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { topSelfTime } from '../../src/bench/cpu-profile.js';

const frame = (functionName: string, url: string, lineNumber: number) => ({ functionName, url, lineNumber });

test('self time per function, nodes of one function summed, percentages of all samples', () => {
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', '', -1) },
      { id: 2, callFrame: frame('service', 'file:///x/dist/src/devices/vsock/device.js', 129) },
      { id: 3, callFrame: frame('service', 'file:///x/dist/src/devices/vsock/device.js', 129) },
      { id: 4, callFrame: frame('', 'file:///x/dist/src/vmm/a.js', 9) },
    ],
    samples: [2, 3, 4, 2, 1],
    timeDeltas: [1000, 2000, 500, 1500, 5000],
  };
  const top = topSelfTime(profile, 2);
  assert.equal(top.map((e) => e.where), ['(root) ', 'service vsock/device.js:130']);
  assert.is(top[1]?.selfMs, 4.5);
  assert.is(Math.round(top[1]?.percent ?? 0), 45);
  assert.is(topSelfTime(profile, 10)[2]?.where, '(anonymous) vmm/a.js:10');
});

test.run();
