// Kernel loading: bzImage setup-header validation, ELF vmlinux loading, format detection, the whole
// setupBoot on synthetic images, property tests on garbage/truncated/mutated kernels, and (when one
// has been built) the real guest kernel.
import { test } from 'uvu';
import { testUnless } from '../helpers/skip.js';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { Sregs, Segment } from '../../src/vmm/kvm-structs.js';
import {
  BootError,
  detectKernelFormat,
  loadBzImage,
  loadElf,
  loadKernel,
  parseBzImage,
  parseElf,
  parseKernel,
  setupBoot,
  MiB,
} from '../../src/boot/index.js';
import { throwsReason } from '../helpers/boot-errors.js';

// ---------------------------------------------------------------------------------------------
// Synthetic images

interface BzOpts {
  setupSects?: number;
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  payloadSize?: number;
  syssize?: number;
  initSize?: number;
  prefAddress?: bigint;
  relocatable?: boolean;
  kernelAlignment?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
}

const KVERSION = '6.1.0-test (tsvmm@unit) #1 SMP';

/** A bzImage-shaped file: valid setup header, setup code, and a patterned protected-mode part. */
function makeBzImage(o: BzOpts = {}): Uint8Array {
  const sects = o.setupSects ?? 4;
  const setupSize = ((sects === 0 ? 4 : sects) + 1) * 512;
  const payloadSize = o.payloadSize ?? 0x1000;
  const buf = new Uint8Array(setupSize + payloadSize);
  const dv = new DataView(buf.buffer);
  dv.setUint8(0x1f1, sects);
  dv.setUint32(0x1f4, o.syssize ?? Math.ceil(payloadSize / 16), true);
  dv.setUint16(0x1fe, 0xaa55, true);
  dv.setUint8(0x200, 0xeb);
  dv.setUint8(0x201, 0x6a); // header ends at 0x202 + 0x6a = 0x26c
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, o.version ?? 0x020f, true);
  dv.setUint16(0x20e, 0x100, true); // kernel_version -> 0x300
  buf.set(new TextEncoder().encode(KVERSION), 0x300);
  dv.setUint8(0x211, o.loadflags ?? 0x01);
  dv.setUint32(0x214, 0x100000, true);
  dv.setUint32(0x22c, o.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(0x230, o.kernelAlignment ?? 0x200000, true);
  dv.setUint8(0x234, (o.relocatable ?? true) ? 1 : 0);
  dv.setUint8(0x235, 21);
  dv.setUint16(0x236, o.xloadflags ?? 0x7, true);
  dv.setUint32(0x238, o.cmdlineSize ?? 2047, true);
  dv.setBigUint64(0x258, o.prefAddress ?? 0x1000000n, true);
  dv.setUint32(0x260, o.initSize ?? 0x200000, true);
  for (let i = 0; i < payloadSize; i++) buf[setupSize + i] = (i * 7 + 3) & 0xff || 1;
  return buf;
}

interface SegSpec {
  type?: number;
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memsz?: number;
}

interface ElfOpts {
  entry: bigint;
  segments: SegSpec[];
  cls?: number;
  data?: number;
  type?: number;
  machine?: number;
  phentsize?: number;
  phnum?: number;
  phoff?: number;
}

/** A minimal ELF64 executable: header, program headers, then each segment's bytes. */
function makeElf(o: ElfOpts): Uint8Array {
  const phoff = 64;
  let dataAt = phoff + o.segments.length * 56;
  const placed = o.segments.map((s) => {
    const at = dataAt;
    dataAt += s.data.byteLength;
    return at;
  });
  const buf = new Uint8Array(dataAt);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, o.cls ?? 2, o.data ?? 1, 1], 0);
  dv.setUint16(16, o.type ?? 2, true);
  dv.setUint16(18, o.machine ?? 62, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, o.entry, true);
  dv.setBigUint64(32, BigInt(o.phoff ?? phoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, o.phentsize ?? 56, true);
  dv.setUint16(56, o.phnum ?? o.segments.length, true);
  o.segments.forEach((s, i) => {
    const p = phoff + i * 56;
    dv.setUint32(p, s.type ?? 1, true);
    dv.setUint32(p + 4, 5, true);
    dv.setBigUint64(p + 8, BigInt(placed[i] as number), true);
    dv.setBigUint64(p + 16, s.vaddr ?? BigInt(s.paddr) + 0xffffffff80000000n, true);
    dv.setBigUint64(p + 24, BigInt(s.paddr), true);
    dv.setBigUint64(p + 32, BigInt(s.data.byteLength), true);
    dv.setBigUint64(p + 40, BigInt(s.memsz ?? s.data.byteLength), true);
    dv.setBigUint64(p + 48, 0x200000n, true);
    buf.set(s.data, placed[i] as number);
  });
  return buf;
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = ((i * 31 + seed) & 0xff) || 0x5a;
  return b;
}

/** An ELF note: namesz, descsz, type, name padded to 4, desc padded to 4. */
function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const padded = (n: number): number => Math.ceil(n / 4) * 4;
  const out = new Uint8Array(12 + padded(nameBytes.byteLength) + padded(desc.byteLength));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, nameBytes.byteLength, true);
  dv.setUint32(4, desc.byteLength, true);
  dv.setUint32(8, type, true);
  out.set(nameBytes, 12);
  out.set(desc, 12 + padded(nameBytes.byteLength));
  return out;
}

const TEXT = pattern(0x3000, 1);
const DATA = pattern(0x800, 2);

function makeVmlinux(extra: Partial<ElfOpts> = {}): Uint8Array {
  const pvhDesc = new Uint8Array(8);
  new DataView(pvhDesc.buffer).setBigUint64(0, 0x1000180n, true);
  const notes = new Uint8Array([...note('GNU', 3, pattern(20, 9)), ...note('Xen', 18, pvhDesc)]);
  return makeElf({
    entry: 0x1000000n,
    segments: [
      { paddr: 0x1000000, data: TEXT },
      { paddr: 0x1004000, data: DATA, memsz: 0x2000 }, // 0x1800 bytes of bss
      { type: 4, paddr: 0, vaddr: 0n, data: notes },
    ],
    ...extra,
  });
}

function mem(size: number): GuestMemory {
  return GuestMemory.fromSizes([{ guestPhysAddr: 0, size }]);
}

/** First address holding a non-zero byte outside `ranges` ([lo, hi) pairs), or undefined. */
function writtenOutside(m: GuestMemory, ranges: readonly [number, number][] = []): number | undefined {
  for (const r of m.regionList) {
    const words = new Uint32Array(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength >>> 2);
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      for (let b = 0; b < 4; b++) {
        const a = r.guestPhysAddr + w * 4 + b;
        if (r.bytes[w * 4 + b] !== 0 && !ranges.some(([lo, hi]) => a >= lo && a < hi)) return a;
      }
    }
  }
  return undefined;
}

function allZero(m: GuestMemory): boolean {
  return writtenOutside(m) === undefined;
}

// ---------------------------------------------------------------------------------------------
// bzImage

test('bzImage: the setup header is parsed at its documented offsets', () => {
  const info = parseBzImage(makeBzImage());
  assert.is(info.header.version, 0x020f);
  assert.is(info.header.setupSects, 4);
  assert.is(info.setupSize, 5 * 512);
  assert.is(info.payload.byteLength, 0x1000);
  assert.is(info.header.syssize, 0x100);
  assert.is(info.header.kernelAlignment, 0x200000);
  assert.is(info.header.relocatableKernel, true);
  assert.is(info.header.xloadflags, 7);
  assert.is(info.header.cmdlineSize, 2047);
  assert.is(info.header.initrdAddrMax, 0x7fffffff);
  assert.is(info.header.prefAddress, 0x1000000n);
  assert.is(info.header.initSize, 0x200000);
  assert.is(info.kernelVersion, KVERSION);
  // The raw header to copy into boot_params: file bytes [0x1f1, 0x26c).
  assert.is(info.headerBytes.byteLength, 0x26c - 0x1f1);
  assert.is(info.headerBytes[0x202 - 0x1f1], 0x48); // 'H'
});

test('bzImage: setup_sects 0 means 4, and other counts move the protected-mode kernel', () => {
  assert.is(parseBzImage(makeBzImage({ setupSects: 0 })).setupSize, 5 * 512);
  const info = parseBzImage(makeBzImage({ setupSects: 30 }));
  assert.is(info.setupSize, 31 * 512);
  assert.is(info.payload[0], 3);
});

test('bzImage: each validation names its check and its value', () => {
  const noMagic = makeBzImage();
  noMagic[0x202] = 0x58;
  throwsReason(() => parseBzImage(noMagic), 'not-a-bzimage', /HdrS.*found 0x/);
  throwsReason(() => parseBzImage(new Uint8Array(0x100)), 'not-a-bzimage', /256 bytes/);
  throwsReason(() => parseBzImage(makeBzImage({ version: 0x020b })), 'protocol-too-old', /2\.11.*2\.12/);
  throwsReason(() => parseBzImage(makeBzImage({ version: 0x0200 })), 'protocol-too-old', /0x200/);
  throwsReason(() => parseBzImage(makeBzImage({ loadflags: 0x80 })), 'not-loaded-high', /loadflags 0x80.*LOADED_HIGH/);
  throwsReason(() => parseBzImage(makeBzImage({ xloadflags: 0x2 })), 'no-64bit-entry', /xloadflags 0x2.*XLF_KERNEL_64/);
  throwsReason(() => parseBzImage(makeBzImage().subarray(0, 0x260)), 'truncated', /0x268/);
  throwsReason(() => parseBzImage(makeBzImage({ setupSects: 30 }).subarray(0, 0x1000)), 'truncated', /setup_sects 30.*15872 bytes/);
  throwsReason(() => parseBzImage(makeBzImage({ syssize: 0x101 })), 'truncated', /syssize 0x101.*4112 bytes.*4096/);
  throwsReason(() => parseBzImage(makeBzImage().subarray(0, 5 * 512 + 0x800)), 'truncated', /syssize/);
});

test('bzImage: loads the protected-mode kernel at 1 MiB; the 64-bit entry is +0x200', () => {
  const m = mem(32 * MiB);
  const file = makeBzImage();
  const k = loadBzImage(m, file);
  assert.is(k.loadAddr, 0x100000);
  assert.is(k.entry, 0x100200);
  assert.equal(m.slice(0x100000, 0x1000), file.subarray(5 * 512));
  assert.is(m.readU8(0x100000 + 0x1000), 0);
  // Relocatable: runtime at max(1 MiB aligned to 2 MiB, pref_address 16 MiB) + init_size.
  assert.is(k.kernelEnd, 0x1000000 + 0x200000);
});

test('bzImage: a non-relocatable kernel runs at pref_address; a large image reaches past init_size', () => {
  const k = parseKernel(makeBzImage({ relocatable: false, prefAddress: 0x2000000n, initSize: 0x100000 }));
  assert.is(k.kernelEnd, 0x2100000);
  const big = parseKernel(makeBzImage({ payloadSize: 0x1000, initSize: 0x10, prefAddress: 0n, kernelAlignment: 0x100000 }));
  assert.is(big.kernelEnd, 0x100000 + 0x1000);
});

test('bzImage: a kernel that does not fit says what it needs and what the guest has, and writes nothing', () => {
  const m = mem(8 * MiB);
  throwsReason(() => loadBzImage(m, makeBzImage()), 'kernel-does-not-fit', /0x1200000.*ends at 0x800000/);
  assert.ok(allZero(m));
  throwsReason(() => loadKernel(m, makeBzImage()), 'kernel-does-not-fit', /give the VM more memory/);
  assert.ok(allZero(m));
});

// ---------------------------------------------------------------------------------------------
// ELF

test('ELF: PT_LOAD segments go to p_paddr, bss is zeroed, entry is the physical e_entry', () => {
  const m = mem(32 * MiB);
  m.fill(0x1004000, 0x4000, 0xaa); // stale bytes where the bss goes
  const k = loadElf(m, makeVmlinux());
  assert.is(k.entry, 0x1000000);
  assert.is(k.entryTranslated, false);
  assert.is(k.segments.length, 2);
  assert.equal(m.slice(0x1000000, TEXT.byteLength), TEXT);
  assert.equal(m.slice(0x1004000, DATA.byteLength), DATA);
  assert.ok(m.slice(0x1004000 + DATA.byteLength, 0x2000 - DATA.byteLength).every((b) => b === 0));
  assert.is(m.readU8(0x1006000), 0xaa); // past p_memsz: untouched
  assert.is(k.loadAddr, 0x1000000);
  assert.is(k.kernelEnd, 0x1006000);
  assert.is(k.pvhEntry, 0x1000180);
});

test('ELF: a virtual e_entry is translated through its segment; one in no segment is an error', () => {
  const k = parseElf(makeVmlinux({ entry: 0xffffffff81000040n }));
  assert.is(k.entry, 0x1000040);
  assert.is(k.entryTranslated, true);
  throwsReason(() => parseElf(makeVmlinux({ entry: 0x5000000n })), 'bad-elf-header', /e_entry 0x5000000/);
});

test('ELF: without a PT_NOTE there is no PVH entry, and that is fine', () => {
  const k = parseElf(makeElf({ entry: 0x200000n, segments: [{ paddr: 0x200000, data: TEXT }] }));
  assert.is(k.pvhEntry, undefined);
  assert.is(k.entry, 0x200000);
});

test('ELF: header validation names the field and its value', () => {
  const seg = [{ paddr: 0x200000, data: TEXT }];
  const ok = { entry: 0x200000n, segments: seg };
  throwsReason(() => parseElf(makeElf({ ...ok, cls: 1 })), 'bad-elf-header', /EI_CLASS is 1/);
  throwsReason(() => parseElf(makeElf({ ...ok, data: 2 })), 'bad-elf-header', /EI_DATA is 2/);
  throwsReason(() => parseElf(makeElf({ ...ok, type: 3 })), 'bad-elf-header', /e_type is 3.*shared object/);
  throwsReason(() => parseElf(makeElf({ ...ok, machine: 183 })), 'bad-elf-header', /e_machine is 183.*arm64/);
  throwsReason(() => parseElf(makeElf({ ...ok, phentsize: 32 })), 'bad-elf-header', /e_phentsize is 32/);
  throwsReason(() => parseElf(makeElf({ ...ok, phnum: 0 })), 'bad-elf-header', /e_phnum 0/);
  throwsReason(() => parseElf(makeElf({ ...ok, phnum: 65 })), 'bad-elf-header', /e_phnum 65/);
  throwsReason(() => parseElf(makeElf({ ...ok, phoff: 0x100000 })), 'truncated', /e_phoff 0x100000/);
  throwsReason(() => parseElf(makeElf({ ...ok, phoff: 8 })), 'truncated', /e_phoff 0x8/);
  throwsReason(() => parseElf(makeElf(ok).subarray(0, 40)), 'truncated', /40 bytes/);
  throwsReason(() => parseElf(makeElf({ entry: 0n, segments: [{ type: 4, paddr: 0, data: TEXT }] })), 'bad-elf-header', /no PT_LOAD/);
});

test('ELF: segment validation: file bounds, filesz <= memsz, not below 1 MiB, inside guest memory', () => {
  const file = makeElf({ entry: 0x200000n, segments: [{ paddr: 0x200000, data: TEXT }] });
  throwsReason(() => parseElf(file.subarray(0, file.byteLength - 1)), 'truncated', /program header 0 has 12288 bytes/);
  throwsReason(
    () => parseElf(makeElf({ entry: 0x200000n, segments: [{ paddr: 0x200000, data: TEXT, memsz: 0x100 }] })),
    'bad-elf-segment',
    /p_filesz 0x3000 larger than p_memsz 0x100/,
  );
  throwsReason(
    () => parseElf(makeElf({ entry: 0x8000n, segments: [{ paddr: 0x8000, data: TEXT }] })),
    'bad-elf-segment',
    /p_paddr 0x8000, below 1 MiB/,
  );
  const m = mem(4 * MiB);
  throwsReason(() => loadElf(m, makeVmlinux()), 'kernel-does-not-fit', /segment 0 .* at 0x1000000/);
  const far = makeElf({ entry: 0x2ff000n, segments: [{ paddr: 0x2ff000, data: TEXT, memsz: 0x200000 }] });
  throwsReason(() => loadElf(m, far), 'kernel-does-not-fit', /ends at 0x400000/);
  assert.ok(allZero(m));
});

// ---------------------------------------------------------------------------------------------
// Detection

test('format detection: bzImage, ELF, and a clear message for anything else', () => {
  assert.is(detectKernelFormat(makeBzImage()), 'bzImage');
  assert.is(detectKernelFormat(makeVmlinux()), 'elf');
  const m = mem(4 * MiB);
  throwsReason(() => loadKernel(m, new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0])), 'unknown-kernel-format', /1f 8b 08.*gzip/);
  throwsReason(() => loadKernel(m, new Uint8Array(0)), 'unknown-kernel-format', /empty/);
  throwsReason(() => loadKernel(m, new Uint8Array(100)), 'unknown-kernel-format', /zeros/);
  throwsReason(() => loadKernel(m, new TextEncoder().encode('#!/bin/sh\necho hi\n')), 'unknown-kernel-format', /script/);
  throwsReason(() => loadKernel(m, new TextEncoder().encode('hello kernel world, this is text')), 'unknown-kernel-format', /text \("hello kernel/);
  throwsReason(() => loadKernel(m, new Uint8Array([0x4d, 0x5a, 0, 0])), 'unknown-kernel-format', /PE\/EFI/);
  // ELF magic but the wrong machine: the ELF check speaks.
  throwsReason(() => loadKernel(m, makeElf({ entry: 0x200000n, segments: [{ paddr: 0x200000, data: TEXT }], machine: 183 })), 'bad-elf-header');
  assert.ok(allZero(m));
});

// ---------------------------------------------------------------------------------------------
// setupBoot

function blankSregs(): Sregs {
  const seg = (): Segment => ({ base: 0n, limit: 0xffff, selector: 0, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 });
  return {
    cs: seg(), ds: seg(), es: seg(), fs: seg(), gs: seg(), ss: seg(), tr: seg(), ldt: seg(),
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apicBase: 0xfee00900n,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

test('setupBoot (bzImage): zero page fields at their documented offsets', () => {
  const m = mem(64 * MiB);
  const initrd = pattern(0x5000, 7);
  const cmdline = 'console=ttyS0 reboot=k panic=1';
  const boot = setupBoot(m, { kernel: makeBzImage(), initrd, cmdline, vcpus: 2 });
  const zp = 0x7000;
  assert.is(boot.bootParamsAddr, zp);
  assert.is(boot.entry, 0x100200);
  assert.is(m.readU16(zp + 0x1fe), 0xaa55);
  assert.is(m.readU32(zp + 0x202), 0x53726448);
  assert.is(m.readU16(zp + 0x206), 0x020f); // copied from the kernel
  assert.is(m.readU8(zp + 0x210), 0xff); // type_of_loader
  assert.is(m.readU8(zp + 0x211) & 1, 1); // LOADED_HIGH
  assert.is(m.readU32(zp + 0x214), 0x100000); // code32_start
  assert.is(m.readU32(zp + 0x228), 0x20000); // cmd_line_ptr
  assert.is(m.readU32(zp + 0x0c8), 0); // ext_cmd_line_ptr
  assert.is(m.readU32(zp + 0x238), cmdline.length + 1); // cmdline_size
  assert.is(m.readU32(zp + 0x230), 0x200000); // kernel_alignment, read back by startup_64
  assert.is(m.readU32(zp + 0x260), 0x200000); // init_size
  assert.is(m.readU8(zp + 0x1ef), 0); // sentinel
  // initrd: top of the 64 MiB, page-aligned
  assert.is(boot.initrd?.addr, 64 * MiB - 0x5000);
  assert.is(m.readU32(zp + 0x218), 64 * MiB - 0x5000);
  assert.is(m.readU32(zp + 0x21c), 0x5000);
  assert.is(m.readU32(zp + 0x0c0), 0);
  assert.is(m.readU32(zp + 0x0c4), 0);
  assert.equal(m.slice(64 * MiB - 0x5000, 0x5000), initrd);
  // cmdline
  assert.is(Buffer.from(m.slice(0x20000, cmdline.length)).toString('latin1'), cmdline);
  assert.is(m.readU8(0x20000 + cmdline.length), 0);
  // e820
  assert.is(m.readU8(zp + 0x1e8), 3);
  const e820 = (i: number): [bigint, bigint, number] => [m.readU64(zp + 0x2d0 + i * 20), m.readU64(zp + 0x2d0 + i * 20 + 8), m.readU32(zp + 0x2d0 + i * 20 + 16)];
  assert.equal(e820(0), [0n, 0x9fc00n, 1]);
  assert.equal(e820(1), [0x9fc00n, 0x100000n - 0x9fc00n, 2]);
  assert.equal(e820(2), [0x100000n, BigInt(63 * MiB), 1]);
  // the other structures
  assert.is(m.readU32(0x9fc00), 0x5f504d5f); // '_MP_'
  assert.is(m.readU64(0x508), 0x00af9b000000ffffn);
  assert.is(m.readU64(0x9000), 0xa003n);
  // registers
  const regs = boot.regs();
  assert.is(regs.rip, 0x100200n);
  assert.is(regs.rsi, 0x7000n);
  const s = boot.sregs(blankSregs());
  assert.is(s.cr3, 0x9000n);
  assert.is(s.cs.l, 1);
  assert.is(s.apicBase, 0xfee00900n);
});

test('setupBoot (ELF): the loader fills the header fields itself', () => {
  const m = mem(64 * MiB);
  const boot = setupBoot(m, { kernel: makeVmlinux(), cmdline: 'console=ttyS0', vcpus: 1 });
  const zp = 0x7000;
  assert.is(boot.entry, 0x1000000);
  assert.is(boot.kernel.pvhEntry, 0x1000180);
  assert.is(boot.initrd, undefined);
  assert.is(m.readU16(zp + 0x1fe), 0xaa55);
  assert.is(m.readU32(zp + 0x202), 0x53726448);
  assert.is(m.readU16(zp + 0x206), 0x020c);
  assert.is(m.readU8(zp + 0x210), 0xff);
  assert.is(m.readU8(zp + 0x211), 0x01);
  assert.is(m.readU32(zp + 0x230), 0x1000000);
  assert.is(m.readU32(zp + 0x228), 0x20000);
  assert.is(m.readU32(zp + 0x218), 0);
  assert.is(m.readU32(zp + 0x21c), 0);
  assert.equal(m.slice(0x1000000, TEXT.byteLength), TEXT);
  assert.is(boot.regs().rip, 0x1000000n);
  assert.is(boot.mptable.entryCount, 1 + 1 + 1 + 24 + 2);
});

test('setupBoot: a failed check writes nothing', () => {
  const m = mem(32 * MiB);
  throwsReason(() => setupBoot(m, { kernel: makeBzImage(), initrd: new Uint8Array(20 * MiB), cmdline: '', vcpus: 1 }), 'initrd-does-not-fit', /20 MiB.*above the kernel's end 0x1200000/);
  throwsReason(() => setupBoot(m, { kernel: makeBzImage(), cmdline: 'x'.repeat(2048), vcpus: 1 }), 'bad-cmdline', /2048 bytes.*2047/);
  throwsReason(() => setupBoot(m, { kernel: makeBzImage({ cmdlineSize: 100 }), cmdline: 'x'.repeat(101), vcpus: 1 }), 'bad-cmdline', /cmdline_size 100/);
  throwsReason(() => setupBoot(m, { kernel: makeBzImage(), cmdline: 'a\0b', vcpus: 1 }), 'bad-cmdline', /NUL/);
  throwsReason(() => setupBoot(m, { kernel: makeBzImage(), cmdline: '', vcpus: 0 }), 'bad-vcpu-count');
  throwsReason(() => setupBoot(m, { kernel: makeBzImage(), cmdline: '', vcpus: 255 }), 'bad-vcpu-count', /254/);
  throwsReason(() => setupBoot(mem(8 * MiB), { kernel: makeBzImage(), cmdline: '', vcpus: 1 }), 'kernel-does-not-fit');
  throwsReason(() => setupBoot(GuestMemory.fromSizes([{ guestPhysAddr: 0x100000, size: 32 * MiB }]), { kernel: makeBzImage(), cmdline: '', vcpus: 1 }), 'bad-memory-layout');
  assert.ok(allZero(m));
});

// ---------------------------------------------------------------------------------------------
// Properties: garbage never escapes as anything but a BootError, and never writes outside the
// ranges the loader reports (nor anything at all when it throws).

const FUZZ_MEM = 4 * MiB;
const fuzzMemory = mem(FUZZ_MEM);
const fuzzBytes = fuzzMemory.regionList[0]?.bytes as Uint8Array;

function checkLoad(file: Uint8Array): void {
  fuzzBytes.fill(0);
  let k;
  try {
    k = loadKernel(fuzzMemory, file);
  } catch (e) {
    if (!(e instanceof BootError)) throw e;
    assert.ok(allZero(fuzzMemory), `memory written before ${e.reason}`);
    return;
  }
  const ranges: [number, number][] = k.elf
    ? k.elf.segments.map((s) => [s.paddr, s.paddr + s.memsz])
    : [[k.loadAddr, k.loadAddr + (k.bzImage?.payload.byteLength ?? 0)]];
  const stray = writtenOutside(fuzzMemory, ranges);
  if (stray !== undefined) assert.unreachable(`byte written at 0x${stray.toString(16)} outside the kernel`);
}

test('property: random bytes give only BootErrors', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), checkLoad), { numRuns: 200 });
});

test('property: truncated and header-mutated bzImages give only BootErrors and write only the kernel', () => {
  const base = makeBzImage({ prefAddress: 0x100000n, initSize: 0x1000, kernelAlignment: 0x1000 });
  fc.assert(
    fc.property(
      fc.nat({ max: base.byteLength }),
      fc.array(fc.tuple(fc.integer({ min: 0x1f0, max: 0x270 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      (cut, edits) => {
        const f = base.slice(0, cut === 0 ? base.byteLength : cut);
        for (const [off, v] of edits) if (off < f.byteLength) f[off] = v;
        checkLoad(f);
      },
    ),
    { numRuns: 150 },
  );
});

test('property: ELF files with arbitrary program headers give only BootErrors and write only their segments', () => {
  const seg = fc.record({
    type: fc.constantFrom(1, 1, 4, 0, 6),
    paddr: fc.oneof(fc.integer({ min: 0, max: FUZZ_MEM + 0x1000 }), fc.constant(0x100000)),
    size: fc.integer({ min: 0, max: 0x2000 }),
    extra: fc.integer({ min: -16, max: 0x4000 }),
  });
  fc.assert(
    fc.property(fc.array(seg, { minLength: 1, maxLength: 4 }), fc.nat({ max: 3 }), fc.nat({ max: 400 }), (segs, entrySeg, cutFromEnd) => {
      const target = segs[entrySeg % segs.length];
      const file = makeElf({
        entry: BigInt(target ? target.paddr : 0),
        segments: segs.map((s) => ({ type: s.type, paddr: s.paddr, data: pattern(s.size, 3), memsz: Math.max(0, s.size + s.extra) })),
      });
      checkLoad(file.subarray(0, Math.max(0, file.byteLength - (cutFromEnd > 300 ? cutFromEnd : 0))));
    }),
    { numRuns: 200 },
  );
});

test('property: setupBoot with random cmdlines, vCPU counts and initrd sizes gives only BootErrors', () => {
  const kernel = makeBzImage();
  const m = mem(24 * MiB);
  fc.assert(
    fc.property(fc.string({ maxLength: 3000 }), fc.integer({ min: -1, max: 300 }), fc.option(fc.nat({ max: 12 * MiB })), (cmdline, vcpus, initrdSize) => {
      try {
        const cfg = initrdSize === null ? { kernel, cmdline, vcpus } : { kernel, cmdline, vcpus, initrd: new Uint8Array(initrdSize) };
        const boot = setupBoot(m, cfg);
        assert.ok(boot.cmdline.size <= 2048);
        if (boot.initrd) assert.ok(boot.initrd.addr >= 0x1200000 && boot.initrd.addr % 4096 === 0);
        assert.ok(initrdSize === null || initrdSize > 0, 'an empty initrd is refused');
      } catch (e) {
        if (!(e instanceof BootError)) throw e;
      }
    }),
    { numRuns: 150 },
  );
});

// ---------------------------------------------------------------------------------------------
// The real guest kernel, when kernels/ has built one.

function findBuiltKernels(): string[] {
  const root = join(process.env.TSVMM_CACHE ?? join(homedir(), '.cache', 'tsvmm'), 'kernel');
  if (!existsSync(root)) return [];
  const out: string[] = [];
  // Artefact folders only: build/ and src/ are the build's work trees, possibly mid-write.
  for (const d of readdirSync(root).filter((n) => n !== 'build' && n !== 'src' && !n.startsWith('.'))) {
    for (const name of ['bzImage', 'vmlinux']) {
      const p = join(root, d, name);
      if (existsSync(p)) out.push(p);
    }
  }
  return out;
}

const builtKernels = findBuiltKernels();

testUnless(test, builtKernels.length === 0 ? 'no built guest kernel in ~/.cache/tsvmm/kernel/*/{bzImage,vmlinux} (npm run kernel builds one)' : undefined, 'the built guest kernel (bzImage / vmlinux) parses and lays out', () => {
  const found = builtKernels;
  for (const path of found) {
    const bytes = new Uint8Array(readFileSync(path));
    const k = parseKernel(bytes);
    console.log(`  ${path}: ${k.description}; entry 0x${k.entry.toString(16)}, needs RAM up to 0x${k.kernelEnd.toString(16)}`);
    assert.is(k.format, path.endsWith('bzImage') ? 'bzImage' : 'elf');
    if (k.bzImage) {
      assert.ok(k.bzImage.header.version >= 0x020c);
      assert.is(k.entry, 0x100200);
    } else {
      assert.ok(k.entry >= 0x100000 && k.entry < k.kernelEnd, 'vmlinux entry is a physical address inside the image');
    }
    const size = Math.max(128 * MiB, Math.ceil((k.kernelEnd + 16 * MiB) / MiB) * MiB);
    const m = mem(size);
    const boot = setupBoot(m, { kernel: bytes, initrd: new Uint8Array(4 * MiB), cmdline: 'console=ttyS0 reboot=k panic=1', vcpus: 4 });
    assert.ok((boot.initrd?.addr ?? 0) >= k.kernelEnd);
  }
});

test.run();
