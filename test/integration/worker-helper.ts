// Runs in a worker_thread for the addon tests: attaches to a vCPU or mapping by id, as the
// chosen design's vCPU workers do.
import { parentPort } from 'node:worker_threads';
import { HostMapping } from '../../src/vmm/mapping.js';
import { Vcpu } from '../../src/vmm/vcpu.js';

export type HelperRequest =
  | { op: 'run'; vcpuId: number }
  | { op: 'poke'; mappingId: number; offset: number; value: number };
export type HelperReply = { ok: true; value: number } | { ok: false; error: string; code?: string };

const port = parentPort;
if (!port) throw new Error('worker-helper must run in a worker_thread');
port.on('message', (req: HelperRequest | 'close') => {
  if (req === 'close') {
    port.close();
    return;
  }
  try {
    if (req.op === 'run') {
      const vcpu = Vcpu.attach(req.vcpuId);
      port.postMessage({ ok: true, value: vcpu.runOnce() } satisfies HelperReply);
      vcpu.dispose();
    } else {
      const m = HostMapping.attach(req.mappingId);
      m.bytes()[req.offset] = req.value;
      m.dispose();
      port.postMessage({ ok: true, value: req.value } satisfies HelperReply);
    }
  } catch (e) {
    const err = e as { message?: string; code?: string };
    port.postMessage({ ok: false, error: String(err.message), code: err.code } satisfies HelperReply);
  }
});
