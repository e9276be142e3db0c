// Typed errors of the boot layer. One class, BootError, whose `reason` says which check failed and
// whose message says with which value and what to do, so that callers can branch on the reason and
// users can act on the message. Every function in src/boot validates its input before it writes
// anything to guest memory: a BootError means guest memory was left as it was.

export type BootErrorReason =
  /** The kernel file is neither a bzImage nor an ELF vmlinux. */
  | 'unknown-kernel-format'
  /** parseBzImage on a file without the 'HdrS' magic at 0x202. */
  | 'not-a-bzimage'
  /** The bzImage's boot protocol is older than 2.12 (no 64-bit entry described by xloadflags). */
  | 'protocol-too-old'
  /** loadflags lacks LOADED_HIGH: a zImage that wants to be loaded at 0x10000. */
  | 'not-loaded-high'
  /** xloadflags lacks XLF_KERNEL_64: the kernel has no 64-bit entry point at +0x200. */
  | 'no-64bit-entry'
  /** The file is shorter than its own headers say. */
  | 'truncated'
  /** An ELF header field is not what an x86_64 vmlinux has. */
  | 'bad-elf-header'
  /** An ELF program header is inconsistent (offsets, sizes, addresses). */
  | 'bad-elf-segment'
  /** The kernel (with the memory it needs to decompress and run) does not fit in guest RAM. */
  | 'kernel-does-not-fit'
  /** The initrd does not fit between the kernel and the highest address it may occupy. */
  | 'initrd-does-not-fit'
  /** The initrd is empty. */
  | 'bad-initrd'
  /** The command line is longer than the kernel or the cmdline area accepts, or holds a NUL. */
  | 'bad-cmdline'
  /** More vCPUs than the MP table / APIC id space can describe (or fewer than one). */
  | 'bad-vcpu-count'
  /** The ACPI tables (DSDT devices, MADT entries) do not fit in the BIOS area 0xe0000..0xfffff. */
  | 'acpi-does-not-fit'
  /** Guest memory does not have the shape the x86_64 layout needs (RAM at 0, boot area). */
  | 'bad-memory-layout'
  /** KVM_GET_SUPPORTED_CPUID lacked a leaf the normalisation needs. */
  | 'cpuid';

export class BootError extends Error {
  constructor(
    readonly reason: BootErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'BootError';
  }
}

export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** "12.5 MiB (13107200 bytes)" for messages about sizes. */
export function bytesText(n: number): string {
  const mib = n / (1024 * 1024);
  const pretty = mib >= 1 ? `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
  return `${pretty} (${n} bytes)`;
}
