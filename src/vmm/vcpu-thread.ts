// Exit-path design (b), kept for the exit benchmark: a native thread runs KVM_RUN and hands each
// exit to onExit on this JS thread (a thread hop), waiting for it before re-entering the guest.
import { NativeVcpuThread, native as addon } from './native.js';
import { native } from './errors.js';
import type { Vcpu } from './vcpu.js';

export class HopThread {
  private thread: NativeVcpuThread | undefined;

  /** onExit(reason, errno?) returns false to end the thread's loop; reason -1 means KVM_RUN failed. */
  constructor(vcpu: Vcpu, onExit: (reason: number, errno?: number) => boolean) {
    this.thread = native(() => new (addon().VcpuThread)(vcpu.native, onExit));
  }

  /** Kicks the vCPU out of KVM_RUN and joins the thread. Call clearKick() before running it again. */
  stop(): void {
    this.thread?.stop();
    this.thread = undefined;
  }
}
