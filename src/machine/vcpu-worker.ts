// Entry point of a vCPU worker_thread (the chosen exit-path design): attach to the vCPU the main
// thread created and set up, build this thread's buses over the shared device state, and run
// the vCPU until the guest or the VMM stops it. Exits are handled here, on this thread.
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Bus } from '../vmm/bus.js';
import { EventFd } from '../vmm/eventfd.js';
import { GuestMemory } from '../vmm/guest-memory.js';
import { HostMapping } from '../vmm/mapping.js';
import { MmioTransport } from '../devices/virtio/mmio.js';
import { VIRTIO_MMIO_SIZE, eventFdDoorbell } from './virtio-host.js';
import { Vcpu } from '../vmm/vcpu.js';
import { requestStop, runVcpuLoop } from '../vmm/vcpu-loop.js';
import { legacyPioBus } from './legacy-buses.js';
import type { VcpuWorkerInit, VcpuWorkerMessage } from './protocol.js';
import { writeAll } from './console-output.js';

const port = parentPort;
if (!port) throw new Error('vcpu-worker.ts must run in a worker_thread');
const init = workerData as VcpuWorkerInit;
const post = (m: VcpuWorkerMessage): void => port.postMessage(m);

try {
  // Lowering one's own priority is always permitted.
  if (init.nice !== undefined) setPriority(0, init.nice);
  const control = new Int32Array(init.control);
  const vcpu = Vcpu.attach(init.vcpuId);
  const serialIrq = EventFd.borrow(init.serialIrqFd);
  const pio = legacyPioBus(
    { serial: init.serialState, i8042: init.i8042State, acpiPm: init.acpiPmState },
    {
      console: { write: (b) => writeAll(init.consoleFd, b) },
      serialIrq: { trigger: () => serialIrq.signal() },
      reset: { reset: () => requestStop(control, 2) },
      bootTimer: { bootComplete: () => post({ type: 'boot-complete', index: init.index, atEpochMs: performance.timeOrigin + performance.now() }) },
      acpiPm: { powerOff: () => requestStop(control, 3), reset: () => requestStop(control, 2) },
    },
  );
  const mappings = init.memory.map((m) => ({ guestPhysAddr: m.guestPhysAddr, mapping: HostMapping.attach(m.mappingId) }));
  const memory = new GuestMemory(mappings.map((m) => ({ guestPhysAddr: m.guestPhysAddr, bytes: m.mapping.bytes() })));
  const mmio = new Bus('mmio');
  /** Register pages (RegisterPage): mapped read-only into the guest, written here after each register write. */
  const pages: HostMapping[] = [];
  for (const d of init.virtio) {
    const status = EventFd.borrow(d.statusFd);
    const queues = d.queueFds.map((fd) => EventFd.borrow(fd));
    const irq = EventFd.borrow(d.irqFd);
    const events = { statusChanged: () => status.signal(), queueNotify: (q: number) => queues[q]?.signal() };
    const ack = d.ackFd === undefined ? undefined : eventFdDoorbell(EventFd.borrow(d.ackFd));
    const page = d.pageMappingId === undefined ? undefined : HostMapping.attach(d.pageMappingId);
    if (page) pages.push(page);
    // The driver's reset write waits for the device on the main thread to stop (ResetBarrier),
    // or for the VMM to stop this vCPU.
    const resetBarrier = { stopped: () => Atomics.load(control, 0) !== 0 };
    mmio.insert(d.name, d.base, VIRTIO_MMIO_SIZE, new MmioTransport(d.state, events, memory, () => irq.signal(), { ackDoorbell: ack, page: page && { bytes: page.bytes() }, resetBarrier }));
  }
  post({ type: 'running', index: init.index, atEpochMs: performance.timeOrigin + performance.now() });
  const onReport = (line: string): void => post({ type: 'report', index: init.index, line });
  const stop = runVcpuLoop({ vcpu, pio, mmio, control, onReport, memory });
  post({ type: 'stopped', index: init.index, stop, pio: pio.stats(), mmio: mmio.stats() });
  vcpu.dispose();
  for (const m of mappings) m.mapping.dispose();
  for (const p of pages) p.dispose();
} catch (e) {
  post({ type: 'failed', index: init.index, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
}
