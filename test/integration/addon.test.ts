// The addon under KVM: a real-mode guest is enough, so these run natively even on kvm-pvm.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { EventFd } from '../../src/vmm/eventfd.js';
import { SyscallError } from '../../src/vmm/errors.js';
import { KVM_REGS_SIZE, KVM_RUN, KVM_SREGS_SIZE, KVM_CPUID_ENTRY2_SIZE, KVM_MSR_ENTRY_SIZE } from '../../src/vmm/kvm-structs.js';
import { Kvm, REQUIRED_CAPABILITIES } from '../../src/vmm/kvm.js';
import { HostMapping } from '../../src/vmm/mapping.js';
import { native } from '../../src/vmm/native.js';
import { MsrRefusedError } from '../../src/vmm/vcpu.js';
import { HopThread } from '../../src/vmm/vcpu-thread.js';
import { whereLabel } from '../helpers/where.js';
import { realModeGuest, type RealModeGuest } from '../helpers/realmode.js';
import type { HelperReply, HelperRequest } from './worker-helper.js';

const KVM_EXIT_IO = 2;
const KVM_EXIT_HLT = 5;
const KVM_EXIT_MMIO = 6;
const KVM_EXIT_INTR = 10;
const RAM = 0x80000;
const CODE = 0x2000;
const MMIO_BASE = 0x90000;

const test = suite(`addon [${whereLabel()}]`);

type Guest = RealModeGuest;

/** A VM with RAM at 0, `code` at CODE, and a vCPU in real mode about to run it. */
function guest(code: number[], opts: { irqchip?: boolean; ds?: number } = {}): Guest {
  return realModeGuest(code, { ram: RAM, codeAt: CODE, ...opts });
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

async function inWorker(req: HelperRequest, whileRunning?: () => void): Promise<HelperReply> {
  const w = new Worker(new URL('./worker-helper.js', import.meta.url));
  try {
    const reply = new Promise<HelperReply>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    w.postMessage(req);
    if (whileRunning) setTimeout(whileRunning, 100);
    return await reply;
  } finally {
    await w.terminate();
  }
}

test('struct layouts in TypeScript match the kernel headers the addon was built with', () => {
  const s = native().structSizes();
  assert.is(s.kvm_regs, KVM_REGS_SIZE);
  assert.is(s.kvm_sregs, KVM_SREGS_SIZE);
  assert.is(s.kvm_msr_entry, KVM_MSR_ENTRY_SIZE);
  assert.is(s.kvm_cpuid_entry2, KVM_CPUID_ENTRY2_SIZE);
  assert.is(s.kvm_ioeventfd, 64);
  assert.is(s.kvm_irqfd, 32);
});

test('Kvm: API 12, required capabilities, supported CPUID and MSR list', () => {
  const kvm = Kvm.open();
  try {
    assert.is(kvm.apiVersion(), 12);
    assert.equal(kvm.missingCapabilities(), []);
    for (const cap of REQUIRED_CAPABILITIES) assert.ok(kvm.checkExtension(cap) > 0, cap);
    assert.ok(kvm.vcpuMmapSize() >= 4096);
    const cpuid = kvm.supportedCpuid();
    assert.ok(cpuid.some((e) => e.function === 0), 'leaf 0 offered');
    assert.ok(kvm.msrIndexList().length > 0);
  } finally {
    kvm.dispose();
  }
});

test('real-mode guest: PIO out/in and MMIO write/read reach user space with the right data', () => {
  // mov dx,0x3f8; mov al,'A'; out dx,al; in al,dx; mov [0],al; mov al,[1]; mov dx,0x3f9; out dx,al; hlt
  const g = guest([0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xec, 0xa2, 0x00, 0x00, 0xa0, 0x01, 0x00, 0xba, 0xf9, 0x03, 0xee, 0xf4], { ds: MMIO_BASE });
  try {
    const run = g.vcpu.run;
    const ioData = (): number => Number(run.getBigUint64(KVM_RUN.ioDataOffset, true));
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO);
    assert.is(run.getUint8(KVM_RUN.ioDirection), 1, 'out');
    assert.is(run.getUint16(KVM_RUN.ioPort, true), 0x3f8);
    assert.is(run.getUint8(KVM_RUN.ioSize), 1);
    assert.is(run.getUint8(ioData()), 0x41);
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO);
    assert.is(run.getUint8(KVM_RUN.ioDirection), 0, 'in');
    run.setUint8(ioData(), 0x5a); // the value IN returns
    assert.is(g.vcpu.runOnce(), KVM_EXIT_MMIO);
    assert.is(run.getBigUint64(KVM_RUN.mmioPhysAddr, true), BigInt(MMIO_BASE));
    assert.is(run.getUint8(KVM_RUN.mmioIsWrite), 1);
    assert.is(run.getUint8(KVM_RUN.mmioData), 0x5a, 'MMIO write carries what IN returned');
    assert.is(g.vcpu.runOnce(), KVM_EXIT_MMIO);
    assert.is(run.getUint8(KVM_RUN.mmioIsWrite), 0);
    assert.is(run.getBigUint64(KVM_RUN.mmioPhysAddr, true), BigInt(MMIO_BASE + 1));
    run.setUint8(KVM_RUN.mmioData, 0x77); // the value the MMIO read returns
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO);
    assert.is(run.getUint16(KVM_RUN.ioPort, true), 0x3f9);
    assert.is(run.getUint8(ioData()), 0x77, 'OUT carries what the MMIO read returned');
    assert.is(g.vcpu.runOnce(), KVM_EXIT_HLT);
    assert.is(g.vcpu.getRegs().rip, BigInt(CODE + 18), 'stopped after hlt');
  } finally {
    g.dispose();
  }
});

test('guest memory: the guest sees what the host wrote and the host sees what the guest wrote', () => {
  // mov al,[0x500]; inc al; mov [0x501],al; hlt
  const g = guest([0xa0, 0x00, 0x05, 0xfe, 0xc0, 0xa2, 0x01, 0x05, 0xf4]);
  try {
    g.mem.bytes()[0x500] = 41;
    assert.is(g.vcpu.runOnce(), KVM_EXIT_HLT);
    assert.is(g.mem.bytes()[0x501], 42);
  } finally {
    g.dispose();
  }
});

test('ioeventfd: PIO with datamatch and MMIO without; matched writes never reach user space', () => {
  // mov dx,0x13; mov al,0x42; out dx,al; mov al,0x41; out dx,al; mov [0],al; mov [0],al; mov dx,0x11; out dx,al; hlt
  const g = guest([0xba, 0x13, 0x00, 0xb0, 0x42, 0xee, 0xb0, 0x41, 0xee, 0xa2, 0x00, 0x00, 0xa2, 0x00, 0x00, 0xba, 0x11, 0x00, 0xee, 0xf4], {
    ds: MMIO_BASE,
  });
  const pio = new EventFd();
  const mmio = new EventFd();
  try {
    g.vm.registerIoeventfd({ space: 'pio', address: 0x13n, length: 1, datamatch: 0x42n }, pio);
    g.vm.registerIoeventfd({ space: 'mmio', address: BigInt(MMIO_BASE), length: 1 }, mmio);
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO, 'the unmatched write (0x41) exits');
    assert.is(g.vcpu.run.getUint8(Number(g.vcpu.run.getBigUint64(KVM_RUN.ioDataOffset, true))), 0x41);
    assert.is(pio.drain(), 1n, 'the matched write (0x42) signalled the eventfd');
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO, 'both MMIO writes went to the eventfd; next exit is the OUT to 0x11');
    assert.is(g.vcpu.run.getUint16(KVM_RUN.ioPort, true), 0x11);
    assert.is(mmio.drain(), 2n);
    assert.is(pio.drain(), 0n);
    g.vm.unregisterIoeventfd({ space: 'mmio', address: BigInt(MMIO_BASE), length: 1 }, mmio);
  } finally {
    pio.dispose();
    mmio.dispose();
    g.dispose();
  }
});

test('eventfd watcher: the JS callback runs on the event loop when the eventfd is signalled', async () => {
  const efd = new EventFd();
  try {
    const got = new Promise<number>((resolve) => efd.watch(resolve));
    efd.signal(3);
    assert.is(await got, 3);
    assert.is(efd.drain(), 0n, 'the watcher drained the counter before calling back');
  } finally {
    efd.dispose();
  }
});

/** irqfd injection runs from a kernel work item: poll for it instead of racing it. The deadline
 * only catches a hang, so it is generous (the tests also run in an emulated machine). */
async function eventually(cond: () => boolean, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

test('irqfd and KVM_IRQ_LINE raise lines of the in-kernel PIC', async () => {
  const g = guest([0xf4], { irqchip: true });
  const efd = new EventFd();
  try {
    assert.is(g.vm.picIrr('pic-master') & (1 << 5), 0);
    g.vm.registerIrqfd(efd, 5);
    efd.signal();
    assert.ok(await eventually(() => (g.vm.picIrr('pic-master') & (1 << 5)) !== 0), 'irqfd on GSI 5 set IRR bit 5');
    g.vm.setIrqLine(3, true);
    assert.is(g.vm.picIrr('pic-master') & (1 << 3), 1 << 3, 'KVM_IRQ_LINE 3 set IRR bit 3');
    g.vm.setIrqLine(3, false);
    g.vm.unregisterIrqfd(efd, 5);
  } finally {
    efd.dispose();
    g.dispose();
  }
});

test('errors carry errno and the ioctl name', () => {
  const g = guest([0xf4]);
  try {
    assert.throws(
      () => g.vm.setMemoryRegion({ slot: 1, guestPhysAddr: 0x123n, mapping: g.mem, size: 4096 }),
      (e: unknown) => e instanceof SyscallError && e.syscall === 'KVM_SET_USER_MEMORY_REGION' && e.code === 'EINVAL' && e.errno === 22,
    );
    assert.throws(
      () => g.vcpu.setMsrs([{ index: 0x174, data: 0n }, { index: 0xdeadbeef, data: 1n }]),
      (e: unknown) => e instanceof MsrRefusedError && e.index === 0xdeadbeef && /0xdeadbeef/.test(e.message),
    );
    assert.throws(() => native().ioctl(g.vm.fd, 'KVM_NOT_AN_IOCTL'), /not in the addon's whitelist/);
    assert.throws(() => native().ioctl(g.vm.fd, 'KVM_IRQ_LINE', new Uint8Array(3)), /needs a 8-byte buffer/);
    assert.throws(() => HostMapping.allocate(1000), /multiple of 4096/);
    const fd = g.vm.fd;
    g.vm.dispose();
    assert.throws(
      () => native().ioctl(fd, 'KVM_CREATE_IRQCHIP'),
      (e: unknown) => (e as { code?: string }).code === 'EBADF' && /KVM_CREATE_IRQCHIP/.test(String(e)),
    );
  } finally {
    g.dispose();
  }
});

test('a vCPU run from a worker_thread stops when kicked from the main thread', async () => {
  const g = guest([0xeb, 0xfe]); // jmp $  (never exits on its own)
  try {
    const reply = await inWorker({ op: 'run', vcpuId: g.vcpu.id }, () => g.vcpu.kick());
    assert.equal(reply, { ok: true, value: KVM_EXIT_INTR });
    assert.is(g.vcpu.runOnce(), KVM_EXIT_INTR, 'stays kicked until clearKick()');
    g.vcpu.clearKick();
  } finally {
    g.dispose();
  }
});

test('a native vCPU thread (thread hop) stops cleanly while the guest spins', async () => {
  const g = guest([0xeb, 0xfe]);
  try {
    let calls = 0;
    const t = new HopThread(g.vcpu, () => {
      calls++;
      return true;
    });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    t.stop();
    // A guard against a hang, not a measurement: an emulated test machine is many times slower.
    assert.ok(Date.now() - t0 < 30_000, `stop() returned (after ${Date.now() - t0} ms)`);
    assert.is(calls, 0, 'no exit reached JS');
  } finally {
    g.dispose();
  }
});

test('a guest mapping attached in a worker shares the same memory', async () => {
  const mem = HostMapping.allocate(4096);
  try {
    const reply = await inWorker({ op: 'poke', mappingId: mem.id, offset: 100, value: 0xab });
    assert.ok(reply.ok);
    assert.is(mem.bytes()[100], 0xab);
  } finally {
    mem.dispose();
  }
});

test('dispose releases every fd (KVM, VM, vCPU, eventfds)', () => {
  const before = openFds();
  const g = guest([0xf4], { irqchip: true });
  const efd = new EventFd();
  g.vm.registerIrqfd(efd, 4);
  assert.ok(openFds() >= before + 4);
  efd.dispose();
  g.dispose();
  assert.is(openFds(), before);
});

test.run();
