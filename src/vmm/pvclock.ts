// The guest's kvm-clock as the guest itself reads it: the pvclock_vcpu_time_info page it
// registered with MSR_KVM_SYSTEM_TIME_NEW (Linux Documentation/virt/kvm/x86/msr.rst), scaled from
// the vCPU's TSC. For reports on a stuck guest: a clock that went back or stood still explains
// a timer armed far in the future.
import type { GuestMemory } from './guest-memory.js';

export const MSR_KVM_SYSTEM_TIME_NEW = 0x4b564d01;
/** pvclock_vcpu_time_info.flags: the host promises the clock never goes back between vCPUs. */
const PVCLOCK_TSC_STABLE_BIT = 0x1;
const PVCLOCK_INFO_SIZE = 32;

export interface PvclockInfo {
  version: number;
  tscTimestamp: bigint;
  systemTimeNs: bigint;
  tscToSystemMul: number;
  tscShift: number;
  flags: number;
}

/** Reads the pvclock page at `gpa` (struct pvclock_vcpu_time_info, 32 bytes). */
export function readPvclock(memory: GuestMemory, gpa: number): PvclockInfo {
  const b = memory.slice(gpa, PVCLOCK_INFO_SIZE);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    version: v.getUint32(0, true),
    tscTimestamp: v.getBigUint64(8, true),
    systemTimeNs: v.getBigUint64(16, true),
    tscToSystemMul: v.getUint32(24, true),
    tscShift: v.getInt8(28),
    flags: v.getUint8(29),
  };
}

/** The guest's clock in ns at `tsc`, computed as pvclock_clocksource_read() does. */
export function pvclockNs(info: PvclockInfo, tsc: bigint): bigint {
  let delta = BigInt.asUintN(64, tsc - info.tscTimestamp);
  delta = info.tscShift < 0 ? delta >> BigInt(-info.tscShift) : BigInt.asUintN(64, delta << BigInt(info.tscShift));
  return info.systemTimeNs + ((delta * BigInt(info.tscToSystemMul)) >> 32n);
}

/** TSC ticks per ns implied by the page's scale (for turning a TSC deadline into seconds). */
export function pvclockTicksPerNs(info: PvclockInfo): number {
  const ns = Number(pvclockNs({ ...info, tscTimestamp: 0n, systemTimeNs: 0n }, 1n << 32n));
  return ns > 0 ? 2 ** 32 / ns : 0;
}

/**
 * One phrase on the guest's kvm-clock at `tsc`, given the value of its MSR_KVM_SYSTEM_TIME_NEW;
 * `deadline` (a TSC-deadline MSR value, 0 = disarmed) is given in seconds from the clock's now.
 */
export function describeKvmClock(memory: GuestMemory, systemTimeMsr: bigint, tsc: bigint, deadline?: bigint): string {
  if ((systemTimeMsr & 1n) === 0n) return 'kvm-clock not enabled by the guest';
  const gpa = Number(systemTimeMsr & ~1n);
  let info: PvclockInfo;
  try {
    info = readPvclock(memory, gpa);
  } catch (e) {
    return `kvm-clock page at 0x${gpa.toString(16)} unreadable: ${(e as Error).message}`;
  }
  const now = pvclockNs(info, tsc);
  const stable = (info.flags & PVCLOCK_TSC_STABLE_BIT) !== 0 ? 'stable' : 'not marked stable';
  let text = `guest kvm-clock ${(Number(now) / 1e9).toFixed(3)} s (${stable}, last updated by KVM at ${(Number(info.systemTimeNs) / 1e9).toFixed(3)} s, version ${info.version})`;
  const perNs = pvclockTicksPerNs(info);
  if (deadline !== undefined && deadline !== 0n && perNs > 0) text += `, TSC deadline at kvm-clock ${((Number(now) + Number(deadline - tsc) / perNs) / 1e9).toFixed(3)} s`;
  return text;
}
