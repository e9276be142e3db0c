// struct boot_params (the "zero page", Documentation/arch/x86/zero-page.rst and boot.rst), the
// e820 memory map, the kernel command line and the initrd.

import type { GuestMemory, GuestRegion } from '../vmm/guest-memory.js';
import { BOOT_FLAG_MAGIC, HDR, HDRS_MAGIC, LOADED_HIGH } from './bzimage.js';
import { BootError, bytesText, hex } from './errors.js';
import {
  alignDown,
  alignUp,
  CMDLINE_ADDR,
  CMDLINE_MAX_SIZE,
  EBDA_ADDR,
  HIMEM_START,
  MMIO_GAP_START,
  PAGE_SIZE,
  ZERO_PAGE_ADDR,
  ZERO_PAGE_SIZE,
} from './layout.js';

/** Offsets in struct boot_params outside the setup header (arch/x86/include/uapi/asm/bootparam.h). */
export const BP = {
  acpiRsdpAddr: 0x070, // u64 (boot_params, not the setup header: protocol 2.14's header field was withdrawn, boot.rst)
  extRamdiskImage: 0x0c0, // u32, ramdisk_image >> 32
  extRamdiskSize: 0x0c4, // u32, ramdisk_size >> 32
  extCmdLinePtr: 0x0c8, // u32, cmd_line_ptr >> 32
  e820Entries: 0x1e8, // u8
  sentinel: 0x1ef, // u8, must be 0 or the kernel zeroes "uninitialised" fields
  hdr: 0x1f1, // struct setup_header
  e820Table: 0x2d0, // struct boot_e820_entry[E820_MAX_ENTRIES_ZEROPAGE]
} as const;

export const E820_MAX_ENTRIES = 128;
export const E820_ENTRY_SIZE = 20; // u64 addr, u64 size, u32 type (packed)
export const E820_RAM = 1;
export const E820_RESERVED = 2;

/** type_of_loader 0xff: "undefined" boot loader (as Firecracker and Cloud Hypervisor). */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** Boot protocol version we claim in a header we fill ourselves (ELF vmlinux). */
export const ELF_BOOT_PROTOCOL = 0x020c;
/** kernel_alignment for an ELF vmlinux (Firecracker's KERNEL_MIN_ALIGNMENT_BYTES, 16 MiB). */
export const ELF_KERNEL_ALIGNMENT = 0x0100_0000;
/** Command line limit when the kernel does not say (x86 COMMAND_LINE_SIZE 2048, NUL excluded). */
export const DEFAULT_CMDLINE_LIMIT = 2047;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/**
 * The e820 map for guest RAM `regions` (Firecracker's layout): RAM [0, 0x9fc00), reserved
 * [0x9fc00, 1 MiB) (EBDA with the MP table, VGA hole, BIOS area with the ACPI tables), then every RAM region's part
 * at or above 1 MiB as RAM (up to the MMIO gap, and above 4 GiB). The MMIO gap is a hole, not an
 * entry: Linux treats holes as MMIO space and reserves the APIC pages itself.
 */
export function e820Map(regions: GuestMemory | readonly GuestRegion[]): E820Entry[] {
  const list = 'regionList' in regions ? regions.regionList : regions;
  const low = list.find((r) => r.guestPhysAddr === 0);
  if (!low || low.bytes.byteLength < HIMEM_START) {
    throw new BootError(
      'bad-memory-layout',
      `guest RAM must start at 0 and cover at least the first 1 MiB (boot structures, MP table); it has ${low ? bytesText(low.bytes.byteLength) : 'no region'} at 0`,
    );
  }
  const out: E820Entry[] = [
    { addr: 0, size: EBDA_ADDR, type: E820_RAM },
    { addr: EBDA_ADDR, size: HIMEM_START - EBDA_ADDR, type: E820_RESERVED },
  ];
  const sorted = [...list].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
  for (const r of sorted) {
    const start = Math.max(r.guestPhysAddr, HIMEM_START);
    const end = r.guestPhysAddr + r.bytes.byteLength;
    if (end > start) out.push({ addr: start, size: end - start, type: E820_RAM });
  }
  if (out.length > E820_MAX_ENTRIES) {
    throw new BootError('bad-memory-layout', `guest memory has ${out.length} e820 entries; the zero page holds ${E820_MAX_ENTRIES}`);
  }
  return out;
}

export interface Placed {
  addr: number;
  size: number;
}

export interface ZeroPageOptions {
  /** The setup header bytes of a bzImage (from file offset 0x1f1); absent for an ELF vmlinux. */
  setupHeader?: Uint8Array;
  /** Where the bzImage's protected-mode kernel was loaded (written to code32_start). */
  kernelLoadAddr?: number;
  /** The command line as written by writeCmdline (size includes the NUL). */
  cmdline: Placed;
  initrd?: Placed;
  e820: readonly E820Entry[];
  /** Physical address of the ACPI RSDP (boot_params.acpi_rsdp_addr), so the kernel need not scan for it. */
  acpiRsdpAddr?: number;
}

/**
 * Builds the 4 KiB boot_params image. For a bzImage its setup header is copied in as boot.rst asks
 * (the kernel reads fields such as kernel_alignment and init_size back from it); for an ELF
 * vmlinux the loader fills the few fields Linux reads itself (boot_flag, header, version,
 * kernel_alignment, loadflags), as linux-loader/Firecracker do. Then, for both: type_of_loader
 * 0xff, cmd_line_ptr (+ ext_cmd_line_ptr), cmdline_size, ramdisk_image/ramdisk_size (+ ext_),
 * acpi_rsdp_addr when given, and the e820 table. The sentinel byte stays 0 so that the kernel trusts the fields.
 */
export function buildZeroPage(opts: ZeroPageOptions): Uint8Array {
  const page = new Uint8Array(ZERO_PAGE_SIZE);
  const dv = new DataView(page.buffer);
  if (opts.setupHeader) {
    page.set(opts.setupHeader.subarray(0, 0x290 - BP.hdr), BP.hdr);
    dv.setUint8(HDR.loadflags, dv.getUint8(HDR.loadflags) | LOADED_HIGH);
    if (opts.kernelLoadAddr !== undefined) dv.setUint32(HDR.code32Start, opts.kernelLoadAddr, true);
  } else {
    dv.setUint16(HDR.bootFlag, BOOT_FLAG_MAGIC, true);
    dv.setUint32(HDR.header, HDRS_MAGIC, true);
    dv.setUint16(HDR.version, ELF_BOOT_PROTOCOL, true);
    dv.setUint32(HDR.kernelAlignment, ELF_KERNEL_ALIGNMENT, true);
    dv.setUint8(HDR.loadflags, LOADED_HIGH);
  }
  dv.setUint8(BP.sentinel, 0);
  dv.setUint8(HDR.typeOfLoader, LOADER_TYPE_UNDEFINED);

  setSplit(dv, HDR.cmdLinePtr, BP.extCmdLinePtr, opts.cmdline.addr);
  dv.setUint32(HDR.cmdlineSize, opts.cmdline.size, true);
  const initrd = opts.initrd ?? { addr: 0, size: 0 };
  setSplit(dv, HDR.ramdiskImage, BP.extRamdiskImage, initrd.addr);
  setSplit(dv, HDR.ramdiskSize, BP.extRamdiskSize, initrd.size);
  if (opts.acpiRsdpAddr !== undefined) dv.setBigUint64(BP.acpiRsdpAddr, BigInt(opts.acpiRsdpAddr), true);

  if (opts.e820.length > E820_MAX_ENTRIES) {
    throw new BootError('bad-memory-layout', `${opts.e820.length} e820 entries; the zero page holds ${E820_MAX_ENTRIES}`);
  }
  dv.setUint8(BP.e820Entries, opts.e820.length);
  opts.e820.forEach((e, i) => {
    const o = BP.e820Table + i * E820_ENTRY_SIZE;
    dv.setBigUint64(o, BigInt(e.addr), true);
    dv.setBigUint64(o + 8, BigInt(e.size), true);
    dv.setUint32(o + 16, e.type, true);
  });
  return page;
}

/** A 64-bit value split into a low u32 field and a high u32 ext_ field. */
function setSplit(dv: DataView, lowOff: number, highOff: number, v: number): void {
  dv.setUint32(lowOff, v % 0x1_0000_0000, true);
  dv.setUint32(highOff, Math.floor(v / 0x1_0000_0000), true);
}

/** Writes the zero page at `addr` (0x7000). */
export function writeZeroPage(memory: GuestMemory, opts: ZeroPageOptions, addr = ZERO_PAGE_ADDR): Uint8Array {
  const page = buildZeroPage(opts);
  memory.write(addr, page);
  return page;
}

/**
 * The command line's bytes, validated: no NUL inside, at most `limit` bytes (the kernel's
 * setup_header.cmdline_size, which excludes the NUL) and, with its NUL, inside the cmdline area.
 * `note` says in a too-long error what part of the length is not the user's (Cmdline.encode).
 */
export function encodeCmdline(cmdline: string, limit = DEFAULT_CMDLINE_LIMIT, note?: string): Uint8Array {
  const bytes = new TextEncoder().encode(cmdline);
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new BootError('bad-cmdline', `the kernel command line holds a NUL byte at offset ${nul}; remove it`);
  const max = Math.min(limit, CMDLINE_MAX_SIZE - 1);
  if (bytes.byteLength > max) {
    const by = limit <= CMDLINE_MAX_SIZE - 1 ? `the kernel accepts (setup_header.cmdline_size ${limit})` : `the cmdline area at ${hex(CMDLINE_ADDR)} holds`;
    throw new BootError('bad-cmdline', `the kernel command line is ${bytes.byteLength} bytes, more than the ${max} ${by}${note ? `; ${note}` : ''}; shorten it`);
  }
  return bytes;
}

/** Writes the NUL-terminated command line at CMDLINE_ADDR. Returns where and how long (NUL included). */
export function writeCmdline(memory: GuestMemory, cmdline: string, limit = DEFAULT_CMDLINE_LIMIT, addr = CMDLINE_ADDR): Placed {
  const bytes = encodeCmdline(cmdline, limit);
  const size = bytes.byteLength + 1;
  if (!memory.contains(addr, size)) {
    throw new BootError('bad-memory-layout', `the command line area ${hex(addr)}..${hex(addr + size)} is not in guest RAM`);
  }
  memory.write(addr, bytes);
  memory.writeU8(addr + bytes.byteLength, 0);
  return { addr, size };
}

/**
 * Where an initrd of `size` bytes goes: as high as possible in the RAM region at 0, page-aligned,
 * ending at or below initrd_addr_max + 1 and the MMIO gap, starting at or above the kernel's end.
 * Throws initrd-does-not-fit otherwise. Writes nothing.
 */
export function planInitrd(memory: GuestMemory, size: number, initrdAddrMax: number, kernelEnd = HIMEM_START): number {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new BootError('bad-initrd', `the initrd is ${size} bytes; give an initramfs (a cpio archive, optionally compressed) or no initrd`);
  }
  const low = memory.regionList.find((r) => r.guestPhysAddr === 0);
  const lowEnd = low ? low.bytes.byteLength : 0;
  const top = Math.min(lowEnd, MMIO_GAP_START, initrdAddrMax + 1);
  const bottom = alignUp(Math.max(kernelEnd, HIMEM_START), PAGE_SIZE);
  const addr = alignDown(top - size, PAGE_SIZE);
  if (addr < bottom) {
    const room = Math.max(0, alignDown(top, PAGE_SIZE) - bottom);
    const limiter =
      top === lowEnd ? `the end of low guest RAM ${hex(lowEnd)}` : top === MMIO_GAP_START ? `the MMIO gap at ${hex(MMIO_GAP_START)}` : `initrd_addr_max ${hex(initrdAddrMax)}`;
    throw new BootError(
      'initrd-does-not-fit',
      `the initrd (${bytesText(size)}) does not fit: it must lie above the kernel's end ${hex(bottom)} and below ${limiter}, which leaves ${bytesText(room)}; give the VM more memory or use a smaller initrd`,
    );
  }
  return addr;
}

/** Places the initrd (see planInitrd) and copies it there. */
export function placeInitrd(memory: GuestMemory, initrd: Uint8Array, initrdAddrMax: number, kernelEnd = HIMEM_START): Placed {
  const addr = planInitrd(memory, initrd.byteLength, initrdAddrMax, kernelEnd);
  memory.write(addr, initrd);
  return { addr, size: initrd.byteLength };
}
