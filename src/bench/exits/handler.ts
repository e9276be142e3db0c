// The TypeScript exit handler every JS variant runs: decode the exit from kvm_run exactly as the
// C++ floor (Vcpu.runNative in the addon) does, so the variants do the same work and their
// checksums must agree.
import { KVM_RUN } from '../../vmm/kvm-structs.js';

export const KVM_EXIT_IO = 2;
export const KVM_EXIT_MMIO = 6;
const KVM_EXIT_IO_IN = 0;

/** Handles one exit; returns false for a reason that ends the loop (neither IO nor MMIO). */
export class ExitHandler {
  checksum = 0;

  constructor(private readonly run: DataView) {}

  handle(reason: number): boolean {
    const run = this.run;
    if (reason === KVM_EXIT_IO) {
      const size = run.getUint8(KVM_RUN.ioSize);
      const port = run.getUint16(KVM_RUN.ioPort, true);
      // data_offset is a u64 but always inside the small kvm_run mapping: read the low half and
      // avoid allocating a BigInt per exit.
      const dataOffset = run.getUint32(KVM_RUN.ioDataOffset, true);
      if (run.getUint8(KVM_RUN.ioDirection) === KVM_EXIT_IO_IN) {
        const count = run.getUint32(KVM_RUN.ioCount, true);
        for (let i = 0; i < size * count; i++) run.setUint8(dataOffset + i, 0xff);
      } else {
        this.checksum += run.getUint8(dataOffset) + port + size;
      }
      return true;
    }
    if (reason === KVM_EXIT_MMIO) {
      if (run.getUint8(KVM_RUN.mmioIsWrite)) {
        const addr = run.getUint32(KVM_RUN.mmioPhysAddr, true) + run.getUint32(KVM_RUN.mmioPhysAddr + 4, true) * 2 ** 32;
        this.checksum += run.getUint8(KVM_RUN.mmioData) + addr + run.getUint32(KVM_RUN.mmioLen, true);
      } else {
        for (let i = 0; i < 8; i++) run.setUint8(KVM_RUN.mmioData + i, 0xff);
      }
      return true;
    }
    return false;
  }
}

export interface LoopResult {
  elapsedNs: number;
  exits: number;
  checksum: number;
  /** The exit reason that ended the loop early, if one did. */
  stoppedBy?: number;
}

/** Runs `warmup` exits untimed, then times `iterations` exits of `runOnce` + handler. */
export function timedLoop(runOnce: () => number, run: DataView, warmup: number, iterations: number): LoopResult {
  const handler = new ExitHandler(run);
  for (let i = 0; i < warmup; i++) {
    const reason = runOnce();
    if (!handler.handle(reason)) return { elapsedNs: 0, exits: i, checksum: handler.checksum, stoppedBy: reason };
  }
  handler.checksum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const reason = runOnce();
    if (!handler.handle(reason)) {
      return { elapsedNs: Number(process.hrtime.bigint() - t0), exits: i, checksum: handler.checksum, stoppedBy: reason };
    }
  }
  return { elapsedNs: Number(process.hrtime.bigint() - t0), exits: iterations, checksum: handler.checksum };
}
