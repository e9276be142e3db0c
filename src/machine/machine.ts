// A VM from build to shutdown: KVM objects, guest memory, the boot layout, vCPUs (each run by a
// worker_thread that handles its own exits), legacy devices, the virtio devices of its
// description, and a clean stop on guest reset, on a vCPU failure, or when the owner asks.
// Terminal, signals and stdin belong to the owner (the CLI); an API-driven VMM has none.
import { readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { BOOT_FPU, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR, MiB, firstAddressAboveRam, ramLayout, setLapicLints, setupBoot, type BootSetup } from '../boot/index.js';
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
import { ConfigError, drivesInGuestOrder, validateDescription, type VmDescription } from './vm-description.js';
import { DisposalStack } from './disposal-stack.js';
import { ResourceAllocator } from './resources.js';
import { openDevices, type FuseServerFactory, type OpenedDevice } from './device-factories.js';
import { kernelCmdline } from './kernel-cmdline.js';
import { ConsoleInput } from './console-input.js';
import type { VcpuWorkerInit, VcpuWorkerMessage } from './protocol.js';

/** What the VM's owner provides beyond the description: where the guest console writes, the virtio-fs server. */
export interface MachineRuntime {
  /** fd the guest console (ttyS0) writes to. */
  consoleFd: number;
  /** Starts the FUSE server of each fs share; absent: a description with fs shares is refused. */
  fuseServer?: FuseServerFactory;
}

/** A device of the VM with its transport. */
export interface PlacedDevice extends OpenedDevice {
  host: VirtioMmioHost;
}

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
  private readonly workers: Worker[] = [];
  private endReason: { reason: MachineEndReason; detail: string } | undefined;
  /** See MachineExit.builtMs. */
  private readonly builtMs = performance.now();

  private constructor(
    readonly description: VmDescription,
    private readonly runtime: MachineRuntime,
    private readonly stack: DisposalStack,
    private readonly vm: Vm,
    private readonly mappings: HostMapping[],
    readonly memory: GuestMemory,
    readonly boot: BootSetup,
    private readonly vcpus: Vcpu[],
    /** The virtio devices, in the order the guest sees them. */
    readonly devices: readonly PlacedDevice[],
    private readonly legacy: { serialState: SharedArrayBuffer; i8042State: SharedArrayBuffer; acpiPmState: SharedArrayBuffer; serialIrq: EventFd },
    /** Guest console input (ttyS0's receive side). */
    readonly console: ConsoleInput,
    /** Where the boot args overrode what the hardware implies (root=, ro|rw), for the owner to show. */
    readonly cmdlineWarnings: readonly string[],
  ) {}

  /**
   * Validates the description, opens its devices and builds the VM ready to run: each device
   * gets a virtio-mmio slot, an interrupt line and (where KVM can) a register-page memory slot
   * from the resource allocator, and is announced on the kernel command line before its `--`
   * (kernel-cmdline.ts) and in the DSDT. Either the whole VM is built or everything made on the
   * way is released again (one DisposalStack, which dispose() also empties).
   */
  static async create(description: VmDescription, runtime: MachineRuntime): Promise<Machine> {
    validateDescription(description);
    const stack = new DisposalStack();
    try {
      return await Machine.build(description, runtime, stack);
    } catch (e) {
      try {
        await stack.dispose();
      } catch (cleanup) {
        throw new AggregateError([e, cleanup], `${e instanceof Error ? e.message : String(e)} (and releasing what was built failed: ${cleanup instanceof Error ? cleanup.message : String(cleanup)})`);
      }
      throw e;
    }
  }

  private static async build(description: VmDescription, runtime: MachineRuntime, stack: DisposalStack): Promise<Machine> {
    const { bootSource, machine: shape, tuning = {} } = description;
    const root = drivesInGuestOrder(description)[0];
    const { cmdline, warnings } = kernelCmdline(bootSource.bootArgs, root?.isRootDevice ? root : undefined);
    const kernel = readInput(bootSource.kernelImagePath, 'kernel');
    const initrd = bootSource.initrdPath === undefined ? undefined : readInput(bootSource.initrdPath, 'initrd');
    const memoryBytes = shape.memSizeMiB * MiB;
    const regions = ramLayout(memoryBytes);
    const resources = ResourceAllocator.forX86(firstAddressAboveRam(memoryBytes));
    const kvm = stack.use('/dev/kvm', Kvm.open());
    kvm.requireCapabilities();
    const vm = stack.use('the KVM VM', kvm.createVm());
    vm.setTssAddress(KVM_TSS_ADDR);
    vm.setIdentityMapAddress(BigInt(KVM_IDENTITY_MAP_ADDR));
    vm.createIrqchip();
    vm.createPit2();
    const mappings = regions.map((r, i) => {
      const mapping = stack.use(`guest RAM region ${i}`, HostMapping.allocate(r.size));
      vm.setMemoryRegion({ slot: resources.kvmSlot(`guest RAM region ${i}`), guestPhysAddr: BigInt(r.guestPhysAddr), mapping });
      return mapping;
    });
    const memory = new GuestMemory(regions.map((r, i) => ({ guestPhysAddr: r.guestPhysAddr, bytes: (mappings[i] as HostMapping).bytes() })));
    const legacy = {
      serialState: Serial8250.createState(),
      i8042State: I8042.createState(),
      acpiPmState: AcpiPm.createState(),
      serialIrq: stack.use('serial irqfd', new EventFd()),
    };
    vm.registerIrqfd(legacy.serialIrq, SERIAL_IRQ_COM1);
    stack.defer('serial irqfd GSI', () => vm.unregisterIrqfd(legacy.serialIrq, SERIAL_IRQ_COM1));
    const console = new ConsoleInput(legacy.serialState, () => legacy.serialIrq.signal());
    stack.defer('console input', () => console.close());
    // Devices are opened once guest memory exists and are released before it goes: a transfer
    // still in flight at disposal writes into guest memory until the device's dispose() returns.
    const opened = await openDevices(description, stack, { fuseServer: runtime.fuseServer });
    const pages = (tuning.mmioRegisterPages ?? true) && kvm.checkExtension('KVM_CAP_READONLY_MEM') > 0;
    const devices: PlacedDevice[] = opened.map((d) => {
      const slot = resources.mmioSlot(d.id);
      const placement = {
        base: slot.base,
        gsi: resources.gsi(d.id),
        pageSlot: pages ? resources.kvmSlot(`${d.id} register page`) : undefined,
        ackDoorbell: tuning.mmioAckDoorbell ?? true,
        sharedMemory: (d.device.sharedMemory ?? []).map((r) => ({ id: r.id, length: r.length, guestPhysAddr: resources.aboveRam(`${d.id} shared memory ${r.id}`, r.length, r.align).guestPhysAddr })),
      };
      const host = new VirtioMmioHost(d.id, d.device, placement, vm, memory, stack);
      // Each announcement describes hardware the guest has, so it is added whatever the user wrote.
      cmdline.add(host.cmdlineParam.name, host.cmdlineParam.value);
      return { ...d, host };
    });
    // A kernel that uses ACPI learns the UART's and each transport's interrupt from the DSDT.
    const acpiDevices = {
      serial: [{ port: SERIAL_PORT_COM1, length: SERIAL_PORT_LENGTH, gsi: SERIAL_IRQ_COM1 }],
      virtioMmio: devices.map((d) => ({ base: d.host.base, size: VIRTIO_MMIO_SIZE, gsi: d.host.gsi })),
    };
    const boot = setupBoot(memory, { kernel, ...(initrd ? { initrd } : {}), cmdline, vcpus: shape.vcpuCount, acpiDevices });
    const supported = kvm.supportedCpuid();
    const msrs = boot.msrs(kvm.msrIndexList()).entries;
    const vcpus: Vcpu[] = [];
    for (let i = 0; i < shape.vcpuCount; i++) {
      const vcpu = stack.use(`vCPU ${i}`, vm.createVcpu(i));
      vcpus.push(vcpu);
      vcpu.setCpuid(boot.cpuid(supported, i));
      vcpu.setMsrs(msrs);
      vcpu.setRaw('FPU', encodeFpu(BOOT_FPU));
      vcpu.setRaw('LAPIC', setLapicLints(vcpu.getRaw('LAPIC')));
      if (i === 0) {
        vcpu.setRegs(boot.regs());
        vcpu.setSregs(boot.sregs(vcpu.getSregs()));
      }
    }
    return new Machine(description, runtime, stack, vm, mappings, memory, boot, vcpus, devices, legacy, console, warnings);
  }

  /** Asks every vCPU to stop (first reason wins) and kicks them out of KVM_RUN. */
  stop(reason: MachineEndReason, detail: string): void {
    this.endReason ??= { reason, detail };
    requestStop(this.control, 1);
    for (const v of this.vcpus) v.kick();
  }

  /**
   * Reports on stderr where the VM is (the CLI sends it on SIGUSR2): the clock, the UART's and
   * each virtio device's state now, then each vCPU's registers as its thread answers (it is
   * kicked out of KVM_RUN and goes on). A vCPU that does not answer is busy outside KVM_RUN,
   * which says something too.
   */
  report(): void {
    const lines = [this.describeClock(), `serial0: ${Serial8250.describeState(this.legacy.serialState)}; ${this.console.describe()}`, ...this.devices.flatMap((d) => d.host.describe())];
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
    const priority = raiseEventLoop(this.description.tuning?.eventLoopBoost ?? DEFAULT_EVENT_LOOP_BOOST, { get: () => getPriority(0), set: (n) => setPriority(0, n) });
    result.priority = priority;
    try {
      await Promise.all(this.vcpus.map((vcpu, index) => this.runWorker(vcpu, index, result, priority)));
    } finally {
      // Back to where it was: the process may build and run another machine.
      if (priority.eventLoopNice !== priority.vcpuNice) setPriority(0, priority.vcpuNice);
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
      serialState: this.legacy.serialState,
      i8042State: this.legacy.i8042State,
      acpiPmState: this.legacy.acpiPmState,
      serialIrqFd: this.legacy.serialIrq.fd,
      consoleFd: this.runtime.consoleFd,
      memory: this.memory.regionList.map((r, i) => ({ mappingId: (this.mappings[i] as HostMapping).id, guestPhysAddr: r.guestPhysAddr })),
      virtio: this.devices.map((d) => d.host.worker),
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

  /** Releases everything the VM holds, last made first; every step runs even when one throws. */
  async dispose(): Promise<void> {
    await this.stack.dispose();
  }
}
