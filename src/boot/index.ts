// src/boot: everything that turns a kernel file, an initrd and a command line into guest memory
// contents and boot-vCPU register values, for the Linux x86_64 64-bit boot protocol. Pure: it
// writes only through GuestMemory and returns values; src/vmm applies them with KVM ioctls.
//
//   const boot = setupBoot(memory, { kernel, initrd, cmdline, vcpus });
//   vcpu0.setRegs(boot.regs());
//   vcpu0.setSregs(boot.sregs(vcpu0.getSregs()));
//   for each vCPU i: setCpuid(boot.cpuid(supported, i)), setMsrs(boot.msrs(offered).entries),
//                    setFpu(BOOT_FPU), setLapic(setLapicLints(getLapic()))
//   (application processors keep KVM's reset state: the kernel starts them with INIT/SIPI)
//
// Every check runs before the first write, so a BootError leaves guest memory untouched.

import type { GuestMemory } from '../vmm/guest-memory.js';
import type { CpuidEntry, MsrEntry, Regs, Sregs } from '../vmm/kvm-structs.js';
import { buildZeroPage, DEFAULT_CMDLINE_LIMIT, e820Map, encodeCmdline, planInitrd, type E820Entry, type Placed } from './bootparams.js';
import { bzImageLayout, checkKernelFits, HDR, HDRS_MAGIC, parseBzImage, type BzImageInfo, type LoadedKernelLayout } from './bzimage.js';
import { vcpuCpuid } from './cpuid.js';
import { checkElfFits, ELF_MAGIC, elfLayout, parseElf, type ElfInfo } from './elf.js';
import { BootError, bytesText, hex } from './errors.js';
import { writeGdtAndIdt } from './gdt.js';
import { ACPI_AREA_START, CMDLINE_ADDR, IDENTITY_MAP_SIZE, KERNEL_LOAD_ADDR, MMIO_GAP_START, ZERO_PAGE_ADDR } from './layout.js';
import { buildMptable, checkVcpuCount, type MpTableInfo } from './mptable.js';
import { buildAcpiTables, type AcpiDevices, type AcpiTables } from './acpi/index.js';
import { writeIdentityPageTables } from './paging.js';
import { bootMsrs, bootRegs, longModeSregs } from './regs.js';
import { Cmdline } from './cmdline.js';

export { BootError, type BootErrorReason } from './errors.js';
export * from './layout.js';
export { parseBzImage, loadBzImage, type BzImageInfo, type SetupHeader, type LoadedKernelLayout } from './bzimage.js';
export { parseElf, loadElf, type ElfInfo, type ElfSegment } from './elf.js';
export { e820Map, buildZeroPage, writeZeroPage, writeCmdline, encodeCmdline, planInitrd, placeInitrd, type E820Entry, type Placed } from './bootparams.js';
export { writeGdtAndIdt, segmentFromGdt, gdtEntry, BOOT_GDT } from './gdt.js';
export { writeIdentityPageTables } from './paging.js';
export { bootRegs, longModeSregs, bootMsrs, setLapicLints, BOOT_FPU, BOOT_MSRS } from './regs.js';
export { buildMptable, writeMptable, mptableSize, MAX_MPTABLE_CPUS, type MpTableInfo } from './mptable.js';
export { vcpuCpuid, cpuVendor, hasKvmSignature, findCpuid, type CpuidOptions } from './cpuid.js';
export { Cmdline, type CmdlineParam, type CmdlineDefault } from './cmdline.js';
export { buildAcpiTables, type AcpiDevices, type AcpiSerialPort, type AcpiVirtioMmio, type AcpiTables, type AcpiTable } from './acpi/index.js';

export type KernelFormat = 'bzImage' | 'elf';

/** A validated kernel image, not yet in guest memory. */
export interface ParsedKernel extends LoadedKernelLayout {
  format: KernelFormat;
  /** Longest command line the kernel accepts, NUL excluded. */
  cmdlineLimit: number;
  /** Highest address the initrd may occupy. */
  initrdAddrMax: number;
  /** bzImage only: the raw setup header to copy into boot_params. */
  setupHeader?: Uint8Array;
  /** ELF only: the PVH entry (XEN_ELFNOTE_PHYS32_ENTRY), when present. */
  pvhEntry?: number;
  bzImage?: BzImageInfo;
  elf?: ElfInfo;
  /** "bzImage, protocol 2.15, 6.1.0 (...)" / "ELF vmlinux, 3 segments" for logs. */
  description: string;
}

export type LoadedKernel = ParsedKernel;

const KNOWN_MAGIC: { bytes: number[]; what: string }[] = [
  { bytes: [0x1f, 0x8b], what: 'a gzip file (a compressed vmlinux or initramfs?)' },
  { bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'an xz file' },
  { bytes: [0x28, 0xb5, 0x2f, 0xfd], what: 'a zstd file' },
  { bytes: [0x04, 0x22, 0x4d, 0x18], what: 'an lz4 file' },
  { bytes: [0x42, 0x5a, 0x68], what: 'a bzip2 file' },
  { bytes: [0x30, 0x37, 0x30, 0x37, 0x30], what: 'a cpio archive (an initramfs, not a kernel?)' },
  { bytes: [0x4d, 0x5a], what: "a PE/EFI executable without a Linux setup header (an arm64 Image or an EFI application?)" },
  { bytes: [0x23, 0x21], what: 'a script' },
  { bytes: [0x50, 0x4b, 0x03, 0x04], what: 'a zip archive' },
];

/** What the first bytes of a file look like, for the unknown-format message. */
export function describeFileStart(bytes: Uint8Array): string {
  if (bytes.byteLength === 0) return 'the file is empty';
  const head = Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const known = KNOWN_MAGIC.find((m) => m.bytes.every((b, i) => bytes[i] === b));
  let guess: string;
  if (known) guess = known.what;
  else if (bytes.subarray(0, 64).every((b) => b === 0)) guess = 'zeros';
  else if (bytes.subarray(0, Math.min(64, bytes.byteLength)).every((b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b < 0x7f))) {
    guess = `text ("${Buffer.from(bytes.subarray(0, 24)).toString('latin1').replace(/\s+/g, ' ')}...")`;
  } else guess = 'no known format';
  return `${bytes.byteLength} bytes starting ${head}: ${guess}`;
}

/** bzImage when 'HdrS' sits at 0x202, ELF when the file starts with \x7fELF; otherwise a BootError. */
export function detectKernelFormat(bytes: Uint8Array): KernelFormat {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength >= HDR.header + 4 && dv.getUint32(HDR.header, true) === HDRS_MAGIC) return 'bzImage';
  if (bytes.byteLength >= 4 && dv.getUint32(0, true) === ELF_MAGIC) return 'elf';
  throw new BootError(
    'unknown-kernel-format',
    `the kernel is neither a bzImage ('HdrS' at 0x202) nor an ELF vmlinux (\\x7fELF): ${describeFileStart(bytes)}; give arch/x86/boot/bzImage or vmlinux from a kernel build`,
  );
}

/** Validates a kernel file of either format; writes nothing. */
export function parseKernel(bytes: Uint8Array): ParsedKernel {
  if (detectKernelFormat(bytes) === 'bzImage') {
    const info = parseBzImage(bytes);
    const h = info.header;
    const version = `${h.version >> 8}.${(h.version & 0xff).toString().padStart(2, '0')}`;
    return {
      format: 'bzImage',
      ...bzImageLayout(info, KERNEL_LOAD_ADDR),
      cmdlineLimit: h.cmdlineSize > 0 ? h.cmdlineSize : DEFAULT_CMDLINE_LIMIT,
      initrdAddrMax: h.initrdAddrMax > 0 ? h.initrdAddrMax : 0x37ffffff,
      setupHeader: info.headerBytes,
      bzImage: info,
      description: `bzImage, boot protocol ${version}${info.kernelVersion ? `, ${info.kernelVersion}` : ''}`,
    };
  }
  const info = parseElf(bytes);
  const parsed: ParsedKernel = {
    format: 'elf',
    ...elfLayout(info),
    cmdlineLimit: DEFAULT_CMDLINE_LIMIT,
    // A 64-bit kernel takes its initrd anywhere in RAM; keep it below the MMIO gap.
    initrdAddrMax: MMIO_GAP_START - 1,
    elf: info,
    description: `ELF vmlinux, ${info.segments.length} PT_LOAD segment(s), entry ${hex(info.entry)}${info.pvhEntry !== undefined ? `, PVH entry ${hex(info.pvhEntry)}` : ''}`,
  };
  if (info.pvhEntry !== undefined) parsed.pvhEntry = info.pvhEntry;
  return parsed;
}

function checkFits(memory: GuestMemory, k: ParsedKernel): void {
  if (k.elf) checkElfFits(memory, k.elf);
  else checkKernelFits(memory, k, `the bzImage (${bytesText(k.bzImage?.payload.byteLength ?? 0)} protected-mode kernel, init_size ${bytesText(k.bzImage?.header.initSize ?? 0)})`);
}

function writeKernel(memory: GuestMemory, k: ParsedKernel, bytes: Uint8Array): void {
  if (k.bzImage) {
    memory.write(k.loadAddr, k.bzImage.payload);
    return;
  }
  for (const s of k.elf?.segments ?? []) {
    memory.write(s.paddr, bytes.subarray(s.offset, s.offset + s.filesz));
    if (s.memsz > s.filesz) memory.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
}

/**
 * Detects the format (bzImage or ELF vmlinux), validates the file, checks that it fits in guest
 * memory and loads it (bzImage: protected-mode kernel at 1 MiB; ELF: PT_LOAD segments at their
 * p_paddr). Throws BootError before writing anything.
 */
export function loadKernel(memory: GuestMemory, kernelBytes: Uint8Array): LoadedKernel {
  const k = parseKernel(kernelBytes);
  checkFits(memory, k);
  writeKernel(memory, k, kernelBytes);
  return k;
}

export interface BootConfig {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** The kernel command line; a Cmdline's too-long error also says how much of it tsvmm added. */
  cmdline: string | Cmdline;
  vcpus: number;
  /**
   * Devices the ACPI DSDT describes. A kernel that uses ACPI (hardware-reduced: no 8259) gives a
   * device an interrupt only through its _CRS, so list every UART and virtio-mmio transport here.
   */
  acpiDevices?: AcpiDevices;
}

export interface BootSetup {
  kernel: LoadedKernel;
  /** RIP of the boot vCPU. */
  entry: number;
  /** RSI of the boot vCPU: the zero page. */
  bootParamsAddr: number;
  cmdline: Placed;
  initrd?: Placed;
  e820: E820Entry[];
  mptable: MpTableInfo;
  /** The ACPI tables in the BIOS area; the RSDP address is also in boot_params.acpi_rsdp_addr. */
  acpi: AcpiTables;
  /** CR3: the identity-map PML4. */
  cr3: bigint;
  /** General registers of the boot vCPU (vCPU 0). */
  regs(): Regs;
  /** Long-mode special registers of the boot vCPU, from what KVM_GET_SREGS returned. */
  sregs(base: Sregs): Sregs;
  /** CPUID for vCPU `index` from KVM_GET_SUPPORTED_CPUID's entries. */
  cpuid(supported: readonly CpuidEntry[], index: number, opts?: { tscDeadline?: boolean }): CpuidEntry[];
  /** The boot MSRs, restricted to those in KVM_GET_MSR_INDEX_LIST when given. */
  msrs(offered?: Iterable<number>): { entries: MsrEntry[]; skipped: number[] };
}

/**
 * Lays out a bootable guest: kernel, initrd (top of low RAM), command line (0x20000), zero page
 * (0x7000) with the e820 map, GDT/IDT (0x500/0x520), identity page tables (0x9000..0xbfff), the
 * MP table (0x9fc00, for kernels without ACPI or booted with acpi=off) and the ACPI tables
 * (0xe0000). Validates everything first; a BootError leaves guest memory untouched.
 */
export function setupBoot(memory: GuestMemory, config: BootConfig): BootSetup {
  checkVcpuCount(config.vcpus);
  const kernel = parseKernel(config.kernel);
  const e820 = e820Map(memory);
  checkFits(memory, kernel);
  if (kernel.kernelEnd > IDENTITY_MAP_SIZE) {
    throw new BootError(
      'kernel-does-not-fit',
      `the kernel reaches ${hex(kernel.kernelEnd)} while it starts, beyond the ${bytesText(IDENTITY_MAP_SIZE)} the boot page tables identity-map`,
    );
  }
  const cmdlineBytes = config.cmdline instanceof Cmdline ? config.cmdline.encode(kernel.cmdlineLimit) : encodeCmdline(config.cmdline, kernel.cmdlineLimit);
  const initrdAddr = config.initrd ? planInitrd(memory, config.initrd.byteLength, kernel.initrdAddrMax, kernel.kernelEnd) : undefined;
  const mp = buildMptable(config.vcpus);
  if (!memory.contains(mp.info.addr, mp.bytes.byteLength)) {
    throw new BootError('bad-memory-layout', `the MP table (${mp.bytes.byteLength} bytes at ${hex(mp.info.addr)}) is not inside guest RAM`);
  }
  const acpi = buildAcpiTables({ cpus: config.vcpus, ioapicId: mp.info.ioapicId, ...(config.acpiDevices ? { devices: config.acpiDevices } : {}) });
  if (!memory.contains(ACPI_AREA_START, acpi.end - ACPI_AREA_START)) {
    throw new BootError('bad-memory-layout', `the ACPI tables (${hex(ACPI_AREA_START)}..${hex(acpi.end)}) are not inside guest RAM`);
  }

  // Everything checked: write.
  writeKernel(memory, kernel, config.kernel);
  let initrd: Placed | undefined;
  if (config.initrd && initrdAddr !== undefined) {
    memory.write(initrdAddr, config.initrd);
    initrd = { addr: initrdAddr, size: config.initrd.byteLength };
  }
  memory.write(CMDLINE_ADDR, cmdlineBytes);
  memory.writeU8(CMDLINE_ADDR + cmdlineBytes.byteLength, 0);
  const cmdline: Placed = { addr: CMDLINE_ADDR, size: cmdlineBytes.byteLength + 1 };
  const zp: Parameters<typeof buildZeroPage>[0] = { cmdline, e820, acpiRsdpAddr: acpi.rsdpAddr };
  if (kernel.setupHeader) {
    zp.setupHeader = kernel.setupHeader;
    zp.kernelLoadAddr = kernel.loadAddr;
  }
  if (initrd) zp.initrd = initrd;
  memory.write(ZERO_PAGE_ADDR, buildZeroPage(zp));
  writeGdtAndIdt(memory);
  const cr3 = writeIdentityPageTables(memory);
  memory.write(mp.info.addr, mp.bytes);
  for (const t of acpi.tables) memory.write(t.addr, t.bytes);

  const vcpus = config.vcpus;
  const setup: BootSetup = {
    kernel,
    entry: kernel.entry,
    bootParamsAddr: ZERO_PAGE_ADDR,
    cmdline,
    e820,
    mptable: mp.info,
    acpi,
    cr3,
    regs: () => bootRegs(kernel.entry, ZERO_PAGE_ADDR),
    sregs: (base) => longModeSregs(base, cr3),
    cpuid: (supported, index, opts) => vcpuCpuid(supported, { vcpuIndex: index, vcpuCount: vcpus, ...opts }),
    msrs: (offered) => bootMsrs(offered),
  };
  if (initrd) setup.initrd = initrd;
  return setup;
}
