// The vCPU run loop of the chosen exit-path design: the thread that owns the vCPU (a
// worker_thread) calls KVM_RUN and dispatches PIO/MMIO exits to its buses itself. Nothing is
// allocated per exit: kvm_run is read through the Vcpu's DataView and the data windows handed to
// devices are views cached per (offset, size).
import type { Bus } from './bus.js';
import { KVM_RUN, exitReasonName } from './kvm-structs.js';
import type { Vcpu } from './vcpu.js';
import { describeLapic } from './lapic-state.js';
import { describeKvmClock, MSR_KVM_SYSTEM_TIME_NEW } from './pvclock.js';
import type { GuestMemory } from './guest-memory.js';

const KVM_EXIT_IO = 2;
const KVM_EXIT_HLT = 5;
const KVM_EXIT_MMIO = 6;
const KVM_EXIT_SHUTDOWN = 8;
const KVM_EXIT_FAIL_ENTRY = 9;
const KVM_EXIT_INTR = 10;
const KVM_EXIT_INTERNAL_ERROR = 17;
const KVM_EXIT_SYSTEM_EVENT = 24;
const KVM_EXIT_IO_OUT = 1;
const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
const KVM_SYSTEM_EVENT_RESET = 2;

/** Why a vCPU loop ended. 'reset' and 'poweroff' are the guest's orderly ways out. */
export type VcpuStopKind = 'stop-requested' | 'reset' | 'poweroff' | 'triple-fault' | 'internal-error' | 'fail-entry' | 'hlt' | 'unexpected-exit';

export interface VcpuStop {
  kind: VcpuStopKind;
  detail: string;
  exits: number;
}

/**
 * Shared control word of a VM's vCPU threads (Int32Array over a SharedArrayBuffer):
 * cell 0 is 0 while running, else the reason code of the first stop request; cell 1, where
 * present (CONTROL_CELLS), counts report requests (requestReport).
 */
export const CONTROL_CELLS = 2;
export const STOP_CODES: Record<number, VcpuStopKind> = { 1: 'stop-requested', 2: 'reset', 3: 'poweroff' };
const STOP_DETAILS: Record<number, string> = {
  1: 'the VMM stopped the vCPUs',
  2: 'the guest reset the machine (i8042 or ACPI reset register)',
  3: 'the guest powered off',
};
export function requestStop(control: Int32Array, code: 1 | 2 | 3): boolean {
  return Atomics.compareExchange(control, 0, 0, code) === 0;
}

/**
 * Asks every vCPU loop to describe where its vCPU is (onReport) and go on running; the caller
 * kicks the vCPUs out of KVM_RUN afterwards. For a guest that seems stuck: which code it runs.
 */
export function requestReport(control: Int32Array): void {
  Atomics.add(control, 1, 1);
}

const MSR_IA32_TSC = 0x10;
const MSR_IA32_TSC_DEADLINE = 0x6e0;
const MSR_IA32_TSC_ADJUST = 0x3b;
const MP_STATES = ['runnable', 'uninitialized', 'init-received', 'halted', 'sipi-received', 'stopped', 'check-stop', 'operating', 'load'];

/**
 * One line on where `vcpu` is: instruction pointer, stack, flags, paging, run state, LAPIC and,
 * given the guest's memory, its kvm-clock and when its TSC deadline falls on that clock.
 */
export function describeVcpu(vcpu: Vcpu, exits: number, memory?: GuestMemory): string {
  const r = vcpu.getRegs();
  const s = vcpu.getSregs();
  const mp = new DataView(vcpu.getRaw('MP_STATE').buffer).getUint32(0, true);
  const hex = (v: bigint): string => `0x${v.toString(16)}`;
  const interrupts = (r.rflags & 0x200n) !== 0n ? 'on' : 'off';
  // Where the guest waits for an interrupt, what its LAPIC holds and when its timer fires next
  // (TSC-deadline mode keeps the deadline in an MSR; 0 is disarmed).
  let lapic: string;
  try {
    lapic = describeLapic(vcpu.getRaw('LAPIC'));
    const [deadline, tsc, clock, adjust] = vcpu.getMsrs([MSR_IA32_TSC_DEADLINE, MSR_IA32_TSC, MSR_KVM_SYSTEM_TIME_NEW, MSR_IA32_TSC_ADJUST]);
    if (deadline && tsc) lapic += `, TSC deadline ${deadline.data === 0n ? 'disarmed' : `${deadline.data > tsc.data ? '+' : ''}${deadline.data - tsc.data} TSC ticks from now`}`;
    // The raw TSC (KVM's view: the host's TSC plus the guest's offset) and the guest's own
    // adjustment of it: two reports tell whether KVM's view of the guest TSC moves at its rate.
    if (tsc) lapic += `, TSC ${tsc.data}${adjust ? ` (TSC_ADJUST ${BigInt.asIntN(64, adjust.data)})` : ''}`;
    if (memory && tsc && clock) lapic += `; ${describeKvmClock(memory, clock.data, tsc.data, deadline?.data)}`;
  } catch (e) {
    lapic = `LAPIC unreadable: ${(e as Error).message}`;
  }
  return `rip ${hex(r.rip)} rsp ${hex(r.rsp)} rflags ${hex(r.rflags)} (interrupts ${interrupts}) cr3 ${hex(s.cr3)} mp_state ${MP_STATES[mp] ?? mp}, ${exits} exits so far; ${lapic}`;
}

export interface VcpuLoopOptions {
  vcpu: Vcpu;
  pio: Bus;
  mmio: Bus;
  control: Int32Array;
  /** Receives describeVcpu's line after each requestReport (a control word of CONTROL_CELLS). */
  onReport?: (line: string) => void;
  /** The guest's memory, for the report's kvm-clock reading. */
  memory?: GuestMemory;
}

export function runVcpuLoop({ vcpu, pio, mmio, control, onReport, memory }: VcpuLoopOptions): VcpuStop {
  const reports = onReport !== undefined && control.length >= CONTROL_CELLS;
  let reported = reports ? Atomics.load(control, 1) : 0;
  const run = vcpu.run;
  const bytes = new Uint8Array(run.buffer, run.byteOffset, run.byteLength);
  const views = new Map<number, Uint8Array>();
  const view = (offset: number, size: number): Uint8Array => {
    const key = offset * 16 + size;
    let v = views.get(key);
    if (!v) {
      if (offset + size > bytes.byteLength) throw new RangeError(`kvm_run data window [${offset}, +${size}) past the mapping`);
      views.set(key, (v = bytes.subarray(offset, offset + size)));
    }
    return v;
  };
  let exits = 0;
  for (;;) {
    const reason = vcpu.runOnce();
    exits++;
    switch (reason) {
      case KVM_EXIT_IO: {
        const out = run.getUint8(KVM_RUN.ioDirection) === KVM_EXIT_IO_OUT;
        const size = run.getUint8(KVM_RUN.ioSize);
        const port = run.getUint16(KVM_RUN.ioPort, true);
        const count = run.getUint32(KVM_RUN.ioCount, true);
        const base = run.getUint32(KVM_RUN.ioDataOffset, true);
        // String I/O (rep ins/outs) arrives as `count` items in one exit.
        for (let i = 0; i < count; i++) {
          const data = view(base + i * size, size);
          if (out) pio.write(port, data);
          else pio.read(port, data);
        }
        break;
      }
      case KVM_EXIT_MMIO: {
        const addr = run.getUint32(KVM_RUN.mmioPhysAddr, true) + run.getUint32(KVM_RUN.mmioPhysAddr + 4, true) * 2 ** 32;
        const len = Math.min(run.getUint32(KVM_RUN.mmioLen, true), 8);
        const data = view(KVM_RUN.mmioData, len);
        if (run.getUint8(KVM_RUN.mmioIsWrite)) mmio.write(addr, data);
        else mmio.read(addr, data);
        break;
      }
      case KVM_EXIT_INTR:
        if (Atomics.load(control, 0) === 0) vcpu.clearKick(); // not a stop: a report request or a stray signal
        if (reports && Atomics.load(control, 1) !== reported) {
          reported = Atomics.load(control, 1);
          onReport(describeVcpu(vcpu, exits, memory));
        }
        break;
      case KVM_EXIT_HLT:
        return { kind: 'hlt', detail: 'the vCPU halted with no in-kernel irqchip to wake it', exits };
      case KVM_EXIT_SHUTDOWN:
        requestStop(control, 2);
        return { kind: 'triple-fault', detail: 'KVM_EXIT_SHUTDOWN (triple fault): the guest reset the machine', exits };
      case KVM_EXIT_SYSTEM_EVENT: {
        const type = run.getUint32(KVM_RUN.systemEventType, true);
        const reset = type === KVM_SYSTEM_EVENT_RESET;
        requestStop(control, reset ? 2 : 3);
        return {
          kind: reset ? 'reset' : 'poweroff',
          detail: `KVM_EXIT_SYSTEM_EVENT type ${type} (${reset ? 'reset' : type === KVM_SYSTEM_EVENT_SHUTDOWN ? 'shutdown' : 'other'})`,
          exits,
        };
      }
      case KVM_EXIT_INTERNAL_ERROR: {
        const suberror = run.getUint32(KVM_RUN.internalSuberror, true);
        const n = Math.min(run.getUint32(KVM_RUN.internalNdata, true), 16);
        const data = Array.from({ length: n }, (_, i) => `0x${run.getBigUint64(KVM_RUN.internalData + i * 8, true).toString(16)}`);
        requestStop(control, 1);
        const what = suberror === 1 ? 'emulation failure' : `suberror ${suberror}`;
        return { kind: 'internal-error', detail: `KVM_EXIT_INTERNAL_ERROR (${what}) data [${data.join(', ')}] at rip 0x${vcpu.getRegs().rip.toString(16)}`, exits };
      }
      case KVM_EXIT_FAIL_ENTRY: {
        const hw = run.getBigUint64(KVM_RUN.failEntryReason, true);
        requestStop(control, 1);
        return { kind: 'fail-entry', detail: `KVM_EXIT_FAIL_ENTRY hardware reason 0x${hw.toString(16)} on cpu ${run.getUint32(KVM_RUN.failEntryCpu, true)}`, exits };
      }
      default:
        requestStop(control, 1);
        return { kind: 'unexpected-exit', detail: `unexpected ${exitReasonName(reason)}`, exits };
    }
    const stop = Atomics.load(control, 0);
    if (stop !== 0) return { kind: STOP_CODES[stop] ?? 'stop-requested', detail: STOP_DETAILS[stop] ?? 'stop requested', exits };
  }
}
