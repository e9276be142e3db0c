// Per-vCPU CPUID from KVM_GET_SUPPORTED_CPUID (a pure transformation, after Firecracker's cpuid
// normalisation) for the simple topology tsvmm offers: N vCPUs, 1 socket, N cores, 1 thread per
// core, APIC id = vCPU index.
//
// Every vendor:
//   leaf 0x1     EBX[31:24] initial APIC id, EBX[23:16] addressable logical ids per package
//                (next power of two >= N, capped at 255), EBX[15:8] CLFLUSH size 8 (64 bytes);
//                ECX[31] hypervisor set, ECX[24] TSC-deadline set (KVM's in-kernel LAPIC emulates
//                it; KVM reports it through KVM_CAP_TSC_DEADLINE_TIMER, not in this leaf),
//                ECX[15] PDCM cleared (no IA32_PERF_CAPABILITIES); EDX[28] HTT = N > 1.
//   leaf 0xb     (and 0x1f when offered) rebuilt: subleaf 0 = SMT level (shift 0, 1 thread,
//                type 1), subleaf 1 = core level (shift ceil(log2 N), N logical processors,
//                type 2), subleaf 2 = invalid (type 0); EDX = x2APIC id in each.
//   0x40000000   KVM's paravirt signature 'KVMKVMKVM' passes through when KVM offers it (never
//                invented: kvm-clock & co. need KVM behind it).
// Intel (GenuineIntel):
//   leaf 0x4     EAX[25:14] threads sharing the cache - 1 (0 for L1/L2, N-1 for L3),
//                EAX[31:26] cores per package - 1 (N-1, capped at 63).
//   leaf 0x6     turbo (EAX[1]) and energy-perf bias (ECX[3]) cleared.
//   leaf 0x7.0   WAITPKG (ECX[5]) cleared: no UMWAIT/TPAUSE idling a physical core.
//   leaf 0xa     zeroed: no virtual PMU (no perf-counter MSRs for the guest to probe).
// AMD (AuthenticAMD, HygonGenuine):
//   0x80000008   ECX[7:0] NC = N-1, ECX[15:12] ApicIdCoreIdSize = ceil(log2 N).
//   0x8000001d   (when offered) cache sharing as leaf 4.
//   0x8000001e   (when offered) EAX extended APIC id, EBX core id / 1 thread per core, ECX node 0.
//   leaf 0x7.0   EDX[29] ARCH_CAPABILITIES cleared (no such MSR on AMD).
// Host-dependent parts of Firecracker's normalisation (vendor id and cache leaves copied from the
// host's own CPUID, brand string) are left out: this module never runs CPUID itself.

import type { CpuidEntry } from '../vmm/kvm-structs.js';
import { BootError, hex } from './errors.js';
import { MAX_MPTABLE_CPUS } from './mptable.js';

/** kvm_cpuid_entry2.flags: the leaf has subleaves selected by ECX. */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export const KVM_SIGNATURE = { ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x4d } as const; // "KVMKVMKVM\0\0\0"

export type CpuVendor = 'intel' | 'amd' | 'other';

export interface CpuidOptions {
  /** 0-based index of this vCPU; also its APIC id. */
  vcpuIndex: number;
  vcpuCount: number;
  /** Advertise the TSC-deadline timer (default true; pass false when KVM lacks the capability). */
  tscDeadline?: boolean;
}

function setBit(v: number, bit: number, on: boolean): number {
  return (on ? v | (1 << bit) : v & ~(1 << bit)) >>> 0;
}

/** v with bits [lo, hi] replaced by field (which must fit). */
function setField(v: number, lo: number, hi: number, field: number): number {
  const width = hi - lo + 1;
  const mask = width === 32 ? 0xffffffff : ((1 << width) - 1) >>> 0;
  return ((v & ~((mask << lo) >>> 0)) | ((field & mask) << lo)) >>> 0;
}

function getField(v: number, lo: number, hi: number): number {
  const width = hi - lo + 1;
  return (v >>> lo) & (width === 32 ? 0xffffffff : (1 << width) - 1);
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Bits of APIC id that number the logical processors of a package of n: ceil(log2 n). */
export function packageIdBits(n: number): number {
  let bits = 0;
  while (1 << bits < n) bits++;
  return bits;
}

export function cpuVendor(entries: readonly CpuidEntry[]): CpuVendor {
  const l0 = entries.find((e) => e.function === 0);
  if (!l0) return 'other';
  const s = (v: number): string => String.fromCharCode(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  const id = s(l0.ebx) + s(l0.edx) + s(l0.ecx);
  if (id === 'GenuineIntel') return 'intel';
  if (id === 'AuthenticAMD' || id === 'HygonGenuine') return 'amd';
  return 'other';
}

/** True when the entries carry KVM's paravirt signature at 0x40000000. */
export function hasKvmSignature(entries: readonly CpuidEntry[]): boolean {
  const e = entries.find((x) => x.function === 0x40000000);
  return e !== undefined && e.ebx === KVM_SIGNATURE.ebx && e.ecx === KVM_SIGNATURE.ecx && e.edx === KVM_SIGNATURE.edx;
}

/** The x2APIC topology subleaves (leaf 0xb or 0x1f) for this vCPU. */
function topologyLeaves(fn: number, apicId: number, count: number): CpuidEntry[] {
  const flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  return [
    { function: fn, index: 0, flags, eax: 0, ebx: 1, ecx: (1 << 8) | 0, edx: apicId },
    { function: fn, index: 1, flags, eax: packageIdBits(count), ebx: count, ecx: (2 << 8) | 1, edx: apicId },
    { function: fn, index: 2, flags, eax: 0, ebx: 0, ecx: 2, edx: apicId },
  ];
}

/**
 * The CPUID table for one vCPU (KVM_SET_CPUID2), from KVM_GET_SUPPORTED_CPUID's entries. Does not
 * modify its input. Throws BootError('bad-vcpu-count') for a bad index/count and BootError('cpuid')
 * when leaf 1 is missing.
 */
export function vcpuCpuid(supported: readonly CpuidEntry[], opts: CpuidOptions): CpuidEntry[] {
  const { vcpuIndex: id, vcpuCount: n } = opts;
  if (!Number.isInteger(n) || n < 1 || n > MAX_MPTABLE_CPUS) {
    throw new BootError('bad-vcpu-count', `${n} vCPUs cannot be described: give 1 to ${MAX_MPTABLE_CPUS}`);
  }
  if (!Number.isInteger(id) || id < 0 || id >= n) {
    throw new BootError('bad-vcpu-count', `vCPU index ${id} is out of range for ${n} vCPUs`);
  }
  const vendor = cpuVendor(supported);
  const hasLeaf = (fn: number): boolean => supported.some((e) => e.function === fn);
  if (!hasLeaf(1)) {
    throw new BootError(
      'cpuid',
      `the supported CPUID list (${supported.length} entries) has no leaf ${hex(1)} (features, APIC id), which every x86_64 CPU has: pass KVM_GET_SUPPORTED_CPUID's entries unfiltered`,
    );
  }
  const tscDeadline = opts.tscDeadline ?? true;

  const out: CpuidEntry[] = [];
  for (const src of supported) {
    // Topology leaves are rebuilt below.
    if (src.function === 0xb || src.function === 0x1f) continue;
    const e: CpuidEntry = { ...src };
    switch (e.function) {
      case 0x1:
        e.ebx = setField(e.ebx, 8, 15, 8);
        e.ebx = setField(e.ebx, 16, 23, Math.min(nextPow2(n), 0xff));
        e.ebx = setField(e.ebx, 24, 31, id);
        e.ecx = setBit(e.ecx, 15, false);
        e.ecx = setBit(e.ecx, 24, tscDeadline);
        e.ecx = setBit(e.ecx, 31, true);
        e.edx = setBit(e.edx, 28, n > 1);
        break;
      case 0x4:
        if (vendor === 'intel' && (e.eax | e.ebx | e.ecx | e.edx) !== 0) {
          const level = getField(e.eax, 5, 7);
          if (level === 1 || level === 2) e.eax = setField(e.eax, 14, 25, 0);
          else if (level === 3) e.eax = setField(e.eax, 14, 25, Math.min(n - 1, 0xfff));
          e.eax = setField(e.eax, 26, 31, Math.min(n - 1, 63));
        }
        break;
      case 0x6:
        if (vendor === 'intel') {
          e.eax = setBit(e.eax, 1, false);
          e.ecx = setBit(e.ecx, 3, false);
        }
        break;
      case 0x7:
        if (e.index === 0) {
          if (vendor === 'intel') e.ecx = setBit(e.ecx, 5, false);
          if (vendor === 'amd') e.edx = setBit(e.edx, 29, false);
        }
        break;
      case 0xa:
        if (vendor === 'intel') e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case 0x80000008:
        if (vendor === 'amd') {
          e.ecx = setField(e.ecx, 0, 7, n - 1);
          e.ecx = setField(e.ecx, 12, 15, packageIdBits(n));
        }
        break;
      case 0x8000001d:
        if (vendor === 'amd') {
          const level = getField(e.eax, 5, 7);
          if (level === 1 || level === 2) e.eax = setField(e.eax, 14, 25, 0);
          else if (level === 3) e.eax = setField(e.eax, 14, 25, n - 1);
        }
        break;
      case 0x8000001e:
        if (vendor === 'amd') {
          e.eax = id;
          e.ebx = id & 0xff; // core id; threads per core - 1 = 0 in EBX[15:8]
          e.ecx = 0; // node 0, one node per processor
        }
        break;
      default:
        break;
    }
    out.push(e);
  }
  if (hasLeaf(0xb)) out.push(...topologyLeaves(0xb, id, n));
  if (hasLeaf(0x1f)) out.push(...topologyLeaves(0x1f, id, n));
  return out;
}

/** Looks up a leaf/subleaf in a CPUID table, as the CPU would (index only for indexed leaves). */
export function findCpuid(entries: readonly CpuidEntry[], fn: number, index = 0): CpuidEntry | undefined {
  return entries.find((e) => e.function === fn && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) === 0 || e.index === index));
}
