// Byte layouts of the KVM structs tsvmm reads and writes (linux/kvm.h, x86_64). The addon checks
// that every buffer has the kernel's exact size; tests compare these sizes with its structSizes().

export const KVM_REGS_SIZE = 144;
export const KVM_SREGS_SIZE = 312;
export const KVM_SEGMENT_SIZE = 24;
export const KVM_MSR_ENTRY_SIZE = 16;
export const KVM_CPUID_ENTRY2_SIZE = 40;

/** struct kvm_regs: 18 u64 in this order. */
export const REG_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export type Regs = Record<RegName, bigint>;

export function decodeRegs(buf: Uint8Array): Regs {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = {} as Regs;
  REG_NAMES.forEach((name, i) => {
    out[name] = dv.getBigUint64(i * 8, true);
  });
  return out;
}

export function encodeRegs(regs: Regs): Uint8Array {
  const buf = new Uint8Array(KVM_REGS_SIZE);
  const dv = new DataView(buf.buffer);
  REG_NAMES.forEach((name, i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, regs[name]), true));
  return buf;
}

/** struct kvm_segment */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** struct kvm_dtable */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** struct kvm_sregs */
export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const CONTROL = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;
const SEG_BYTES = ['type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable'] as const;

function readSegment(dv: DataView, off: number): Segment {
  const seg = {
    base: dv.getBigUint64(off, true),
    limit: dv.getUint32(off + 8, true),
    selector: dv.getUint16(off + 12, true),
  } as Segment;
  SEG_BYTES.forEach((k, i) => {
    seg[k] = dv.getUint8(off + 14 + i);
  });
  return seg;
}

function writeSegment(dv: DataView, off: number, seg: Segment): void {
  dv.setBigUint64(off, BigInt.asUintN(64, seg.base), true);
  dv.setUint32(off + 8, seg.limit >>> 0, true);
  dv.setUint16(off + 12, seg.selector & 0xffff, true);
  SEG_BYTES.forEach((k, i) => dv.setUint8(off + 14 + i, seg[k] & 0xff));
}

export function decodeSregs(buf: Uint8Array): Sregs {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = {} as Sregs;
  SEGMENTS.forEach((name, i) => {
    out[name] = readSegment(dv, i * KVM_SEGMENT_SIZE);
  });
  out.gdt = { base: dv.getBigUint64(192, true), limit: dv.getUint16(200, true) };
  out.idt = { base: dv.getBigUint64(208, true), limit: dv.getUint16(216, true) };
  CONTROL.forEach((name, i) => {
    out[name] = dv.getBigUint64(224 + i * 8, true);
  });
  out.interruptBitmap = [0, 1, 2, 3].map((i) => dv.getBigUint64(280 + i * 8, true)) as Sregs['interruptBitmap'];
  return out;
}

export function encodeSregs(s: Sregs): Uint8Array {
  const buf = new Uint8Array(KVM_SREGS_SIZE);
  const dv = new DataView(buf.buffer);
  SEGMENTS.forEach((name, i) => writeSegment(dv, i * KVM_SEGMENT_SIZE, s[name]));
  dv.setBigUint64(192, BigInt.asUintN(64, s.gdt.base), true);
  dv.setUint16(200, s.gdt.limit, true);
  dv.setBigUint64(208, BigInt.asUintN(64, s.idt.base), true);
  dv.setUint16(216, s.idt.limit, true);
  CONTROL.forEach((name, i) => dv.setBigUint64(224 + i * 8, BigInt.asUintN(64, s[name]), true));
  s.interruptBitmap.forEach((v, i) => dv.setBigUint64(280 + i * 8, v, true));
  return buf;
}

/** struct kvm_msrs with its entries: u32 nmsrs, u32 pad, then {u32 index, u32 reserved, u64 data}. */
export interface MsrEntry {
  index: number;
  data: bigint;
}

export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const buf = new Uint8Array(8 + entries.length * KVM_MSR_ENTRY_SIZE);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    dv.setUint32(8 + i * KVM_MSR_ENTRY_SIZE, e.index >>> 0, true);
    dv.setBigUint64(8 + i * KVM_MSR_ENTRY_SIZE + 8, BigInt.asUintN(64, e.data), true);
  });
  return buf;
}

export function decodeMsrs(buf: Uint8Array): MsrEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true);
  const out: MsrEntry[] = [];
  for (let i = 0; i < n && 8 + (i + 1) * KVM_MSR_ENTRY_SIZE <= buf.byteLength; i++) {
    out.push({
      index: dv.getUint32(8 + i * KVM_MSR_ENTRY_SIZE, true),
      data: dv.getBigUint64(8 + i * KVM_MSR_ENTRY_SIZE + 8, true),
    });
  }
  return out;
}

/** struct kvm_cpuid_entry2 */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const buf = new Uint8Array(8 + entries.length * KVM_CPUID_ENTRY2_SIZE);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx].forEach((v, j) => dv.setUint32(o + j * 4, v >>> 0, true));
  });
  return buf;
}

export function decodeCpuid(buf: Uint8Array): CpuidEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n && 8 + (i + 1) * KVM_CPUID_ENTRY2_SIZE <= buf.byteLength; i++) {
    const o = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    const w = (j: number): number => dv.getUint32(o + j * 4, true);
    out.push({ function: w(0), index: w(1), flags: w(2), eax: w(3), ebx: w(4), ecx: w(5), edx: w(6) });
  }
  return out;
}

/** Offsets into struct kvm_run (x86_64) that the exit handlers read. */
export const KVM_RUN = {
  immediateExit: 1,
  exitReason: 8,
  // union at 32
  ioDirection: 32,
  ioSize: 33,
  ioPort: 34,
  ioCount: 36,
  ioDataOffset: 40,
  mmioPhysAddr: 32,
  mmioData: 40,
  mmioLen: 48,
  mmioIsWrite: 52,
  failEntryReason: 32,
  failEntryCpu: 40,
  internalSuberror: 32,
  internalNdata: 36,
  internalData: 40,
  systemEventType: 32,
} as const;

/** Names for exit reasons, for messages. */
export const EXIT_REASON_NAMES: Record<number, string> = {
  0: 'UNKNOWN', 1: 'EXCEPTION', 2: 'IO', 3: 'HYPERCALL', 4: 'DEBUG', 5: 'HLT', 6: 'MMIO',
  7: 'IRQ_WINDOW_OPEN', 8: 'SHUTDOWN', 9: 'FAIL_ENTRY', 10: 'INTR', 11: 'SET_TPR', 12: 'TPR_ACCESS',
  16: 'NMI', 17: 'INTERNAL_ERROR', 24: 'SYSTEM_EVENT',
};

export function exitReasonName(reason: number): string {
  return EXIT_REASON_NAMES[reason] ?? `exit reason ${reason}`;
}

/** struct kvm_fpu (416 bytes) with only the control words set: fcw at 128, mxcsr at 408. */
export const KVM_FPU_SIZE = 416;
export function encodeFpu(fpu: { fcw: number; mxcsr: number }): Uint8Array {
  const buf = new Uint8Array(KVM_FPU_SIZE);
  const dv = new DataView(buf.buffer);
  dv.setUint16(128, fpu.fcw, true);
  dv.setUint32(408, fpu.mxcsr, true);
  return buf;
}
