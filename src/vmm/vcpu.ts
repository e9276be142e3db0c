// One vCPU: register state and the synchronous run() of the chosen exit-path design — the
// thread that calls run() (a worker_thread per vCPU) handles the exit itself, no thread hop.
import { NativeVcpu, native as addon } from './native.js';
import { DisposedError, native } from './errors.js';
import {
  CpuidEntry,
  KVM_RUN,
  MsrEntry,
  Regs,
  Sregs,
  decodeMsrs,
  decodeRegs,
  decodeSregs,
  encodeCpuid,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
} from './kvm-structs.js';

/** KVM_SET_MSRS set fewer MSRs than asked: names the first one it refused. */
export class MsrRefusedError extends Error {
  constructor(readonly index: number, readonly set: number, readonly asked: number) {
    super(
      `KVM_SET_MSRS set ${set} of ${asked} MSRs and stopped at MSR 0x${index.toString(16)}; ` +
        `offer only MSRs from KVM_GET_MSR_INDEX_LIST`,
    );
    this.name = 'MsrRefusedError';
  }
}

/** Raw-state ioctls whose struct tsvmm passes through as bytes. */
export type RawState = 'FPU' | 'LAPIC' | 'MP_STATE' | 'VCPU_EVENTS' | 'XCRS' | 'DEBUGREGS';
const RAW_SIZE_KEY: Record<RawState, string> = {
  FPU: 'kvm_fpu',
  LAPIC: 'kvm_lapic_state',
  MP_STATE: 'kvm_mp_state',
  VCPU_EVENTS: 'kvm_vcpu_events',
  XCRS: 'kvm_xcrs',
  DEBUGREGS: 'kvm_debugregs',
};

export class Vcpu {
  private handle: NativeVcpu | undefined;
  /** kvm_run, read through one long-lived DataView (no allocation per exit). */
  readonly run: DataView;

  private constructor(handle: NativeVcpu) {
    this.handle = handle;
    this.run = new DataView(handle.runArea);
  }

  static create(vmFd: number, index: number, mmapSize: number): Vcpu {
    return new Vcpu(native(() => addon().Vcpu.create(vmFd, index, mmapSize)));
  }

  /** A handle in this thread to a vCPU created elsewhere (by its id). */
  static attach(id: number): Vcpu {
    return new Vcpu(native(() => addon().Vcpu.attach(id)));
  }

  get native(): NativeVcpu {
    if (!this.handle) throw new DisposedError('Vcpu');
    return this.handle;
  }

  get id(): number {
    return this.native.id;
  }

  get index(): number {
    return this.native.index;
  }

  /** KVM_RUN once; returns the exit reason (KVM_EXIT_INTR after kick()). */
  runOnce(): number {
    return native(() => this.native.run());
  }

  /** Interrupts run() from any thread; it keeps returning KVM_EXIT_INTR until clearKick(). */
  kick(): void {
    this.native.kick();
  }

  clearKick(): void {
    this.native.clearKick();
  }

  get exitReason(): number {
    return this.run.getUint32(KVM_RUN.exitReason, true);
  }

  getRegs(): Regs {
    const buf = new Uint8Array(144);
    native(() => addon().ioctl(this.native.fd, 'KVM_GET_REGS', buf));
    return decodeRegs(buf);
  }

  setRegs(regs: Regs): void {
    native(() => addon().ioctl(this.native.fd, 'KVM_SET_REGS', encodeRegs(regs)));
  }

  getSregs(): Sregs {
    const buf = new Uint8Array(312);
    native(() => addon().ioctl(this.native.fd, 'KVM_GET_SREGS', buf));
    return decodeSregs(buf);
  }

  setSregs(sregs: Sregs): void {
    native(() => addon().ioctl(this.native.fd, 'KVM_SET_SREGS', encodeSregs(sregs)));
  }

  getRaw(kind: RawState): Uint8Array {
    const buf = new Uint8Array(addon().structSizes()[RAW_SIZE_KEY[kind]] ?? 0);
    native(() => addon().ioctl(this.native.fd, `KVM_GET_${kind}`, buf));
    return buf;
  }

  setRaw(kind: RawState, buf: Uint8Array): void {
    native(() => addon().ioctl(this.native.fd, `KVM_SET_${kind}`, buf));
  }

  getMsrs(indices: readonly number[]): MsrEntry[] {
    const buf = encodeMsrs(indices.map((index) => ({ index, data: 0n })));
    const got = native(() => addon().ioctl(this.native.fd, 'KVM_GET_MSRS', buf));
    return decodeMsrs(buf).slice(0, got);
  }

  /** KVM_SET_MSRS; a short count is an error naming the MSR KVM stopped at. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const set = native(() => addon().ioctl(this.native.fd, 'KVM_SET_MSRS', encodeMsrs(entries)));
    if (set !== entries.length) throw new MsrRefusedError(entries[set]?.index ?? -1, set, entries.length);
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    native(() => addon().ioctl(this.native.fd, 'KVM_SET_CPUID2', encodeCpuid(entries)));
  }

  dispose(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}

