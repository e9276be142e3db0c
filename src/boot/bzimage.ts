// bzImage: the Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry.
//
// A bzImage is the real-mode setup code ((setup_sects + 1) * 512 bytes, the setup header at 0x1f1
// inside it) followed by the protected-mode kernel (the decompressor with the compressed vmlinux).
// With the 64-bit boot protocol the VMM skips the real-mode code entirely: it copies the protected-
// mode part to 1 MiB, builds boot_params itself (bootparams.ts) with the setup header copied from
// the file, and starts the vCPU in long mode at load address + 0x200 (startup_64), RSI = zero page.
// That entry exists from boot protocol 2.12 on, which is when xloadflags (XLF_KERNEL_64) appeared.

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError, bytesText, hex } from './errors.js';
import { KERNEL_LOAD_ADDR } from './layout.js';

/** Offsets of the setup_header fields, in the file and in struct boot_params alike. */
export const HDR = {
  setupSects: 0x1f1, // u8
  rootFlags: 0x1f2, // u16
  syssize: 0x1f4, // u32, 16-byte paragraphs of protected-mode code
  ramSize: 0x1f8, // u16, obsolete
  vidMode: 0x1fa, // u16
  rootDev: 0x1fc, // u16
  bootFlag: 0x1fe, // u16, 0xAA55
  jump: 0x200, // u16; the byte at 0x201 + 0x202 is the end of the header
  header: 0x202, // u32, 'HdrS'
  version: 0x206, // u16
  realmodeSwtch: 0x208, // u32
  startSysSeg: 0x20c, // u16, obsolete
  kernelVersion: 0x20e, // u16
  typeOfLoader: 0x210, // u8
  loadflags: 0x211, // u8
  setupMoveSize: 0x212, // u16
  code32Start: 0x214, // u32
  ramdiskImage: 0x218, // u32
  ramdiskSize: 0x21c, // u32
  bootsectKludge: 0x220, // u32
  heapEndPtr: 0x224, // u16
  extLoaderVer: 0x226, // u8
  extLoaderType: 0x227, // u8
  cmdLinePtr: 0x228, // u32
  initrdAddrMax: 0x22c, // u32
  kernelAlignment: 0x230, // u32
  relocatableKernel: 0x234, // u8
  minAlignment: 0x235, // u8
  xloadflags: 0x236, // u16
  cmdlineSize: 0x238, // u32
  hardwareSubarch: 0x23c, // u32
  hardwareSubarchData: 0x240, // u64
  payloadOffset: 0x248, // u32
  payloadLength: 0x24c, // u32
  setupData: 0x250, // u64
  prefAddress: 0x258, // u64
  initSize: 0x260, // u32
  handoverOffset: 0x264, // u32
  kernelInfoOffset: 0x268, // u32 (2.15+)
  /** One past the last field of struct setup_header as of protocol 2.15. */
  end: 0x26c,
} as const;

/** The header copied into boot_params may reach up to here (boot_params' padding before
 * edd_mbr_sig_buffer at 0x290 absorbs fields newer than this code knows). */
export const HDR_COPY_LIMIT = 0x290;

export const HDRS_MAGIC = 0x53726448; // 'HdrS' little-endian
export const BOOT_FLAG_MAGIC = 0xaa55;
export const MIN_BOOT_PROTOCOL = 0x020c; // 2.12: xloadflags, XLF_KERNEL_64

/** loadflags bits */
export const LOADED_HIGH = 0x01;
export const KASLR_FLAG = 0x02;
export const QUIET_FLAG = 0x20;
export const KEEP_SEGMENTS = 0x40;
export const CAN_USE_HEAP = 0x80;

/** xloadflags bits */
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
export const XLF_EFI_HANDOVER_32 = 1 << 2;
export const XLF_EFI_HANDOVER_64 = 1 << 3;
export const XLF_EFI_KEXEC = 1 << 4;

/** Offset of the 64-bit entry point (startup_64) from the start of the protected-mode kernel. */
export const STARTUP_64_OFFSET = 0x200;

export interface SetupHeader {
  /** As stored; 0 means 4. */
  setupSects: number;
  syssize: number;
  bootFlag: number;
  version: number;
  loadflags: number;
  code32Start: number;
  kernelAlignment: number;
  relocatableKernel: boolean;
  minAlignment: number;
  xloadflags: number;
  /** Maximum command line length the kernel accepts, without the terminating NUL. */
  cmdlineSize: number;
  /** Highest address the initrd may occupy (its last byte). */
  initrdAddrMax: number;
  /** Preferred (and, for a non-relocatable kernel, the only) runtime address of the kernel. */
  prefAddress: bigint;
  /** Bytes of memory the kernel needs from its runtime address while it decompresses and runs. */
  initSize: number;
  handoverOffset: number;
  kernelVersionOffset: number;
}

export interface BzImageInfo {
  format: 'bzImage';
  header: SetupHeader;
  /** The raw setup header, file bytes [0x1f1, end of header), to copy into boot_params. */
  headerBytes: Uint8Array;
  /** Bytes of real-mode setup code ((setup_sects + 1) * 512): the protected-mode part follows. */
  setupSize: number;
  /** The protected-mode kernel: what gets loaded at KERNEL_LOAD_ADDR. */
  payload: Uint8Array;
  /** The kernel's version string (from kernel_version), when the file has one. */
  kernelVersion?: string;
}

export interface LoadedKernelLayout {
  /** Where the protected-mode kernel / lowest segment was placed. */
  loadAddr: number;
  /** The 64-bit entry point (RIP of the boot vCPU). */
  entry: number;
  /**
   * One past the highest byte the kernel occupies or will use while decompressing itself: the
   * initrd must start at or above this.
   */
  kernelEnd: number;
}

function versionText(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, '0')}`;
}

/** Parses and validates a bzImage's setup header. Throws BootError; never writes anything. */
export function parseBzImage(bytes: Uint8Array): BzImageInfo {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < HDR.header + 4) {
    throw new BootError(
      'not-a-bzimage',
      `not a bzImage: the file is ${bytes.byteLength} bytes, too short to hold a setup header ('HdrS' at ${hex(HDR.header)})`,
    );
  }
  const magic = dv.getUint32(HDR.header, true);
  if (magic !== HDRS_MAGIC) {
    throw new BootError(
      'not-a-bzimage',
      `not a bzImage: no 'HdrS' magic at ${hex(HDR.header)} (found ${hex(magic)}); give an x86 bzImage (arch/x86/boot/bzImage) or an uncompressed ELF vmlinux`,
    );
  }
  if (bytes.byteLength < HDR.version + 2) {
    throw new BootError('truncated', `truncated bzImage: the file ends (${bytes.byteLength} bytes) inside the setup header`);
  }
  const version = dv.getUint16(HDR.version, true);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new BootError(
      'protocol-too-old',
      `bzImage boot protocol ${versionText(version)} (${hex(version)}) is too old: the 64-bit entry needs protocol 2.12 or later (Linux 3.8+)`,
    );
  }
  if (bytes.byteLength < HDR.kernelInfoOffset) {
    throw new BootError(
      'truncated',
      `truncated bzImage: the file is ${bytes.byteLength} bytes, but a protocol ${versionText(version)} setup header reaches ${hex(HDR.kernelInfoOffset)}`,
    );
  }
  const loadflags = dv.getUint8(HDR.loadflags);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new BootError(
      'not-loaded-high',
      `bzImage loadflags ${hex(loadflags)} lack LOADED_HIGH (bit 0): this is a zImage loaded at 0x10000, which tsvmm does not boot; build a bzImage`,
    );
  }
  const xloadflags = dv.getUint16(HDR.xloadflags, true);
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new BootError(
      'no-64bit-entry',
      `bzImage xloadflags ${hex(xloadflags)} lack XLF_KERNEL_64 (bit 0): the kernel has no 64-bit entry point (a 32-bit kernel?); build an x86_64 kernel`,
    );
  }
  const setupSectsRaw = dv.getUint8(HDR.setupSects);
  const setupSize = ((setupSectsRaw === 0 ? 4 : setupSectsRaw) + 1) * 512;
  if (bytes.byteLength < setupSize) {
    throw new BootError(
      'truncated',
      `truncated bzImage: setup_sects ${setupSectsRaw} says the setup code takes ${setupSize} bytes, but the file is ${bytes.byteLength} bytes`,
    );
  }
  const syssize = dv.getUint32(HDR.syssize, true);
  const payloadSize = bytes.byteLength - setupSize;
  if (syssize * 16 > payloadSize) {
    throw new BootError(
      'truncated',
      `truncated bzImage: syssize ${hex(syssize)} says the protected-mode kernel is ${syssize * 16} bytes, but only ${payloadSize} follow the ${setupSize}-byte setup code`,
    );
  }
  if (payloadSize <= STARTUP_64_OFFSET) {
    throw new BootError(
      'truncated',
      `truncated bzImage: the protected-mode kernel is ${payloadSize} bytes, too short to hold the 64-bit entry at +${hex(STARTUP_64_OFFSET)}`,
    );
  }

  const header: SetupHeader = {
    setupSects: setupSectsRaw,
    syssize,
    bootFlag: dv.getUint16(HDR.bootFlag, true),
    version,
    loadflags,
    code32Start: dv.getUint32(HDR.code32Start, true),
    kernelAlignment: dv.getUint32(HDR.kernelAlignment, true),
    relocatableKernel: dv.getUint8(HDR.relocatableKernel) !== 0,
    minAlignment: dv.getUint8(HDR.minAlignment),
    xloadflags,
    cmdlineSize: dv.getUint32(HDR.cmdlineSize, true),
    initrdAddrMax: dv.getUint32(HDR.initrdAddrMax, true),
    prefAddress: dv.getBigUint64(HDR.prefAddress, true),
    initSize: dv.getUint32(HDR.initSize, true),
    handoverOffset: dv.getUint32(HDR.handoverOffset, true),
    kernelVersionOffset: dv.getUint16(HDR.kernelVersion, true),
  };
  const declaredEnd = HDR.header + dv.getUint8(HDR.jump + 1);
  const headerEnd = Math.min(Math.max(declaredEnd, HDR.kernelInfoOffset), HDR_COPY_LIMIT, bytes.byteLength);
  const info: BzImageInfo = {
    format: 'bzImage',
    header,
    headerBytes: bytes.slice(HDR.setupSects, headerEnd),
    setupSize,
    payload: bytes.subarray(setupSize),
  };
  const kv = readKernelVersion(bytes, header.kernelVersionOffset, setupSize);
  if (kv !== undefined) info.kernelVersion = kv;
  return info;
}

/** kernel_version points (minus 0x200) at a NUL-terminated string inside the setup code. */
function readKernelVersion(bytes: Uint8Array, offset: number, setupSize: number): string | undefined {
  if (offset === 0) return undefined;
  const start = offset + 0x200;
  if (start >= setupSize) return undefined;
  let end = start;
  while (end < setupSize && end - start < 256 && bytes[end] !== 0) end++;
  const s = Buffer.from(bytes.subarray(start, end)).toString('latin1');
  return /^[\x20-\x7e]+$/.test(s) ? s : undefined;
}

/**
 * Where the protected-mode kernel goes and how far up it reaches once running. The decompressor
 * (arch/x86/boot/compressed/head_64.S) runs from the load address, then works in the buffer
 * [runtime, runtime + init_size), where runtime = max(load aligned up to kernel_alignment,
 * pref_address) for a relocatable kernel, pref_address (LOAD_PHYSICAL_ADDR) otherwise. The
 * initrd must lie above both.
 */
export function bzImageLayout(info: BzImageInfo, loadAddr = KERNEL_LOAD_ADDR): LoadedKernelLayout {
  const h = info.header;
  const payloadEnd = loadAddr + info.payload.byteLength;
  if (h.prefAddress > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BootError('kernel-does-not-fit', `bzImage pref_address ${hex(h.prefAddress)} is beyond any guest memory`);
  }
  const pref = Number(h.prefAddress);
  const align = h.kernelAlignment > 0 ? h.kernelAlignment : 1;
  let runtime: number;
  if (h.relocatableKernel) runtime = Math.max(Math.ceil(loadAddr / align) * align, pref);
  else runtime = pref !== 0 ? pref : loadAddr;
  const kernelEnd = Math.max(payloadEnd, runtime + h.initSize);
  return { loadAddr, entry: loadAddr + STARTUP_64_OFFSET, kernelEnd };
}

/** Throws kernel-does-not-fit unless [loadAddr, kernelEnd) lies in one RAM region. */
export function checkKernelFits(memory: GuestMemory, layout: LoadedKernelLayout, what: string): void {
  const need = layout.kernelEnd - layout.loadAddr;
  if (memory.contains(layout.loadAddr, need)) return;
  const region = memory.regionList.find((r) => r.guestPhysAddr <= layout.loadAddr && layout.loadAddr < r.guestPhysAddr + r.bytes.byteLength);
  const has = region ? region.guestPhysAddr + region.bytes.byteLength : 0;
  throw new BootError(
    'kernel-does-not-fit',
    `${what} does not fit in guest memory: it needs RAM from ${hex(layout.loadAddr)} up to ${hex(layout.kernelEnd)} ` +
      `(${bytesText(layout.kernelEnd)} of RAM below the MMIO gap) but guest RAM there ends at ${hex(has)} (${bytesText(has)}); give the VM more memory`,
  );
}

/**
 * Validates a bzImage, checks that it fits, and copies its protected-mode kernel to `loadAddr`
 * (1 MiB). Nothing is written when it throws.
 */
export function loadBzImage(memory: GuestMemory, bytes: Uint8Array, loadAddr = KERNEL_LOAD_ADDR): BzImageInfo & LoadedKernelLayout {
  const info = parseBzImage(bytes);
  const layout = bzImageLayout(info, loadAddr);
  checkKernelFits(memory, layout, `the bzImage (${bytesText(info.payload.byteLength)} protected-mode kernel, init_size ${bytesText(info.header.initSize)})`);
  memory.write(loadAddr, info.payload);
  return { ...info, ...layout };
}
