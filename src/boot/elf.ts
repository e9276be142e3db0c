// Uncompressed ELF vmlinux loading (what Firecracker and Kata boot on x86_64: no decompression).
//
// Validation: ELF64, little-endian, version 1, ET_EXEC, EM_X86_64, 56-byte program headers, at most
// MAX_PROGRAM_HEADERS of them, every header and every PT_LOAD's file bytes inside the file,
// p_filesz <= p_memsz, every segment at or above 1 MiB (below lie the boot structures) and inside
// one guest RAM region. Only then is anything written: each PT_LOAD's p_filesz bytes go to its
// p_paddr and the rest up to p_memsz is zeroed.
//
// Entry point (decision): Linux links vmlinux with ENTRY(phys_startup_64)
// (arch/x86/kernel/vmlinux.lds.S), so e_entry is already the *physical* address of startup_64,
// the 64-bit boot protocol entry (RSI = boot_params, long mode, identity map). linux-loader's ELF
// loader returns e_entry unchanged as the kernel load/entry address and Firecracker jumps there
// with the 64-bit protocol; we do the same when e_entry lies inside a PT_LOAD's physical range.
// For an ELF whose e_entry is a virtual address (inside some PT_LOAD's [p_vaddr, p_vaddr+p_memsz)
// but no physical range) we translate it through that segment (entry - p_vaddr + p_paddr). An
// entry in no segment is an error.
//
// PVH: a PT_NOTE may hold the Xen note XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen"), the 32-bit
// entry of the PVH boot protocol (CONFIG_PVH). It is reported as `pvhEntry` for later use and is
// not required.

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError, bytesText, hex } from './errors.js';
import { HIMEM_START } from './layout.js';
import type { LoadedKernelLayout } from './bzimage.js';

export const ELF_MAGIC = 0x464c457f; // "\x7fELF" little-endian u32
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_EXEC = 2;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const EHDR_SIZE = 64;
export const PHDR_SIZE = 56;
/** A vmlinux has about 5 program headers; more than this is not a kernel. */
export const MAX_PROGRAM_HEADERS = 64;
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfSegment {
  /** Index of the program header. */
  index: number;
  offset: number;
  paddr: number;
  vaddr: bigint;
  filesz: number;
  memsz: number;
  flags: number;
}

export interface ElfInfo {
  format: 'elf';
  /** e_entry as stored in the file. */
  elfEntry: bigint;
  /** The physical 64-bit entry point (see the decision above). */
  entry: number;
  /** True when e_entry was a virtual address translated through its segment. */
  entryTranslated: boolean;
  /** PT_LOAD segments with p_memsz > 0, in program-header order. */
  segments: ElfSegment[];
  /** XEN_ELFNOTE_PHYS32_ENTRY, when the kernel has one. */
  pvhEntry?: number;
}

function bad(message: string): BootError {
  return new BootError('bad-elf-header', `not an x86_64 vmlinux: ${message}`);
}

function badSeg(index: number, message: string): BootError {
  return new BootError('bad-elf-segment', `ELF program header ${index} ${message}`);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function safe(v: bigint, what: () => BootError): number {
  if (v > MAX_SAFE) throw what();
  return Number(v);
}

/** Parses and validates an ELF vmlinux. Throws BootError; writes nothing. */
export function parseElf(bytes: Uint8Array): ElfInfo {
  const len = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (len < 4 || dv.getUint32(0, true) !== ELF_MAGIC) throw bad('no ELF magic (\\x7fELF) at offset 0');
  if (len < EHDR_SIZE) {
    throw new BootError('truncated', `truncated ELF: the file is ${len} bytes, shorter than the ${EHDR_SIZE}-byte ELF64 header`);
  }
  const cls = dv.getUint8(4);
  if (cls !== ELFCLASS64) throw bad(`EI_CLASS is ${cls}, not ELFCLASS64 (2): a 32-bit ELF`);
  const data = dv.getUint8(5);
  if (data !== ELFDATA2LSB) throw bad(`EI_DATA is ${data}, not ELFDATA2LSB (1): not little-endian`);
  const identVersion = dv.getUint8(6);
  if (identVersion !== EV_CURRENT) throw bad(`EI_VERSION is ${identVersion}, not EV_CURRENT (1)`);
  const type = dv.getUint16(16, true);
  if (type !== ET_EXEC) throw bad(`e_type is ${type}, not ET_EXEC (2)${type === 3 ? ': a shared object' : type === 1 ? ': a relocatable object' : ''}`);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_X86_64) throw bad(`e_machine is ${machine}, not EM_X86_64 (62)${machine === 183 ? ': an arm64 kernel' : machine === 3 ? ': an i386 kernel' : ''}`);
  const elfEntry = dv.getBigUint64(24, true);
  const phoffBig = dv.getBigUint64(32, true);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phentsize !== PHDR_SIZE) throw bad(`e_phentsize is ${phentsize}, not ${PHDR_SIZE}`);
  if (phnum === 0) throw bad('it has no program headers (e_phnum 0)');
  if (phnum > MAX_PROGRAM_HEADERS) throw bad(`e_phnum ${phnum} is more than the ${MAX_PROGRAM_HEADERS} program headers a kernel has`);
  if (phoffBig < BigInt(EHDR_SIZE) || phoffBig + BigInt(phnum * PHDR_SIZE) > BigInt(len)) {
    throw new BootError(
      'truncated',
      `truncated ELF: ${phnum} program headers at e_phoff ${hex(phoffBig)} reach past the end of the ${len}-byte file (or overlap the ELF header)`,
    );
  }
  const phoff = Number(phoffBig);

  const segments: ElfSegment[] = [];
  let pvhEntry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * PHDR_SIZE;
    const pType = dv.getUint32(o, true);
    if (pType !== PT_LOAD && pType !== PT_NOTE) continue;
    const flags = dv.getUint32(o + 4, true);
    const offsetBig = dv.getBigUint64(o + 8, true);
    const vaddr = dv.getBigUint64(o + 16, true);
    const paddrBig = dv.getBigUint64(o + 24, true);
    const fileszBig = dv.getBigUint64(o + 32, true);
    const memszBig = dv.getBigUint64(o + 40, true);
    if (offsetBig + fileszBig > BigInt(len)) {
      throw new BootError(
        'truncated',
        `truncated ELF: program header ${i} has ${fileszBig} bytes at file offset ${hex(offsetBig)}, past the end of the ${len}-byte file`,
      );
    }
    const offset = Number(offsetBig);
    const filesz = Number(fileszBig);
    if (pType === PT_NOTE) {
      const found = findPvhNote(bytes.subarray(offset, offset + filesz));
      if (found !== undefined && pvhEntry === undefined) pvhEntry = found;
      continue;
    }
    if (fileszBig > memszBig) throw badSeg(i, `has p_filesz ${hex(fileszBig)} larger than p_memsz ${hex(memszBig)}`);
    if (memszBig === 0n) continue;
    const paddr = safe(paddrBig, () => badSeg(i, `has p_paddr ${hex(paddrBig)}, beyond any guest memory`));
    const memsz = safe(memszBig, () => badSeg(i, `has p_memsz ${hex(memszBig)}, beyond any guest memory`));
    if (paddr + memsz > Number.MAX_SAFE_INTEGER) throw badSeg(i, `ends beyond any guest memory (p_paddr ${hex(paddr)} + p_memsz ${hex(memsz)})`);
    if (paddr < HIMEM_START) {
      throw badSeg(i, `loads at p_paddr ${hex(paddr)}, below 1 MiB where the boot structures live; a vmlinux loads at 1 MiB or above`);
    }
    segments.push({ index: i, offset, paddr, vaddr, filesz, memsz, flags });
  }
  if (segments.length === 0) throw bad('it has no PT_LOAD segment with contents');

  let entry: number | undefined;
  let entryTranslated = false;
  if (elfEntry <= MAX_SAFE) {
    const e = Number(elfEntry);
    if (segments.some((s) => e >= s.paddr && e < s.paddr + s.memsz)) entry = e;
  }
  if (entry === undefined) {
    const seg = segments.find((s) => elfEntry >= s.vaddr && elfEntry < s.vaddr + BigInt(s.memsz));
    if (seg) {
      entry = seg.paddr + Number(elfEntry - seg.vaddr);
      entryTranslated = true;
    }
  }
  if (entry === undefined) {
    throw new BootError('bad-elf-header', `ELF entry point e_entry ${hex(elfEntry)} lies in no PT_LOAD segment (neither as a physical nor as a virtual address)`);
  }
  const info: ElfInfo = { format: 'elf', elfEntry, entry, entryTranslated, segments };
  if (pvhEntry !== undefined) info.pvhEntry = pvhEntry;
  return info;
}

/**
 * Walks the notes of one PT_NOTE segment (Elf64_Nhdr: namesz, descsz, type, each u32; name and
 * desc padded to 4 bytes, as Linux's ELFNOTE macro emits them). Returns the PVH entry or undefined;
 * a malformed note ends the walk (the PVH note is optional, so it is not an error).
 */
export function findPvhNote(notes: Uint8Array): number | undefined {
  const dv = new DataView(notes.buffer, notes.byteOffset, notes.byteLength);
  let p = 0;
  while (p + 12 <= notes.byteLength) {
    const namesz = dv.getUint32(p, true);
    const descsz = dv.getUint32(p + 4, true);
    const type = dv.getUint32(p + 8, true);
    const nameAt = p + 12;
    const descAt = nameAt + Math.ceil(namesz / 4) * 4;
    const next = descAt + Math.ceil(descsz / 4) * 4;
    if (descAt + descsz > notes.byteLength) return undefined;
    if (
      type === XEN_ELFNOTE_PHYS32_ENTRY &&
      namesz === 4 &&
      notes[nameAt] === 0x58 && // X
      notes[nameAt + 1] === 0x65 && // e
      notes[nameAt + 2] === 0x6e && // n
      notes[nameAt + 3] === 0 &&
      descsz >= 4
    ) {
      return dv.getUint32(descAt, true);
    }
    p = next;
  }
  return undefined;
}

/** Where the segments go: lowest p_paddr to the highest p_paddr + p_memsz. */
export function elfLayout(info: ElfInfo): LoadedKernelLayout {
  let lo = Number.MAX_SAFE_INTEGER;
  let hi = 0;
  for (const s of info.segments) {
    lo = Math.min(lo, s.paddr);
    hi = Math.max(hi, s.paddr + s.memsz);
  }
  return { loadAddr: lo, entry: info.entry, kernelEnd: hi };
}

/** Throws kernel-does-not-fit unless every segment lies inside one guest RAM region. */
export function checkElfFits(memory: GuestMemory, info: ElfInfo): void {
  for (const s of info.segments) {
    if (memory.contains(s.paddr, s.memsz)) continue;
    const region = memory.regionList.find((r) => r.guestPhysAddr <= s.paddr && s.paddr < r.guestPhysAddr + r.bytes.byteLength);
    const where = region
      ? `guest RAM there ends at ${hex(region.guestPhysAddr + region.bytes.byteLength)}`
      : `there is no guest RAM at ${hex(s.paddr)} (guest memory: ${bytesText(memory.size)})`;
    throw new BootError(
      'kernel-does-not-fit',
      `the vmlinux does not fit in guest memory: segment ${s.index} needs ${bytesText(s.memsz)} at ${hex(s.paddr)}..${hex(s.paddr + s.memsz)}, but ${where}; give the VM more memory`,
    );
  }
}

/** Validates a vmlinux, checks that every segment fits, then loads it. Nothing is written when it throws. */
export function loadElf(memory: GuestMemory, bytes: Uint8Array): ElfInfo & LoadedKernelLayout {
  const info = parseElf(bytes);
  checkElfFits(memory, info);
  for (const s of info.segments) {
    memory.write(s.paddr, bytes.subarray(s.offset, s.offset + s.filesz));
    if (s.memsz > s.filesz) memory.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
  return { ...info, ...elfLayout(info) };
}
