// Pure, minimal ELF64 (little-endian) reading: a named section's bytes, and whether an
// executable asks for a program interpreter (i.e. is dynamically linked).

function elf64(elf: Uint8Array): DataView | undefined {
  // \x7fELF, ELFCLASS64, ELFDATA2LSB
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46 || elf[4] !== 2 || elf[5] !== 1) return undefined;
  return new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
}

/** Returns the raw bytes of the named section of a little-endian ELF64 file, or undefined. */
export function elfSection(elf: Uint8Array, section: string): Uint8Array | undefined {
  const v = elf64(elf);
  if (v === undefined) return undefined;
  const shoff = Number(v.getBigUint64(0x28, true));
  const shentsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true);
  const shstrndx = v.getUint16(0x3e, true);
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > elf.length) return undefined;
  const header = (i: number): { name: number; offset: number; size: number } => {
    const at = shoff + i * shentsize;
    return { name: v.getUint32(at, true), offset: Number(v.getBigUint64(at + 0x18, true)), size: Number(v.getBigUint64(at + 0x20, true)) };
  };
  const strtab = header(shstrndx);
  const decoder = new TextDecoder();
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    const start = strtab.offset + h.name;
    const end = elf.indexOf(0, start);
    if (end < 0 || decoder.decode(elf.subarray(start, end)) !== section) continue;
    if (h.offset + h.size > elf.length) return undefined;
    return elf.subarray(h.offset, h.offset + h.size);
  }
  return undefined;
}

/**
 * True when `elf` is an ELF64 executable without a PT_INTERP program header, i.e. statically
 * linked: the only kind that runs in an initramfs that holds no libc.
 */
export function isStaticElf(elf: Uint8Array): boolean {
  const v = elf64(elf);
  if (v === undefined) return false;
  const phoff = Number(v.getBigUint64(0x20, true));
  const phentsize = v.getUint16(0x36, true);
  const phnum = v.getUint16(0x38, true);
  if (phentsize < 56 || phoff + phnum * phentsize > elf.length) return false;
  for (let i = 0; i < phnum; i++) {
    if (v.getUint32(phoff + i * phentsize, true) === 3 /* PT_INTERP */) return false;
  }
  return true;
}
