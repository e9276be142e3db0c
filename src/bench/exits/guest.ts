// The exit benchmark's guest: a few real-mode x86 loops in one small VM, shared by every
// variant so they all measure the same exits. Real mode keeps it runnable where /dev/kvm cannot
// boot Linux (kvm-pvm) and cheap inside the nested test bed.
import { EventFd } from '../../vmm/eventfd.js';
import { Kvm } from '../../vmm/kvm.js';
import { HostMapping } from '../../vmm/mapping.js';
import { Vcpu } from '../../vmm/vcpu.js';
import { Vm } from '../../vmm/vm.js';
import type { ExitKind } from './model.js';

/** Guest RAM is [0, RAM_SIZE); the MMIO addresses below lie above it, so writes there exit. */
export const RAM_SIZE = 0x80000;
export const CODE_BASE = 0x1000;
/** Port the looping programs write to (exits to user space). */
export const BENCH_PORT = 0x10;
/** Port a counted program writes once when it has finished. */
export const DONE_PORT = 0x11;
/** Port and MMIO address registered as ioeventfds (no exit to user space). */
export const IOEVENTFD_PORT = 0x12;
export const BENCH_MMIO_ADDR = 0x90000;
export const IOEVENTFD_MMIO_ADDR = 0xa0000;

const lo = (v: number): number => v & 0xff;
const hi = (v: number): number => (v >> 8) & 0xff;

interface Program {
  offset: number;
  bytes: number[];
  /** Real-mode DS base (the MMIO programs write to DS:0). */
  dataSegment?: number;
  /** Port in DX at entry. */
  dx?: number;
  /** Counted loops take their count in ESI and report on DONE_PORT. */
  counted: boolean;
}

// Hand-assembled 16-bit code; each comment is the instruction the bytes encode.
export const PROGRAMS: Record<ExitKind, Program> = {
  // 1: out dx, al ; jmp 1b
  pio: { offset: 0x000, bytes: [0xee, 0xeb, 0xfd], dx: BENCH_PORT, counted: false },
  // 1: mov [0], al ; jmp 1b            (DS base = BENCH_MMIO_ADDR)
  mmio: { offset: 0x010, bytes: [0xa2, 0x00, 0x00, 0xeb, 0xfb], dataSegment: BENCH_MMIO_ADDR, counted: false },
  // 1: xor eax, eax ; cpuid ; dec esi ; jnz 1b ; mov dx, DONE_PORT ; out dx, al ; hlt
  cpuid: {
    offset: 0x020,
    bytes: [0x66, 0x31, 0xc0, 0x0f, 0xa2, 0x66, 0x4e, 0x75, 0xf7, 0xba, lo(DONE_PORT), hi(DONE_PORT), 0xee, 0xf4],
    counted: true,
  },
  // 1: out dx, al ; dec esi ; jnz 1b ; mov dx, DONE_PORT ; out dx, al ; hlt      (DX = IOEVENTFD_PORT)
  'ioeventfd-pio': {
    offset: 0x040,
    bytes: [0xee, 0x66, 0x4e, 0x75, 0xfb, 0xba, lo(DONE_PORT), hi(DONE_PORT), 0xee, 0xf4],
    dx: IOEVENTFD_PORT,
    counted: true,
  },
  // 1: mov [0], al ; dec esi ; jnz 1b ; mov dx, DONE_PORT ; out dx, al ; hlt  (DS base = IOEVENTFD_MMIO_ADDR)
  'ioeventfd-mmio': {
    offset: 0x060,
    bytes: [0xa2, 0x00, 0x00, 0x66, 0x4e, 0x75, 0xf9, 0xba, lo(DONE_PORT), hi(DONE_PORT), 0xee, 0xf4],
    dataSegment: IOEVENTFD_MMIO_ADDR,
    counted: true,
  },
};

/** The benchmark VM: one vCPU, RAM with the programs, ioeventfds on the "no exit" addresses. */
export class BenchGuest {
  readonly kvm: Kvm;
  readonly vm: Vm;
  readonly memory: HostMapping;
  readonly vcpu: Vcpu;
  readonly ioeventfdPio = new EventFd();
  readonly ioeventfdMmio = new EventFd();

  constructor() {
    this.kvm = Kvm.open();
    this.vm = this.kvm.createVm();
    this.memory = HostMapping.allocate(RAM_SIZE);
    const bytes = this.memory.bytes();
    for (const p of Object.values(PROGRAMS)) bytes.set(p.bytes, CODE_BASE + p.offset);
    this.vm.setMemoryRegion({ slot: 0, guestPhysAddr: 0n, mapping: this.memory });
    this.vm.registerIoeventfd({ space: 'pio', address: BigInt(IOEVENTFD_PORT), length: 1 }, this.ioeventfdPio);
    this.vm.registerIoeventfd({ space: 'mmio', address: BigInt(IOEVENTFD_MMIO_ADDR), length: 1 }, this.ioeventfdMmio);
    this.vcpu = this.vm.createVcpu(0);
  }

  /** Points the vCPU at a program: real mode, CS = 0, DS as the program needs, ESI = count. */
  enter(kind: ExitKind, count = 0): void {
    const p = PROGRAMS[kind];
    const sregs = this.vcpu.getSregs();
    sregs.cs.base = 0n;
    sregs.cs.selector = 0;
    const ds = p.dataSegment ?? 0;
    sregs.ds.base = BigInt(ds);
    sregs.ds.selector = ds >> 4;
    this.vcpu.setSregs(sregs);
    const regs = this.vcpu.getRegs();
    regs.rip = BigInt(CODE_BASE + p.offset);
    regs.rflags = 2n;
    regs.rax = 0x42n;
    regs.rdx = BigInt(p.dx ?? 0);
    regs.rsi = BigInt(count);
    this.vcpu.setRegs(regs);
  }

  dispose(): void {
    this.vcpu.dispose();
    this.ioeventfdPio.dispose();
    this.ioeventfdMmio.dispose();
    this.vm.dispose();
    this.memory.dispose();
    this.kvm.dispose();
  }
}
