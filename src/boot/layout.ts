// The x86_64 guest-physical memory layout (design.md "Memory layout", Firecracker-like).
//
//   0x0000_0000  RAM (real-mode IVT/BDA area, unused by a 64-bit boot)
//   0x0000_0500  GDT (4 entries)            BOOT_GDT_ADDR
//   0x0000_0520  IDT (one empty entry)      BOOT_IDT_ADDR
//   0x0000_7000  zero page (boot_params)    ZERO_PAGE_ADDR
//   0x0000_8ff0  initial stack pointer      BOOT_STACK_POINTER (grows down, below the PML4)
//   0x0000_9000  PML4 / 0xa000 PDPT / 0xb000 PD: identity map of [0, 1 GiB) with 2 MiB pages
//   0x0002_0000  kernel command line        CMDLINE_ADDR .. + CMDLINE_MAX_SIZE
//   0x0009_fc00  EBDA: MP table             MPTABLE_ADDR (e820: reserved up to 1 MiB)
//   0x000e_0000  ACPI tables: RSDP, then XSDT/FADT/MADT/DSDT   ACPI_AREA_START .. ACPI_AREA_END
//   0x0010_0000  kernel (bzImage protected-mode part / vmlinux segments at their p_paddr)
//   ...          initrd at the top of low RAM, below initrd_addr_max and the MMIO gap
//   0xd000_0000  32-bit MMIO gap: virtio-mmio slots of 4 KiB from here, IOAPIC 0xfec0_0000,
//                LAPIC 0xfee0_0000, KVM's TSS/identity-map pages just below 4 GiB
//   0x1_0000_0000 RAM above 4 GiB continues (when the guest has more than 0xd000_0000 bytes)
//   above RAM    virtio-fs DAX windows (placed by src/vmm, see firstAddressAboveRam)

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const PAGE_SIZE = 4096;

/** GDT: null, code64, data, TSS (gdt.ts). */
export const BOOT_GDT_ADDR = 0x500;
/** IDT: one zero 8-byte entry; interrupts stay disabled until the kernel loads its own. */
export const BOOT_IDT_ADDR = 0x520;
/** struct boot_params, 4 KiB. */
export const ZERO_PAGE_ADDR = 0x7000;
export const ZERO_PAGE_SIZE = 4096;
/** Initial RSP/RBP of the boot vCPU (as Firecracker): the 64-bit entry code sets its own stack. */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Identity-map page tables. */
export const PML4_ADDR = 0x9000;
export const PDPT_ADDR = 0xa000;
export const PD_ADDR = 0xb000;
/** Bytes identity-mapped by the boot page tables (512 PD entries of 2 MiB). */
export const IDENTITY_MAP_SIZE = 1 * GiB;
/** Kernel command line; the area reaches up to CMDLINE_ADDR + CMDLINE_MAX_SIZE. */
export const CMDLINE_ADDR = 0x20000;
/** Size of the cmdline area, NUL included (Linux's x86 COMMAND_LINE_SIZE is 2048; the kernel's
 * own limit, setup_header.cmdline_size, is checked as well). 64 KiB leaves room for the largest
 * COMMAND_LINE_SIZE a kernel may be configured with. */
export const CMDLINE_MAX_SIZE = 0x10000;
/** Extended BIOS data area: the last 1 KiB below 640 KiB. The MP table starts here. */
export const EBDA_ADDR = 0x9fc00;
export const MPTABLE_ADDR = EBDA_ADDR;
/**
 * The BIOS read-only area [0xe0000, 1 MiB), reserved in the e820 map, holds the ACPI tables. The
 * RSDP comes first, on a 16-byte boundary, where Linux's legacy scan looks for it (ACPI 6.5
 * §5.2.5.1: "the 16-byte boundaries of ... 0E0000h to 0FFFFFh"); the kernel is also told its
 * address through boot_params.acpi_rsdp_addr.
 */
export const ACPI_AREA_START = 0xe0000;
export const ACPI_AREA_END = 0x100000;
export const ACPI_RSDP_ADDR = ACPI_AREA_START;
/** First address above the legacy BIOS/VGA area; the kernel is loaded here. */
export const HIMEM_START = 0x100000;
export const KERNEL_LOAD_ADDR = HIMEM_START;

/** The 32-bit MMIO gap: no RAM between these addresses. */
export const MMIO_GAP_START = 0xd000_0000;
export const MMIO_GAP_END = 0x1_0000_0000;
export const MMIO_GAP_SIZE = MMIO_GAP_END - MMIO_GAP_START;
/** First address of RAM above the gap. */
export const HIGH_RAM_START = MMIO_GAP_END;

/** virtio-mmio device slots: VIRTIO_MMIO_SLOT_SIZE bytes each, from VIRTIO_MMIO_BASE. */
export const VIRTIO_MMIO_BASE = MMIO_GAP_START;
export const VIRTIO_MMIO_SLOT_SIZE = 0x1000;
/** Slots reserved for virtio-mmio devices (1 MiB of the gap); more than there are IRQs for. */
export const VIRTIO_MMIO_MAX_SLOTS = 256;

/** IOAPIC and local APIC at their architectural default addresses (asm/apicdef.h). */
export const IOAPIC_ADDR = 0xfec0_0000;
export const IOAPIC_SIZE = 0x1000;
export const LAPIC_ADDR = 0xfee0_0000;
export const LAPIC_SIZE = 0x1000;
/** KVM_SET_TSS_ADDR wants three pages of guest-physical space that is not RAM (Intel only). */
export const KVM_TSS_ADDR = 0xfffb_d000;
/** KVM_SET_IDENTITY_MAP_ADDR: one page, just below the TSS pages. */
export const KVM_IDENTITY_MAP_ADDR = 0xfffb_c000;

/**
 * ACPI hardware-reduced power management registers, one byte each in I/O space, served by
 * devices/legacy/acpi-pm.ts and announced in the FADT (ACPI 6.5 §4.8.3.7, §4.8.3.6):
 *   0x600 SLEEP_CONTROL_REG: SLP_TYP (bits 2..4) and SLP_EN (bit 5); S5 + SLP_EN powers off
 *   0x601 SLEEP_STATUS_REG:  WAK_STS (bit 7), write 1 to clear
 *   0x602 RESET_REG:         ACPI_RESET_VALUE resets the machine (Linux `reboot=a`)
 * (0x600 is free on a PC and is where Cloud Hypervisor puts its sleep/reset register too.)
 */
export const ACPI_PM_PORT = 0x600;
export const ACPI_PM_PORT_LENGTH = 3;
export const ACPI_SLEEP_CONTROL_PORT = ACPI_PM_PORT;
export const ACPI_SLEEP_STATUS_PORT = ACPI_PM_PORT + 1;
export const ACPI_RESET_PORT = ACPI_PM_PORT + 2;
export const ACPI_RESET_VALUE = 0x01;
/** The SLP_TYP value the DSDT's \_S5_ package gives for soft-off (the value is ours to choose). */
export const ACPI_S5_SLP_TYP = 5;

/** IOAPIC pins: 0..23. Legacy devices use 0..15 (serial 4, i8042 1/12); virtio-mmio gets 5..23. */
export const IOAPIC_NUM_PINS = 24;
export const IRQ_BASE = 5;
export const IRQ_MAX = 23;

/** Guest-physical address of virtio-mmio slot `index`. */
export function virtioMmioSlotAddr(index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= VIRTIO_MMIO_MAX_SLOTS) {
    throw new RangeError(`virtio-mmio slot ${index} is out of range: there are ${VIRTIO_MMIO_MAX_SLOTS} slots (0..${VIRTIO_MMIO_MAX_SLOTS - 1})`);
  }
  return VIRTIO_MMIO_BASE + index * VIRTIO_MMIO_SLOT_SIZE;
}

export interface RamRegion {
  guestPhysAddr: number;
  size: number;
}

/** Smallest guest RAM the layout accepts: the boot area below 1 MiB plus room for a kernel. */
export const MIN_MEMORY_BYTES = 2 * MiB;

/**
 * The guest RAM regions for `memoryBytes` of RAM: one region from 0 when it fits below the MMIO
 * gap, otherwise [0, MMIO_GAP_START) and the rest from 4 GiB. Sizes must be whole pages.
 */
export function ramLayout(memoryBytes: number): RamRegion[] {
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < MIN_MEMORY_BYTES || memoryBytes % PAGE_SIZE !== 0) {
    throw new RangeError(
      `guest memory size ${memoryBytes} is not usable: give a whole number of 4 KiB pages, at least ${MIN_MEMORY_BYTES / MiB} MiB`,
    );
  }
  if (memoryBytes <= MMIO_GAP_START) return [{ guestPhysAddr: 0, size: memoryBytes }];
  return [
    { guestPhysAddr: 0, size: MMIO_GAP_START },
    { guestPhysAddr: HIGH_RAM_START, size: memoryBytes - MMIO_GAP_START },
  ];
}

/** One past the last byte of RAM for `memoryBytes` of RAM: where DAX windows may start. */
export function firstAddressAboveRam(memoryBytes: number): number {
  const regions = ramLayout(memoryBytes);
  const last = regions[regions.length - 1] as RamRegion;
  return Math.max(last.guestPhysAddr + last.size, MMIO_GAP_END);
}

export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

export function alignDown(n: number, align: number): number {
  return Math.floor(n / align) * align;
}
