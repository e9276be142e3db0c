// The transport half of the test guest driver: drives a VirtioDevice through the real
// virtio-mmio register file the way Linux's virtio_mmio driver does — reset, ACKNOWLEDGE,
// DRIVER, feature negotiation in 32-bit halves, FEATURES_OK read back, queue set-up, DRIVER_OK,
// QueueNotify, InterruptStatus/ACK — over an in-memory GuestMemory, so devices are tested
// without a VM. The rings are VirtqDriver's (virtq-driver.ts).
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import { VirtioActivation } from '../../src/devices/virtio/activation.js';
import type { SharedMemoryGrant, VirtioDevice } from '../../src/devices/virtio/device.js';
import { MmioTransport, TransportState, shmTable } from '../../src/devices/virtio/mmio.js';
import { REG, STATUS } from '../../src/devices/virtio/mmio-regs.js';
import { VirtqDriver } from './virtq-driver.js';

export interface TestDriverOptions {
  /** Where the VMM placed the device's shared-memory regions (VirtioDevice.sharedMemory): the
   * transport serves them (SHMSel/SHMLen/SHMBase) and the device is attached with them. */
  sharedMemory?: readonly SharedMemoryGrant[];
  /** The device's log lines (DeviceHost.log). */
  log?: (line: string) => void;
}

export class VirtioTestDriver {
  readonly transport: MmioTransport;
  readonly state: TransportState;
  readonly queues: VirtqDriver[] = [];
  interrupts = 0;
  /** Called after each interrupt the device raises (e.g. to wake a waiting benchmark). */
  onInterrupt: (() => void) | undefined;

  constructor(
    readonly device: VirtioDevice,
    readonly memory: GuestMemory,
    options: TestDriverOptions = {},
  ) {
    const sharedMemory = options.sharedMemory ?? [];
    const sab = TransportState.create({
      deviceId: device.deviceId,
      features: device.features,
      queueMaxSizes: device.queueMaxSizes,
      config: device.config,
      shm: shmTable('test device', sharedMemory),
    });
    this.state = new TransportState(sab);
    const raised = (): void => {
      this.interrupts++;
      this.onInterrupt?.();
    };
    const activation = new VirtioActivation(this.state, device, memory, raised);
    this.transport = new MmioTransport(sab, { statusChanged: () => activation.onStatus(), queueNotify: (q) => activation.onNotify(q) }, memory, raised);
    device.attach?.({ updateConfig: (update) => this.state.configChanged(update), sharedMemory, log: options.log ?? (() => {}) });
  }

  read(offset: number): number {
    const b = new Uint8Array(4);
    this.transport.read(offset, b);
    return new DataView(b.buffer).getUint32(0, true);
  }

  write(offset: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.transport.write(offset, b);
  }

  configBytes(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.transport.read(REG.config + offset, out);
    return out;
  }

  deviceFeatures(): bigint {
    this.write(REG.deviceFeaturesSel, 0);
    const lo = this.read(REG.deviceFeatures);
    this.write(REG.deviceFeaturesSel, 1);
    return (BigInt(this.read(REG.deviceFeatures)) << 32n) | BigInt(lo);
  }

  /**
   * Negotiates `wanted & offered` and sets up every queue with `size` entries, rings and buffers
   * laid out from `base` (64 KiB per queue for rings, then `bufferSpace` bytes of buffers).
   * Returns the negotiated features; throws if the device refuses FEATURES_OK.
   */
  init(wanted: bigint, opts: { size?: number; base?: number; bufferSpace?: number } = {}): bigint {
    const size = opts.size ?? 64;
    const bufferSpace = opts.bufferSpace ?? 0x40000;
    let base = opts.base ?? 0x10000;
    this.write(REG.status, 0);
    this.write(REG.status, STATUS.ACKNOWLEDGE);
    this.write(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    const features = this.deviceFeatures() & wanted;
    this.write(REG.driverFeaturesSel, 0);
    this.write(REG.driverFeatures, Number(features & 0xffffffffn));
    this.write(REG.driverFeaturesSel, 1);
    this.write(REG.driverFeatures, Number(features >> 32n));
    this.write(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    if (!(this.read(REG.status) & STATUS.FEATURES_OK)) throw new Error(`the device refused features 0x${features.toString(16)}`);
    const eventIdx = (features & (1n << 29n)) !== 0n;
    for (let i = 0; i < this.device.queueMaxSizes.length; i++) {
      const q = new VirtqDriver(this.memory, { size, ringBase: base, bufferBase: base + 0x10000, bufferEnd: base + 0x10000 + bufferSpace, eventIdx });
      base += 0x10000 + bufferSpace;
      this.write(REG.queueSel, i);
      this.write(REG.queueNum, size);
      const l = q.layout;
      this.write(REG.queueDescLow, l.desc);
      this.write(REG.queueDescHigh, 0);
      this.write(REG.queueDriverLow, l.driver);
      this.write(REG.queueDriverHigh, 0);
      this.write(REG.queueDeviceLow, l.device);
      this.write(REG.queueDeviceHigh, 0);
      this.write(REG.queueReady, 1);
      this.queues.push(q);
    }
    this.write(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    return features;
  }

  /** Publishes what was posted on queue `index` and notifies the device if it asked to be. */
  kick(index: number): void {
    const q = this.queues[index];
    if (!q) throw new Error(`no queue ${index}`);
    q.publish();
    if (q.takeKick()) this.write(REG.queueNotify, index);
  }

  /** Reads and acknowledges InterruptStatus, as the driver's interrupt handler does. */
  ackInterrupt(): number {
    const s = this.read(REG.interruptStatus);
    this.write(REG.interruptAck, s);
    return s;
  }
}
