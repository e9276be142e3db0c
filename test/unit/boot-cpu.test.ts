// Boot vCPU state: GDT/IDT, identity page tables, regs/sregs, boot MSRs, LAPIC LINTs, and CPUID.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { CpuidEntry, Segment, Sregs } from '../../src/vmm/kvm-structs.js';
import {
  BOOT_FPU,
  BootError,
  bootMsrs,
  bootRegs,
  cpuVendor,
  findCpuid,
  gdtEntry,
  hasKvmSignature,
  longModeSregs,
  segmentFromGdt,
  setLapicLints,
  vcpuCpuid,
  writeGdtAndIdt,
  writeIdentityPageTables,
} from '../../src/boot/index.js';

// ---------------------------------------------------------------------------------------------
// GDT / IDT

test('GDT descriptors match Firecracker\'s values', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 }]);
  m.fill(0x500, 0x40, 0xff);
  const t = writeGdtAndIdt(m);
  assert.is(m.readU64(0x500), 0n);
  assert.is(m.readU64(0x508), 0x00af_9b00_0000_ffffn);
  assert.is(m.readU64(0x510), 0x00cf_9300_0000_ffffn);
  assert.is(m.readU64(0x518), 0x008f_8b00_0000_ffffn);
  assert.is(m.readU64(0x520), 0n);
  assert.equal(t.gdt, { base: 0x500n, limit: 31 });
  assert.equal(t.idt, { base: 0x520n, limit: 7 });
});

test('gdtEntry/segmentFromGdt round-trip the fields (Firecracker\'s field_parse case)', () => {
  const seg = segmentFromGdt(gdtEntry(0xa09b, 0x100000, 0xfffff), 0);
  assert.equal(
    { g: seg.g, db: seg.db, l: seg.l, avl: seg.avl, present: seg.present, dpl: seg.dpl, s: seg.s, type: seg.type, base: seg.base, limit: seg.limit, unusable: seg.unusable },
    { g: 1, db: 0, l: 1, avl: 0, present: 1, dpl: 0, s: 1, type: 0xb, base: 0x100000n, limit: 0xffffffff, unusable: 0 },
  );
  const high = segmentFromGdt(gdtEntry(0x0093, 0xfedc_ba98, 0x12345), 5);
  assert.is(high.base, 0xfedcba98n);
  assert.is(high.limit, 0x12345, 'byte-granular limit is not scaled');
  assert.is(high.selector, 40);
  assert.is(segmentFromGdt(0n, 0).unusable, 1);
});

// ---------------------------------------------------------------------------------------------
// Page tables

test('identity page tables: PML4 -> PDPT -> PD with 512 2 MiB pages covering 1 GiB', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 }]);
  m.fill(0x9000, 0x3000, 0xff);
  const cr3 = writeIdentityPageTables(m);
  assert.is(cr3, 0x9000n);
  assert.is(m.readU64(0x9000), 0xa003n);
  assert.is(m.readU64(0xa000), 0xb003n);
  for (let i = 0; i < 512; i++) assert.is(m.readU64(0xb000 + i * 8), (BigInt(i) << 21n) + 0x83n);
  assert.is(m.readU64(0xb000 + 511 * 8) & ~0xfffn, 0x3fe00000n, 'the last page maps 1 GiB - 2 MiB');
  for (let o = 8; o < 4096; o += 8) {
    assert.is(m.readU64(0x9000 + o), 0n);
    assert.is(m.readU64(0xa000 + o), 0n);
  }
});

// ---------------------------------------------------------------------------------------------
// Registers

function kvmResetSregs(): Sregs {
  const seg = (selector: number, type: number): Segment => ({ base: 0n, limit: 0xffff, selector, type, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 });
  return {
    cs: { ...seg(0xf000, 11), base: 0xffff0000n },
    ds: seg(0, 3), es: seg(0, 3), fs: seg(0, 3), gs: seg(0, 3), ss: seg(0, 3),
    tr: seg(0, 11), ldt: seg(0, 2),
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0x40n, cr8: 0n, efer: 0x1n, apicBase: 0xfee00900n,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

test('bootRegs: RIP = entry, RSI = zero page, RSP = RBP = 0x8ff0, RFLAGS = 2, the rest 0', () => {
  const r = bootRegs(0x1000000);
  assert.is(r.rip, 0x1000000n);
  assert.is(r.rsi, 0x7000n);
  assert.is(r.rsp, 0x8ff0n);
  assert.is(r.rbp, 0x8ff0n);
  assert.is(r.rflags, 2n);
  for (const k of ['rax', 'rbx', 'rcx', 'rdx', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const) assert.is(r[k], 0n, k);
});

test('longModeSregs: flat 64-bit segments from the GDT, paging and long mode on, KVM fields kept', () => {
  const base = kvmResetSregs();
  const before = structuredClone(base);
  const s = longModeSregs(base);
  assert.equal(base, before, 'the input is not modified');
  assert.equal(s.cs, { base: 0n, limit: 0xffffffff, selector: 0x08, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
  for (const k of ['ds', 'es', 'fs', 'gs', 'ss'] as const) {
    assert.equal(s[k], { base: 0n, limit: 0xffffffff, selector: 0x10, type: 0x3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 }, k);
  }
  assert.is(s.tr.selector, 0x18);
  assert.is(s.tr.type, 0xb);
  assert.is(s.tr.s, 0);
  assert.equal(s.gdt, { base: 0x500n, limit: 31 });
  assert.equal(s.idt, { base: 0x520n, limit: 7 });
  assert.is(s.cr0, 0x60000010n | 0x1n | 0x80000000n);
  assert.is(s.cr3, 0x9000n);
  assert.is(s.cr4, 0x40n | 0x20n);
  assert.is(s.efer, 0x1n | 0x100n | 0x400n);
  assert.is(s.apicBase, 0xfee00900n);
  assert.equal(s.ldt, base.ldt);
  s.ds.base = 5n;
  assert.is(s.es.base, 0n, 'segments are distinct objects');
});

test('boot MSRs: Firecracker\'s list, restricted to the MSRs KVM offers', () => {
  const all = bootMsrs();
  assert.is(all.entries.length, 11);
  assert.equal(all.entries.find((e) => e.index === 0x1a0), { index: 0x1a0, data: 1n });
  assert.equal(all.entries.find((e) => e.index === 0x2ff), { index: 0x2ff, data: 0x806n });
  const some = bootMsrs([0x174, 0x10, 0xc0000082, 0x1234]);
  assert.equal(some.entries.map((e) => e.index), [0x174, 0xc0000082, 0x10]);
  assert.is(some.skipped.length, 8);
  assert.ok(some.skipped.includes(0x1a0));
  assert.equal(BOOT_FPU, { fcw: 0x37f, mxcsr: 0x1f80 });
});

test('LAPIC: LINT0 ExtINT, LINT1 NMI, other bits kept', () => {
  const lapic = new Uint8Array(1024);
  const dv = new DataView(lapic.buffer);
  dv.setUint32(0x350, 0x0001_0300, true); // masked, some other mode
  dv.setUint32(0x360, 0x0001_0000, true);
  dv.setUint32(0x370, 0xdead, true);
  setLapicLints(lapic);
  assert.is(dv.getUint32(0x350, true), 0x0001_0700);
  assert.is(dv.getUint32(0x360, true), 0x0001_0400);
  assert.is(dv.getUint32(0x370, true), 0xdead);
  assert.throws(() => setLapicLints(new Uint8Array(100)), /1024/);
});

// ---------------------------------------------------------------------------------------------
// CPUID

function str4(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) >>> 0;
}

function entry(fn: number, index: number, eax: number, ebx: number, ecx: number, edx: number, flags = 0): CpuidEntry {
  return { function: fn, index, flags, eax: eax >>> 0, ebx: ebx >>> 0, ecx: ecx >>> 0, edx: edx >>> 0 };
}

/** Roughly what KVM_GET_SUPPORTED_CPUID returns on an Intel host. */
function intelSupported(): CpuidEntry[] {
  return [
    entry(0, 0, 0x1f, str4('Genu'), str4('ntel'), str4('ineI')),
    entry(1, 0, 0x806ec, 0x00100800 | (7 << 24), 0x7ffafbbf | (1 << 15), 0x0fabfbff),
    entry(4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0, 1), // L1d
    entry(4, 1, 0x1c004122, 0x01c0003f, 0x3f, 0, 1), // L1i
    entry(4, 2, 0x1c004143, 0x00c0003f, 0x3ff, 0, 1), // L2
    entry(4, 3, 0x1c03c163, 0x03c0003f, 0x3fff, 6, 1), // L3
    entry(4, 4, 0, 0, 0, 0, 1),
    entry(6, 0, 0x4 | 0x2, 0, 0x8 | 0x1, 0),
    entry(7, 0, 0, 0x029c67af, 0x40000000 | (1 << 5), 0xbc000400, 1),
    entry(0xa, 0, 0x07300404, 0, 0, 0x603),
    entry(0xb, 0, 1, 2, 0x100, 7, 1),
    entry(0x1f, 0, 1, 2, 0x100, 7, 1),
    entry(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
    entry(0x40000001, 0, 0x01007afb, 0, 0, 0),
    entry(0x80000000, 0, 0x80000008, 0, 0, 0),
    entry(0x80000008, 0, 0x3027, 0, 0, 0),
  ];
}

function amdSupported(): CpuidEntry[] {
  return [
    entry(0, 0, 0x10, str4('Auth'), str4('cAMD'), str4('enti')),
    entry(1, 0, 0x00a00f11, 0x00100800, 0x7ed8320b, 0x178bfbff),
    entry(7, 0, 0, 0x219c97a9, 0, 1 << 29, 1),
    entry(0xb, 0, 1, 2, 0x100, 0, 1),
    entry(0x80000008, 0, 0x3030, 0, 0x7007, 0),
    entry(0x8000001d, 0, 0x00004121, 0x01c0003f, 0x3f, 0, 1),
    entry(0x8000001d, 3, 0x0003c163, 0x03c0003f, 0x7fff, 1, 1),
    entry(0x8000001e, 0, 0xff, 0x0100, 0x0300, 0),
  ];
}

const field = (v: number, lo: number, hi: number): number => (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
const bit = (v: number, b: number): number => (v >>> b) & 1;

test('cpuid leaf 1: APIC id, logical count, CLFLUSH, hypervisor, TSC-deadline, PDCM, HTT', () => {
  const out = vcpuCpuid(intelSupported(), { vcpuIndex: 2, vcpuCount: 4 });
  const l1 = findCpuid(out, 1) as CpuidEntry;
  assert.is(field(l1.ebx, 24, 31), 2);
  assert.is(field(l1.ebx, 16, 23), 4);
  assert.is(field(l1.ebx, 8, 15), 8);
  assert.is(bit(l1.ecx, 31), 1);
  assert.is(bit(l1.ecx, 24), 1);
  assert.is(bit(l1.ecx, 15), 0);
  assert.is(bit(l1.edx, 28), 1);
  assert.is(l1.eax, 0x806ec, 'signature passes through');
  const one = findCpuid(vcpuCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 1, tscDeadline: false }), 1) as CpuidEntry;
  assert.is(field(one.ebx, 24, 31), 0);
  assert.is(field(one.ebx, 16, 23), 1);
  assert.is(bit(one.edx, 28), 0);
  assert.is(bit(one.ecx, 24), 0);
  assert.is(field((findCpuid(vcpuCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 3 }), 1) as CpuidEntry).ebx, 16, 23), 4);
  assert.is(field((findCpuid(vcpuCpuid(intelSupported(), { vcpuIndex: 199, vcpuCount: 200 }), 1) as CpuidEntry).ebx, 16, 31), (199 << 8) | 255);
});

test('cpuid leaves 0xb and 0x1f: x2APIC topology, 1 thread per core, N cores', () => {
  const out = vcpuCpuid(intelSupported(), { vcpuIndex: 5, vcpuCount: 6 });
  for (const fn of [0xb, 0x1f]) {
    const subs = out.filter((e) => e.function === fn);
    assert.is(subs.length, 3);
    assert.equal(findCpuid(out, fn, 0), { function: fn, index: 0, flags: 1, eax: 0, ebx: 1, ecx: 0x100, edx: 5 });
    assert.equal(findCpuid(out, fn, 1), { function: fn, index: 1, flags: 1, eax: 3, ebx: 6, ecx: 0x201, edx: 5 });
    assert.equal(findCpuid(out, fn, 2), { function: fn, index: 2, flags: 1, eax: 0, ebx: 0, ecx: 2, edx: 5 });
  }
  const noTopo = intelSupported().filter((e) => e.function !== 0x1f);
  assert.is(vcpuCpuid(noTopo, { vcpuIndex: 0, vcpuCount: 2 }).filter((e) => e.function === 0x1f).length, 0, '0x1f only when offered');
});

test('cpuid leaf 4 (Intel): cache sharing and cores per package', () => {
  const out = vcpuCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 8 });
  const l = (i: number): number => (findCpuid(out, 4, i) as CpuidEntry).eax;
  for (const i of [0, 1, 2]) {
    assert.is(field(l(i), 14, 25), 0, `L1/L2 subleaf ${i}`);
    assert.is(field(l(i), 26, 31), 7);
    assert.is(field(l(i), 0, 13), field((intelSupported()[2 + i] as CpuidEntry).eax, 0, 13), 'cache type/level kept');
  }
  assert.is(field(l(3), 14, 25), 7);
  assert.is(field(l(3), 26, 31), 7);
  assert.equal(findCpuid(out, 4, 4), entry(4, 4, 0, 0, 0, 0, 1), 'the terminating subleaf stays zero');
  const big = vcpuCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 100 });
  assert.is(field((findCpuid(big, 4, 3) as CpuidEntry).eax, 26, 31), 63, 'capped to the 6-bit field');
  assert.is(field((findCpuid(big, 4, 3) as CpuidEntry).eax, 14, 25), 99);
});

test('cpuid Intel tweaks: no vPMU, no WAITPKG, no turbo/EPB; KVM signature passes through', () => {
  const out = vcpuCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 1 });
  assert.equal(findCpuid(out, 0xa), entry(0xa, 0, 0, 0, 0, 0));
  assert.is(bit((findCpuid(out, 7, 0) as CpuidEntry).ecx, 5), 0);
  assert.is(bit((findCpuid(out, 7, 0) as CpuidEntry).ecx, 30), 1, 'other leaf 7 bits kept');
  assert.is(bit((findCpuid(out, 6) as CpuidEntry).eax, 1), 0);
  assert.is(bit((findCpuid(out, 6) as CpuidEntry).eax, 2), 1);
  assert.is(bit((findCpuid(out, 6) as CpuidEntry).ecx, 3), 0);
  assert.ok(hasKvmSignature(out));
  assert.equal(findCpuid(out, 0x40000000), intelSupported().find((e) => e.function === 0x40000000));
  assert.is(cpuVendor(out), 'intel');
  const bare = vcpuCpuid(intelSupported().filter((e) => e.function < 0x40000000 || e.function >= 0x80000000), { vcpuIndex: 0, vcpuCount: 1 });
  assert.not.ok(hasKvmSignature(bare), 'the KVM leaves are never invented');
});

test('cpuid AMD: NC and ApicIdCoreIdSize, extended APIC id, cache sharing, no ARCH_CAPABILITIES', () => {
  const out = vcpuCpuid(amdSupported(), { vcpuIndex: 3, vcpuCount: 5 });
  assert.is(cpuVendor(out), 'amd');
  const l88 = findCpuid(out, 0x80000008) as CpuidEntry;
  assert.is(field(l88.ecx, 0, 7), 4);
  assert.is(field(l88.ecx, 12, 15), 3);
  assert.equal(findCpuid(out, 0x8000001e), entry(0x8000001e, 0, 3, 3, 0, 0));
  assert.is(field((findCpuid(out, 0x8000001d, 0) as CpuidEntry).eax, 14, 25), 0);
  assert.is(field((findCpuid(out, 0x8000001d, 3) as CpuidEntry).eax, 14, 25), 4);
  assert.is(bit((findCpuid(out, 7, 0) as CpuidEntry).edx, 29), 0);
  assert.is(field((findCpuid(out, 1) as CpuidEntry).ebx, 24, 31), 3);
  assert.is(findCpuid(out, 0xb, 1)?.ebx, 5);
});

test('cpuid: the input is not modified; bad counts and a missing leaf 1 are BootErrors', () => {
  const input = intelSupported();
  const copy = structuredClone(input);
  vcpuCpuid(input, { vcpuIndex: 1, vcpuCount: 2 });
  assert.equal(input, copy);
  const reason = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      return e instanceof BootError ? e.reason : 'not a BootError';
    }
    return undefined;
  };
  assert.is(reason(() => vcpuCpuid(input, { vcpuIndex: 2, vcpuCount: 2 })), 'bad-vcpu-count');
  assert.is(reason(() => vcpuCpuid(input, { vcpuIndex: 0, vcpuCount: 0 })), 'bad-vcpu-count');
  assert.is(reason(() => vcpuCpuid(input, { vcpuIndex: 0, vcpuCount: 255 })), 'bad-vcpu-count');
  assert.is(reason(() => vcpuCpuid(input.filter((e) => e.function !== 1), { vcpuIndex: 0, vcpuCount: 1 })), 'cpuid');
});

test('property: every vCPU gets its own APIC id and a consistent topology; registers stay u32', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 254 }).chain((n) => fc.tuple(fc.constant(n), fc.nat({ max: n - 1 }))), fc.boolean(), ([n, id], intel) => {
      const out = vcpuCpuid(intel ? intelSupported() : amdSupported(), { vcpuIndex: id, vcpuCount: n });
      assert.is(field((findCpuid(out, 1) as CpuidEntry).ebx, 24, 31), id);
      const core = findCpuid(out, 0xb, 1) as CpuidEntry;
      assert.is(core.ebx, n);
      assert.ok(1 << core.eax >= n && (core.eax === 0 || 1 << (core.eax - 1) < n));
      assert.is(core.edx, id);
      for (const e of out) for (const r of [e.eax, e.ebx, e.ecx, e.edx]) assert.ok(Number.isInteger(r) && r >= 0 && r <= 0xffffffff);
    }),
  );
});

test.run();
