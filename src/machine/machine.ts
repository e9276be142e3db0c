// A VM from build to shutdown: KVM objects, guest memory, the boot layout, vCPUs (each run by a
// worker_thread that handles its own exits), legacy devices, the console, and a clean stop on
// guest reset, on a vCPU failure, or on SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { BOOT_FPU, Cmdline, IRQ_BASE, IRQ_MAX, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR, MiB, ramLayout, setLapicLints, setupBoot, virtioMmioSlotAddr, type BootSetup } from '../boot/index.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import { VirtioMmioHost, VIRTIO_MMIO_SIZE } from './virtio-host.js';
import { Serial8250, SERIAL_IRQ_COM1, SERIAL_PORT_COM1, SERIAL_PORT_LENGTH } from '../devices/legacy/serial.js';
import { I8042 } from '../devices/legacy/i8042.js';
import { AcpiPm } from '../devices/legacy/acpi-pm.js';
import type { BusStats } from '../vmm/bus.js';
import { EventFd } from '../vmm/eventfd.js';
import { GuestMemory } from '../vmm/guest-memory.js';
import { encodeFpu } from '../vmm/kvm-structs.js';
import { Kvm } from '../vmm/kvm.js';
import { HostMapping } from '../vmm/mapping.js';
import type { Vcpu } from '../vmm/vcpu.js';
import { CONTROL_CELLS, requestReport, requestStop, type VcpuStop, type VcpuStopKind } from '../vmm/vcpu-loop.js';
import type { Vm } from '../vmm/vm.js';
import { DEFAULT_EVENT_LOOP_BOOST, raiseEventLoop, type EventLoopPriority } from './thread-priority.js';
import { ConfigError, REGISTER_PAGE_SLOT_BASE, validateConfig, type MachineConfig } from './config.js';
import type { VcpuWorkerInit, VcpuWorkerMessage } from './protocol.js';

export type MachineEndReason = VcpuStopKind | 'signal' | 'worker-failed';

export interface MachineExit {
  /** Exit status for the process: 0 when the guest reset or powered off, 1 on a failure, 128+n on signal n. */
  code: number;
  reason: MachineEndReason;
  detail: string;
  /** ms from process start to the guest's boot-timer write, if it came. */
  bootCompleteMs?: number;
  /** ms from process start to Machine.build's end (guest memory, kernel, devices, vCPUs set up). */
  builtMs: number;
  /** ms from process start to the first vCPU thread entering KVM_RUN (worker start-up included). */
  firstRunMs?: number;
  vcpus: { index: number; exits: number; stop?: VcpuStop; error?: string }[];
  pio: BusStats[];
  mmio: BusStats[];
  /** The event loop's and the vCPU threads' nice values while the VM ran (thread-priority.ts). */
  priority?: EventLoopPriority;
}

const ORDERLY: ReadonlySet<MachineEndReason> = new Set(['reset', 'poweroff', 'triple-fault']);

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    throw new ConfigError(`cannot read the ${what} ${path}: ${code || (e as Error).message}`);
  }
}

export class Machine {
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_CELLS));
  private readonly serialState = Serial8250.createState();
  private readonly i8042State = I8042.createState();
  private readonly acpiPmState = AcpiPm.createState();
  private readonly serialIrq = new EventFd();
  private readonly workers: Worker[] = [];
  private endReason: { reason: MachineEndReason; detail: string } | undefined;
  /** What console input waits in tsvmm for room in the UART's FIFO (attachConsole), for reports. */
  private consoleBacklog: () => string = () => 'no console input attached';
  /** See MachineExit.builtMs. */
  private readonly builtMs = performance.now();

  private constructor(
    readonly config: MachineConfig,
    private readonly kvm: Kvm,
    private readonly vm: Vm,
    private readonly mappings: HostMapping[],
    readonly memory: GuestMemory,
    readonly boot: BootSetup,
    private readonly vcpus: Vcpu[],
    private readonly virtio: VirtioMmioHost[],
  ) {
    vm.registerIrqfd(this.serialIrq, SERIAL_IRQ_COM1);
  }

  /**
   * Validates the config, reads the kernel and initrd, and builds the VM ready to run, with the
   * given virtio devices on virtio-mmio slots 0, 1, ... (GSI 5, 6, ...), announced on the kernel
   * command line before its `--` (src/boot/cmdline.ts). The machine owns the devices from here
   * on (dispose() releases them).
   */
  static build(config: MachineConfig, devices: readonly { name: string; device: VirtioDevice }[] = []): Machine {
    validateConfig(config);
    const cmdline = Cmdline.parse(config.cmdline);
    if (devices.length > IRQ_MAX - IRQ_BASE + 1) throw new ConfigError(`${devices.length} virtio devices: at most ${IRQ_MAX - IRQ_BASE + 1} (one interrupt line each)`);
    const kernel = readInput(config.kernelPath, 'kernel');
    const initrd = config.initrdPath === undefined ? undefined : readInput(config.initrdPath, 'initrd');
    const regions = ramLayout(config.memoryMiB * MiB);
    const kvm = Kvm.open();
    const owned: { dispose(): void }[] = [kvm];
    try {
      kvm.requireCapabilities();
      const vm = kvm.createVm();
      owned.push(vm);
      vm.setTssAddress(KVM_TSS_ADDR);
      vm.setIdentityMapAddress(BigInt(KVM_IDENTITY_MAP_ADDR));
      vm.createIrqchip();
      vm.createPit2();
      const mappings = regions.map((r) => HostMapping.allocate(r.size));
      owned.push(...mappings);
      mappings.forEach((mapping, slot) => vm.setMemoryRegion({ slot, guestPhysAddr: BigInt((regions[slot] as { guestPhysAddr: number }).guestPhysAddr), mapping }));
      const memory = new GuestMemory(regions.map((r, i) => ({ guestPhysAddr: r.guestPhysAddr, bytes: (mappings[i] as HostMapping).bytes() })));
      const pages = (config.mmioRegisterPages ?? true) && kvm.checkExtension('KVM_CAP_READONLY_MEM') > 0;
      const virtio = devices.map(
        (d, i) => new VirtioMmioHost(d.name, d.device, virtioMmioSlotAddr(i), IRQ_BASE + i, vm, memory, {
          pageSlot: pages ? REGISTER_PAGE_SLOT_BASE + i : undefined,
          ackDoorbell: config.mmioAckDoorbell ?? true,
        }),
      );
      owned.push(...virtio.map((h) => ({ dispose: () => void h.dispose() })));
      // Each announcement describes hardware the guest has, so it is added whatever the user wrote.
      for (const h of virtio) cmdline.add(h.cmdlineParam.name, h.cmdlineParam.value);
      // A kernel that uses ACPI learns the UART's and each transport's interrupt from the DSDT.
      const acpiDevices = {
        serial: [{ port: SERIAL_PORT_COM1, length: SERIAL_PORT_LENGTH, gsi: SERIAL_IRQ_COM1 }],
        virtioMmio: virtio.map((h) => ({ base: h.base, size: VIRTIO_MMIO_SIZE, gsi: h.gsi })),
      };
      const boot = setupBoot(memory, { kernel, ...(initrd ? { initrd } : {}), cmdline, vcpus: config.vcpus, acpiDevices });
      const supported = kvm.supportedCpuid();
      const msrs = boot.msrs(kvm.msrIndexList()).entries;
      const vcpus: Vcpu[] = [];
      for (let i = 0; i < config.vcpus; i++) {
        const vcpu = vm.createVcpu(i);
        vcpus.push(vcpu);
        owned.push(vcpu);
        vcpu.setCpuid(boot.cpuid(supported, i));
        vcpu.setMsrs(msrs);
        vcpu.setRaw('FPU', encodeFpu(BOOT_FPU));
        vcpu.setRaw('LAPIC', setLapicLints(vcpu.getRaw('LAPIC')));
        if (i === 0) {
          vcpu.setRegs(boot.regs());
          vcpu.setSregs(boot.sregs(vcpu.getSregs()));
        }
      }
      return new Machine(config, kvm, vm, mappings, memory, boot, vcpus, virtio);
    } catch (e) {
      for (const o of owned.reverse()) o.dispose();
      throw e;
    }
  }

  /** Asks every vCPU to stop (first reason wins) and kicks them out of KVM_RUN. */
  stop(reason: MachineEndReason, detail: string): void {
    this.endReason ??= { reason, detail };
    requestStop(this.control, 1);
    for (const v of this.vcpus) v.kick();
  }

  /**
   * Reports on stderr where the VM is (SIGUSR2): the UART's and each virtio device's state now,
   * then each vCPU's registers as its thread answers (it is kicked out of KVM_RUN and goes on).
   * A vCPU that does not answer is busy outside KVM_RUN, which says something too.
   */
  report(): void {
    const lines = [this.describeClock(), `serial0: ${Serial8250.describeState(this.serialState)}; ${this.consoleBacklog()}`, ...this.virtio.flatMap((h) => h.describe())];
    process.stderr.write(lines.map((l) => `[tsvmm] report: ${l}\n`).join(''));
    requestReport(this.control);
    for (const v of this.vcpus) v.kick();
  }

  /** The VM's age and its kvm-clock as the host kernel sees it (KVM_GET_CLOCK): they should agree. */
  private describeClock(): string {
    const age = ((performance.now() - this.builtMs) / 1000).toFixed(3);
    try {
      const c = this.vm.getClock();
      return `clock: VM built ${age} s ago; KVM_GET_CLOCK ${(Number(c.ns) / 1e9).toFixed(3)} s${c.tscStable ? ' (TSC-stable)' : ' (not TSC-stable)'}`;
    } catch (e) {
      return `clock: VM built ${age} s ago; KVM_GET_CLOCK failed: ${(e as Error).message}`;
    }
  }

  /** Runs the VM until it stops; resolves with how it ended. */
  async run(): Promise<MachineExit> {
    const result: MachineExit = {
      code: 1,
      reason: 'stop-requested',
      detail: '',
      vcpus: this.vcpus.map((v) => ({ index: v.index, exits: 0 })),
      builtMs: this.builtMs,
      pio: [],
      mmio: [],
    };
    const console = this.attachConsole();
    const onSignal = (sig: NodeJS.Signals): void => this.stop('signal', sig);
    const onReport = (): void => this.report();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGUSR2', onReport);
    const priority = raiseEventLoop(this.config.eventLoopBoost ?? DEFAULT_EVENT_LOOP_BOOST, { get: () => getPriority(0), set: (n) => setPriority(0, n) });
    result.priority = priority;
    try {
      await Promise.all(this.vcpus.map((vcpu, index) => this.runWorker(vcpu, index, result, priority)));
    } finally {
      // Back to where it was: the process may build and run another machine.
      if (priority.eventLoopNice !== priority.vcpuNice) setPriority(0, priority.vcpuNice);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGUSR2', onReport);
      console.detach();
    }
    const end = this.endReason ?? { reason: 'stop-requested' as const, detail: 'stopped' };
    result.reason = end.reason;
    result.detail = end.detail;
    if (end.reason === 'signal') result.code = end.detail === 'SIGTERM' ? 143 : 130;
    else result.code = ORDERLY.has(end.reason) ? 0 : 1;
    return result;
  }

  private runWorker(vcpu: Vcpu, index: number, result: MachineExit, priority: EventLoopPriority): Promise<void> {
    const init: VcpuWorkerInit = {
      // The worker inherits the event loop's raised nice value; it sets its own back.
      ...(priority.eventLoopNice !== priority.vcpuNice ? { nice: priority.vcpuNice } : {}),
      vcpuId: vcpu.id,
      index,
      control: this.control.buffer as SharedArrayBuffer,
      serialState: this.serialState,
      i8042State: this.i8042State,
      acpiPmState: this.acpiPmState,
      serialIrqFd: this.serialIrq.fd,
      consoleFd: this.config.consoleFd,
      memory: this.memory.regionList.map((r, i) => ({ mappingId: (this.mappings[i] as HostMapping).id, guestPhysAddr: r.guestPhysAddr })),
      virtio: this.virtio.map((h) => h.worker),
    };
    const worker = new Worker(new URL('./vcpu-worker.js', import.meta.url), { workerData: init });
    this.workers.push(worker);
    const entry = result.vcpus[index] as MachineExit['vcpus'][number];
    return new Promise((resolve) => {
      worker.on('message', (m: VcpuWorkerMessage) => {
        switch (m.type) {
          case 'report':
            process.stderr.write(`[tsvmm] report: vCPU ${m.index}: ${m.line}\n`);
            break;
          case 'running':
            result.firstRunMs ??= m.atEpochMs - performance.timeOrigin;
            break;
          case 'boot-complete':
            result.bootCompleteMs ??= m.atEpochMs - performance.timeOrigin;
            break;
          case 'stopped':
            entry.stop = m.stop;
            entry.exits = m.stop.exits;
            result.pio.push(m.pio);
            result.mmio.push(m.mmio);
            this.stop(m.stop.kind, m.stop.detail);
            break;
          case 'failed':
            entry.error = m.error;
            this.stop('worker-failed', `vCPU ${index}: ${m.error}`);
            break;
        }
      });
      worker.on('error', (e) => {
        entry.error = e.message;
        this.stop('worker-failed', `vCPU ${index}: ${e.message}`);
      });
      worker.on('exit', () => resolve());
    });
  }

  /** Guest console input from stdin (raw mode on a terminal, where Ctrl-C stops the VM). */
  private attachConsole(): { detach(): void } {
    const stdin = process.stdin;
    if (!this.config.consoleInput) return { detach: () => {} };
    const serial = new Serial8250(this.serialState, { write: () => {} }, { trigger: () => this.serialIrq.signal() });
    const raw = stdin.isTTY === true;
    if (raw) stdin.setRawMode(true);
    let pending = new Uint8Array(0);
    let timer: NodeJS.Timeout | undefined;
    this.consoleBacklog = () => `console input waiting for the FIFO: ${pending.byteLength} bytes${timer ? ', retry armed' : ''}`;
    const feed = (): void => {
      timer = undefined;
      const n = serial.enqueueInput(pending);
      pending = pending.subarray(n);
      // The guest drains its 64-byte FIFO at its own pace; retry the rest shortly.
      if (pending.byteLength > 0) timer = setTimeout(feed, 2);
    };
    const onData = (chunk: Buffer): void => {
      if (raw && chunk.includes(0x03)) {
        this.stop('signal', 'SIGINT');
        return;
      }
      const merged = new Uint8Array(pending.byteLength + chunk.byteLength);
      merged.set(pending);
      merged.set(chunk, pending.byteLength);
      pending = merged;
      if (!timer) feed();
    };
    stdin.on('data', onData);
    return {
      detach: () => {
        stdin.off('data', onData);
        if (timer) clearTimeout(timer);
        if (raw) stdin.setRawMode(false);
        stdin.pause();
      },
    };
  }

  async dispose(): Promise<void> {
    for (const h of this.virtio) await h.dispose();
    for (const v of this.vcpus) v.dispose();
    this.vm.unregisterIrqfd(this.serialIrq, SERIAL_IRQ_COM1);
    this.serialIrq.dispose();
    this.vm.dispose();
    for (const m of this.mappings) m.dispose();
    this.kvm.dispose();
  }
}
