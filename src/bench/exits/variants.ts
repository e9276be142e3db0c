// How each handler runs the benchmark guest. All share BenchGuest (one VM, one code path to set
// it up) and the same decode work per exit; they differ only in who calls KVM_RUN and where the
// exit is handled.
import { Worker } from 'node:worker_threads';
import { HopThread } from '../../vmm/vcpu-thread.js';
import { BenchGuest, DONE_PORT } from './guest.js';
import { ExitHandler, KVM_EXIT_IO, type LoopResult } from './handler.js';
import type { ExitKind } from './model.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker.js';

export class BenchRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchRunError';
  }
}

/** (a) C++ alone: the addon's runNative loop, no JS per exit. The floor. */
export function runCxx(guest: BenchGuest, exit: ExitKind, warmup: number, iterations: number): LoopResult {
  guest.enter(exit);
  const vcpu = guest.vcpu.native;
  vcpu.runNative(warmup);
  const r = vcpu.runNative(iterations);
  return { elapsedNs: r.elapsedNs, exits: r.exits, checksum: r.checksum };
}

/** (b) A native vCPU thread hands each exit to JS on the main thread and waits for it. */
export function runHop(guest: BenchGuest, exit: ExitKind, warmup: number, iterations: number): Promise<LoopResult> {
  guest.enter(exit);
  const handler = new ExitHandler(guest.vcpu.run);
  return new Promise((resolve, reject) => {
    let count = 0;
    let t0 = 0n;
    const finish = (result: LoopResult | Error): void => {
      // stop() joins the thread; deferred so it is not called from inside its own callback.
      setImmediate(() => {
        thread.stop();
        guest.vcpu.clearKick();
        if (result instanceof Error) reject(result);
        else resolve(result);
      });
    };
    const thread = new HopThread(guest.vcpu, (reason: number, errno?: number): boolean => {
      if (reason < 0) {
        finish(new BenchRunError(`KVM_RUN failed in the vCPU thread: errno ${errno}`));
        return false;
      }
      if (!handler.handle(reason)) {
        finish(new BenchRunError(`unexpected exit reason ${reason} after ${count} exits`));
        return false;
      }
      count++;
      if (count === warmup) {
        handler.checksum = 0;
        t0 = process.hrtime.bigint();
      } else if (count === warmup + iterations) {
        finish({ elapsedNs: Number(process.hrtime.bigint() - t0), exits: iterations, checksum: handler.checksum });
        return false;
      }
      return true;
    });
  });
}

/** (c)/(d): a worker_thread that runs the vCPU synchronously, through the addon or koffi. */
export class WorkerVariant {
  private readonly worker: Worker;
  private pending: ((reply: WorkerReply) => void) | undefined;
  private failure: Error | undefined;

  constructor(private readonly guest: BenchGuest, mode: WorkerInit['mode']) {
    const init: WorkerInit = { vcpuId: guest.vcpu.id, mode };
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
    this.worker.on('message', (reply: WorkerReply) => {
      const p = this.pending;
      this.pending = undefined;
      p?.(reply);
    });
    this.worker.on('error', (e: Error) => {
      this.failure = e;
      this.pending?.({ ok: false, error: e.message });
    });
  }

  async run(exit: ExitKind, warmup: number, iterations: number): Promise<LoopResult> {
    if (this.failure) throw this.failure;
    this.guest.enter(exit);
    const reply = await new Promise<WorkerReply>((resolve) => {
      this.pending = resolve;
      const req: WorkerRequest = { warmup, iterations };
      this.worker.postMessage(req);
    });
    if (!reply.ok) throw new BenchRunError(reply.error);
    return reply.result;
  }

  async close(): Promise<void> {
    this.worker.postMessage('close');
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
  }
}

/**
 * The in-kernel rungs: the guest runs `iterations` CPUIDs (emulated by KVM) or ioeventfd writes
 * (KVM signals an eventfd) and then one OUT to DONE_PORT, the only exit that reaches user space.
 */
export function runInKernel(guest: BenchGuest, exit: ExitKind, iterations: number): LoopResult {
  guest.enter(exit, iterations);
  const efd = exit === 'ioeventfd-pio' ? guest.ioeventfdPio : exit === 'ioeventfd-mmio' ? guest.ioeventfdMmio : undefined;
  efd?.drain();
  const r = guest.vcpu.native.runNative(1, DONE_PORT);
  if (r.reason !== KVM_EXIT_IO || r.exits !== 1) {
    throw new BenchRunError(`${exit}: expected one exit to user space (OUT to DONE_PORT), got ${r.exits} ending with reason ${r.reason}`);
  }
  if (efd) {
    const signalled = efd.drain();
    if (signalled !== BigInt(iterations)) {
      throw new BenchRunError(`${exit}: the ioeventfd counted ${signalled} writes, the guest made ${iterations}`);
    }
  }
  return { elapsedNs: r.elapsedNs, exits: iterations, checksum: 0 };
}
