// A worker_thread that runs the benchmark vCPU synchronously and handles its exits in
// TypeScript: design (c) through the addon's Vcpu.run(), design (d) through ioctl(2) called
// with koffi. The main thread set the vCPU up; this thread attaches to it by id.
import { parentPort, workerData } from 'node:worker_threads';
import { Vcpu } from '../../vmm/vcpu.js';
import { timedLoop, type LoopResult } from './handler.js';
import { koffiRunner } from './koffi.js';

export interface WorkerInit {
  vcpuId: number;
  mode: 'addon' | 'koffi';
}

export interface WorkerRequest {
  warmup: number;
  iterations: number;
}

export type WorkerReply = { ok: true; result: LoopResult } | { ok: false; error: string };

function main(): void {
  const port = parentPort;
  if (!port) throw new Error('worker.ts must run in a worker_thread');
  const init = workerData as WorkerInit;
  const vcpu = Vcpu.attach(init.vcpuId);
  let runOnce: () => number;
  if (init.mode === 'koffi') {
    const raw = koffiRunner(vcpu.native.fd);
    runOnce = (): number => {
      const r = raw();
      return r === -1 ? vcpu.run.getUint32(8, true) : r;
    };
  } else {
    const nativeVcpu = vcpu.native;
    runOnce = (): number => nativeVcpu.run();
  }
  port.on('message', (req: WorkerRequest | 'close') => {
    if (req === 'close') {
      vcpu.dispose();
      port.close();
      return;
    }
    let reply: WorkerReply;
    try {
      reply = { ok: true, result: timedLoop(runOnce, vcpu.run, req.warmup, req.iterations) };
    } catch (e) {
      reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply);
  });
}

main();
