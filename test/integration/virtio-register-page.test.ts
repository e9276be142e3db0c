// A virtio-mmio transport in a real VM (VirtioMmioHost) with its register page: a real-mode
// guest reads registers from KVM's read-only memory slot without exits, its register writes
// still exit (and the page follows them), InterruptACK = 1 lands in the ACK doorbell without an
// exit, and a config change takes the page away while it happens. Runs on any /dev/kvm that
// runs a real-mode guest (kvm-pvm included) with KVM_CAP_READONLY_MEM.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KVM_RUN } from '../../src/vmm/kvm-structs.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { HostMapping } from '../../src/vmm/mapping.js';
import { EventFd } from '../../src/vmm/eventfd.js';
import { MmioTransport } from '../../src/devices/virtio/mmio.js';
import { INT_USED_BUFFER, REG, VIRTIO_MMIO_MAGIC } from '../../src/devices/virtio/mmio-regs.js';
import type { VirtioDevice } from '../../src/devices/virtio/device.js';
import { DisposalStack } from '../../src/machine/disposal-stack.js';
import { VirtioMmioHost, eventFdDoorbell } from '../../src/machine/virtio-host.js';
import { realModeGuest } from '../helpers/realmode.js';
import { whereLabel } from '../helpers/where.js';

const test = suite(`virtio-mmio register page [${whereLabel()}]`);

const KVM_EXIT_IO = 2;
const KVM_EXIT_MMIO = 6;
const BASE = 0x90000; // below 1 MiB: real mode reaches it through DS = 0x9000
const PAGE_SLOT = 1;

/** A device with two queues that does nothing: the transport is under test. */
const idleDevice: VirtioDevice = {
  deviceId: 2,
  features: 1n << 29n,
  queueMaxSizes: [256, 64],
  config: Uint8Array.of(0x11, 0x22, 0x33, 0x44),
  activate: () => undefined,
  notify: () => undefined,
  reset: () => undefined,
  dispose: () => Promise.resolve(),
  metrics: () => ({}),
};

test('register reads come from the page without exits; writes exit and the page follows; ACK 1 takes no exit', async () => {
  // mov eax,[0x000]; mov dx,0x11; out dx,eax           magic, read from the page
  // mov dword [0x030],1                                 QueueSel = 1: an MMIO exit
  // mov eax,[0x034]; mov dx,0x12; out dx,eax           QueueNumMax of queue 1, from the page
  // mov dword [0x064],1                                 InterruptACK = 1: the doorbell, no exit
  // mov eax,[0x100]; mov dx,0x13; out dx,eax           config space, from the page
  // mov dx,0x14; out dx,al                              the end (with the in-kernel LAPIC, HLT would not exit)
  const code = [
    0x66, 0xa1, 0x00, 0x00, 0xba, 0x11, 0x00, 0x66, 0xef,
    0x66, 0xc7, 0x06, 0x30, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x66, 0xa1, 0x34, 0x00, 0xba, 0x12, 0x00, 0x66, 0xef,
    0x66, 0xc7, 0x06, 0x64, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x66, 0xa1, 0x00, 0x01, 0xba, 0x13, 0x00, 0x66, 0xef,
    0xba, 0x14, 0x00, 0xee,
  ];
  const g = realModeGuest(code, { ram: 0x80000, codeAt: 0x1000, ds: BASE, irqchip: true });
  const memory = new GuestMemory([{ guestPhysAddr: 0, bytes: g.mem.bytes() }]);
  const stack = new DisposalStack();
  const host = new VirtioMmioHost('vda', idleDevice, { base: BASE, gsi: 5, pageSlot: PAGE_SLOT }, g.vm, memory, stack);
  const w = host.worker;
  assert.ok(w.pageMappingId !== undefined, 'the host made a register page');
  const page = HostMapping.attach(w.pageMappingId as number);
  const ackFd = EventFd.borrow(w.ackFd as number);
  // The vCPU side, as src/machine/vcpu-worker.ts builds it.
  const transport = new MmioTransport(w.state, { statusChanged: () => undefined, queueNotify: () => undefined }, memory, () => undefined, {
    ackDoorbell: eventFdDoorbell(ackFd),
    page: { bytes: page.bytes() },
  });
  const run = g.vcpu.run;
  const outValue = (): number => run.getUint32(Number(run.getBigUint64(KVM_RUN.ioDataOffset, true)), true);
  const outPort = (): number => run.getUint16(KVM_RUN.ioPort, true);
  try {
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO, 'the first exit is the OUT: the magic read did not exit');
    assert.is([outPort(), outValue()].join(), [0x11, VIRTIO_MMIO_MAGIC].join());

    assert.is(g.vcpu.runOnce(), KVM_EXIT_MMIO, 'QueueSel write exits');
    const addr = Number(run.getBigUint64(KVM_RUN.mmioPhysAddr, true));
    const len = run.getUint32(KVM_RUN.mmioLen, true);
    assert.is(addr, BASE + REG.queueSel);
    assert.is(run.getUint8(KVM_RUN.mmioIsWrite), 1);
    transport.write(addr - BASE, new Uint8Array(run.buffer, run.byteOffset + KVM_RUN.mmioData, len));

    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO, 'QueueNumMax read from the page, after the write re-rendered it');
    assert.is([outPort(), outValue()].join(), [0x12, 64].join());

    // InterruptACK = 1 went to the doorbell: the next exit is already the config OUT.
    host.state.raise(INT_USED_BUFFER); // (before the guest's ACK runs: see below)
    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO, 'the ACK write took no exit');
    assert.is([outPort(), outValue()].join(), [0x13, 0x44332211].join(), 'config space from the page');
    assert.is(new DataView(page.bytes().buffer).getUint32(REG.interruptStatus, true), INT_USED_BUFFER, 'not applied yet');
    host.state.raise(0); // a raise applies the ACK the doorbell holds
    assert.is(new DataView(page.bytes().buffer).getUint32(REG.interruptStatus, true), 0);

    assert.is(g.vcpu.runOnce(), KVM_EXIT_IO);
    assert.is(outPort(), 0x14);
  } finally {
    page.dispose();
    await stack.dispose();
    g.dispose();
  }
});

test('a config change removes the page while it happens: reads then exit to the transport', async () => {
  // mov eax,[0x100]; mov dx,0x11; out dx,eax
  const code = [0x66, 0xa1, 0x00, 0x01, 0xba, 0x11, 0x00, 0x66, 0xef];
  const g = realModeGuest(code, { ram: 0x80000, codeAt: 0x1000, ds: BASE, irqchip: true });
  const memory = new GuestMemory([{ guestPhysAddr: 0, bytes: g.mem.bytes() }]);
  const stack = new DisposalStack();
  const host = new VirtioMmioHost('vda', idleDevice, { base: BASE, gsi: 5, pageSlot: PAGE_SLOT }, g.vm, memory, stack);
  const run = g.vcpu.run;
  try {
    let exitDuringChange = -1;
    host.state.configChanged((c) => {
      // While the bytes change, the guest's read exits (the slot is gone) instead of seeing them half-written.
      exitDuringChange = g.vcpu.runOnce();
      c[0] = 0x99;
    });
    assert.is(exitDuringChange, KVM_EXIT_MMIO);
    assert.is(Number(run.getBigUint64(KVM_RUN.mmioPhysAddr, true)), BASE + REG.config);
    assert.is(run.getUint8(KVM_RUN.mmioIsWrite), 0);
  } finally {
    await stack.dispose();
    g.dispose();
  }
});

test.run();
