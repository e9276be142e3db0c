import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { ACK_DOORBELL_VALUE, MmioTransport, TransportState, TransportConfigError, validateQueue, type AckDoorbell } from '../../src/devices/virtio/mmio.js';
import { VirtioActivation } from '../../src/devices/virtio/activation.js';
import type { VirtioDevice } from '../../src/devices/virtio/device.js';
import { INT_CONFIG_CHANGE, INT_USED_BUFFER, REG, STATUS, VIRTIO_MMIO_MAGIC } from '../../src/devices/virtio/mmio-regs.js';

/** A doorbell as KVM's ioeventfd would ring it: a counter the transport drains. */
function fakeDoorbell(): AckDoorbell & { ring(): void; rung: number } {
  return {
    rung: 0,
    ring() {
      this.rung++;
    },
    take() {
      const had = this.rung > 0;
      this.rung = 0;
      return had;
    },
  };
}

function setup(opts: { features?: bigint; config?: Uint8Array; doorbell?: AckDoorbell } = {}) {
  const sab = TransportState.create({
    deviceId: 2,
    features: opts.features ?? (1n << 28n) | (1n << 29n),
    queueMaxSizes: [256, 64],
    config: opts.config ?? Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
    shm: [{ base: 0x1_0000_0000, length: 0x40_0000 }],
  });
  const events: string[] = [];
  let irqs = 0;
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x100000 }]);
  const t = new MmioTransport(sab, { statusChanged: (s) => events.push(`status ${s}`), queueNotify: (q) => events.push(`notify ${q}`) }, memory, () => irqs++, { ackDoorbell: opts.doorbell });
  const rd = (off: number): number => {
    const b = new Uint8Array(4);
    t.read(off, b);
    return new DataView(b.buffer).getUint32(0, true);
  };
  const wr = (off: number, v: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    t.write(off, b);
  };
  return { t, rd, wr, events, state: new TransportState(sab, { ackDoorbell: opts.doorbell }), irqs: () => irqs };
}

function setupQueue(wr: (o: number, v: number) => void, index: number, size: number, base: number): void {
  wr(REG.queueSel, index);
  wr(REG.queueNum, size);
  wr(REG.queueDescLow, base);
  wr(REG.queueDescHigh, 0);
  wr(REG.queueDriverLow, base + 16 * size);
  wr(REG.queueDeviceLow, base + 0x4000);
  wr(REG.queueReady, 1);
}

test('identification registers', () => {
  const { rd } = setup();
  assert.is(rd(REG.magic), VIRTIO_MMIO_MAGIC);
  assert.is(rd(REG.version), 2);
  assert.is(rd(REG.deviceId), 2);
  assert.is(rd(REG.vendorId), 0x4d565354);
});

test('the whole driver sequence: negotiate, set up queues, DRIVER_OK, notify, interrupt, reset', () => {
  const { rd, wr, events, state } = setup();
  wr(REG.status, STATUS.ACKNOWLEDGE);
  wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  wr(REG.deviceFeaturesSel, 0);
  assert.is(rd(REG.deviceFeatures), (1 << 28) | (1 << 29));
  wr(REG.deviceFeaturesSel, 1);
  assert.is(rd(REG.deviceFeatures), 1, 'VIRTIO_F_VERSION_1 (bit 32) offered');
  wr(REG.driverFeaturesSel, 0);
  wr(REG.driverFeatures, 1 << 29);
  wr(REG.driverFeaturesSel, 1);
  wr(REG.driverFeatures, 1);
  wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
  assert.is(rd(REG.status) & STATUS.FEATURES_OK, STATUS.FEATURES_OK);
  assert.is(state.driverFeatures, (1n << 32n) | (1n << 29n));
  wr(REG.queueSel, 0);
  assert.is(rd(REG.queueNumMax), 256);
  wr(REG.queueSel, 5);
  assert.is(rd(REG.queueNumMax), 0, 'a queue that does not exist');
  setupQueue(wr, 0, 128, 0x10000);
  setupQueue(wr, 1, 64, 0x20000);
  wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  assert.equal(state.readyQueues(), [
    { index: 0, size: 128, desc: 0x10000, driver: 0x10800, device: 0x14000 },
    { index: 1, size: 64, desc: 0x20000, driver: 0x20400, device: 0x24000 },
  ]);
  wr(REG.queueNotify, 1);
  assert.equal(events, ['status 1', 'status 3', 'status 11', 'status 15', 'notify 1']);
  state.raise(INT_USED_BUFFER);
  assert.is(rd(REG.interruptStatus), INT_USED_BUFFER);
  wr(REG.interruptAck, INT_USED_BUFFER);
  assert.is(rd(REG.interruptStatus), 0);
  wr(REG.status, 0);
  assert.is(rd(REG.status), 0);
  assert.equal(state.readyQueues(), []);
  assert.is(state.driverFeatures, 0n);
  assert.is(events[events.length - 1], 'status 0');
});

test('ACK doorbell: an acknowledgement KVM took clears the used-buffer bit before the next read, raise or reset', () => {
  const bell = fakeDoorbell();
  const { rd, wr, state } = setup({ doorbell: bell });
  assert.is(ACK_DOORBELL_VALUE, INT_USED_BUFFER);
  state.raise(INT_USED_BUFFER);
  assert.is(rd(REG.interruptStatus), INT_USED_BUFFER);
  bell.ring(); // the driver wrote InterruptACK = 1 and KVM signalled the ioeventfd
  assert.is(rd(REG.interruptStatus), 0, 'the read sees the acknowledgement');
  // An ACK that came before a raise must not clear the bit that raise sets.
  state.raise(INT_USED_BUFFER);
  bell.ring();
  state.raise(INT_USED_BUFFER);
  assert.is(rd(REG.interruptStatus), INT_USED_BUFFER, 'the second raise came after the ACK');
  assert.is(bell.rung, 0, 'drained');
  // The doorbell only ever clears the used-buffer bit; a config change stays until acknowledged by a write.
  state.configChanged(() => undefined);
  bell.ring();
  assert.is(rd(REG.interruptStatus), INT_CONFIG_CHANGE);
  wr(REG.interruptAck, INT_CONFIG_CHANGE);
  assert.is(rd(REG.interruptStatus), 0);
  // A reset forgets an ACK still in the doorbell: it must not clear a bit raised afterwards.
  state.raise(INT_USED_BUFFER);
  bell.ring();
  wr(REG.status, 0);
  assert.is(bell.rung, 0);
  state.raise(INT_USED_BUFFER);
  assert.is(rd(REG.interruptStatus), INT_USED_BUFFER);
});

test('FEATURES_OK is refused for features the device lacks, or without VERSION_1', () => {
  for (const [lo, hi] of [[1 << 5, 1], [1 << 29, 0]] as const) {
    const { rd, wr } = setup();
    wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    wr(REG.driverFeaturesSel, 0);
    wr(REG.driverFeatures, lo);
    wr(REG.driverFeaturesSel, 1);
    wr(REG.driverFeatures, hi);
    wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    assert.is(rd(REG.status) & STATUS.FEATURES_OK, 0);
    wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    assert.is(rd(REG.status) & STATUS.DRIVER_OK, 0, 'no DRIVER_OK without FEATURES_OK');
  }
});

test('a bad queue stays not ready and the device asks for a reset', () => {
  const cases: [number, number][] = [[100, 0x10000], [512, 0x10000], [64, 0x10008], [64, 0xff000], [0, 0x10000]];
  for (const [size, base] of cases) {
    const { rd, wr, irqs } = setup();
    setupQueue(wr, 0, size, base);
    assert.is(rd(REG.queueReady), 0, `size ${size} at 0x${base.toString(16)}`);
    assert.is(rd(REG.status) & STATUS.NEEDS_RESET, STATUS.NEEDS_RESET);
    assert.is(rd(REG.interruptStatus) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
    assert.is(irqs(), 1);
  }
  assert.match(validateQueue({ index: 0, size: 64, desc: 0x10008, driver: 0, device: 0 }, 256, GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x100000 }])) ?? '', /not 16-byte aligned/);
});

test('queue registers are frozen while the queue is ready; status bits cannot be cleared but by reset', () => {
  const { rd, wr, state } = setup();
  setupQueue(wr, 0, 64, 0x10000);
  wr(REG.queueNum, 32);
  wr(REG.queueDescLow, 0x30000);
  assert.equal(state.readyQueues()[0], { index: 0, size: 64, desc: 0x10000, driver: 0x10400, device: 0x14000 });
  wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  wr(REG.status, STATUS.ACKNOWLEDGE);
  assert.is(rd(REG.status), STATUS.ACKNOWLEDGE | STATUS.DRIVER);
});

test('config space: byte, word and dword reads; generation bumps on change; beyond it reads zero', () => {
  const { t, rd, state } = setup();
  const b1 = new Uint8Array(1);
  t.read(REG.config + 2, b1);
  assert.is(b1[0], 3);
  const b4 = new Uint8Array(4);
  t.read(REG.config + 4, b4);
  assert.equal(Array.from(b4), [5, 6, 7, 8]);
  t.read(REG.config + 6, b4);
  assert.equal(Array.from(b4), [0, 0, 0, 0], 'past the end of the device config');
  const g = rd(REG.configGeneration);
  state.configChanged((c) => (c[0] = 9));
  t.read(REG.config, b1);
  assert.is(b1[0], 9);
  assert.is(rd(REG.configGeneration), g + 1);
  assert.is(rd(REG.interruptStatus) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
});

test('shared-memory regions: described ones and the all-ones length of a missing one', () => {
  const { rd, wr } = setup();
  wr(REG.shmSel, 0);
  assert.equal([rd(REG.shmBaseLow), rd(REG.shmBaseHigh), rd(REG.shmLenLow), rd(REG.shmLenHigh)], [0, 1, 0x40_0000, 0]);
  wr(REG.shmSel, 1);
  assert.equal([rd(REG.shmLenLow), rd(REG.shmLenHigh)], [0xffffffff, 0xffffffff]);
});

test('non-32-bit register accesses are ignored; bad descriptions are refused', () => {
  const { t, rd } = setup();
  const b2 = new Uint8Array(2);
  t.read(REG.magic, b2);
  assert.equal(Array.from(b2), [0, 0]);
  t.write(REG.status, Uint8Array.of(1));
  assert.is(rd(REG.status), 0);
  assert.throws(() => TransportState.create({ deviceId: 1, features: 0n, queueMaxSizes: [100] }), (e: unknown) => e instanceof TransportConfigError);
  assert.throws(() => TransportState.create({ deviceId: 1, features: 0n, queueMaxSizes: [], config: new Uint8Array(300) }), (e: unknown) => e instanceof TransportConfigError);
});


test('reset barrier: the Status = 0 write returns only once the device side acknowledged that reset', () => {
  const sab = TransportState.create({ deviceId: 2, features: 0n, queueMaxSizes: [8] });
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 }]);
  const device = new TransportState(sab);
  const log: string[] = [];
  let looks = 0;
  const barrier = {
    stopped: (): boolean => {
      looks++;
      log.push(`look ${looks}`);
      // The device side (here: this hook, as if another thread) acknowledges on the third look.
      if (looks === 3) device.acknowledgeReset(device.resetSequence);
      return false;
    },
  };
  const t = new MmioTransport(sab, { statusChanged: (s) => log.push(`status ${s}`), queueNotify: () => undefined }, memory, () => undefined, { resetBarrier: barrier });
  const b = new Uint8Array(4);
  t.write(REG.status, b);
  assert.is(device.resetSequence, 1);
  assert.equal(log, ['status 0', 'look 1', 'look 2', 'look 3'], 'waited (two slices) until the acknowledgement, then returned');
  // A second reset needs its own acknowledgement; a stop ends the wait without one.
  log.length = 0;
  const stopping = new MmioTransport(sab, { statusChanged: (s) => log.push(`status ${s}`), queueNotify: () => undefined }, memory, () => undefined, {
    resetBarrier: { stopped: () => (log.push('stopped'), true) },
  });
  stopping.write(REG.status, b);
  assert.is(device.resetSequence, 2);
  assert.equal(log, ['status 0', 'stopped']);
});

test('activation: a reset is acknowledged only after the device is quiet; a reset it missed is still handled', async () => {
  const sab = TransportState.create({ deviceId: 2, features: 0n, queueMaxSizes: [8] });
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 }]);
  const state = new TransportState(sab);
  let release: () => void = () => undefined;
  const calls: string[] = [];
  const device: VirtioDevice = {
    deviceId: 2,
    features: 0n,
    queueMaxSizes: [8],
    config: new Uint8Array(0),
    activate: () => calls.push('activate'),
    notify: () => undefined,
    reset: () => calls.push('reset'),
    quiesce: () => new Promise<void>((res) => (release = res)),
    metrics: () => ({}),
    dispose: async () => undefined,
  };
  const activation = new VirtioActivation(state, device, memory, () => undefined);
  const t = new MmioTransport(sab, { statusChanged: () => activation.onStatus(), queueNotify: () => undefined }, memory);
  const wr = (off: number, v: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    t.write(off, b);
  };
  const ackCell = (): boolean => state.awaitReset(state.resetSequence, { stopped: () => true });
  const bringUp = (): void => {
    wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    wr(REG.driverFeaturesSel, 1);
    wr(REG.driverFeatures, 1);
    wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    setupQueue(wr, 0, 8, 0x1000);
    wr(REG.status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  };
  bringUp();
  assert.equal(calls, ['activate']);
  wr(REG.status, 0);
  assert.equal(calls, ['activate', 'reset']);
  assert.not.ok(ackCell(), 'not acknowledged while the device is busy');
  release();
  await new Promise((r) => setImmediate(r));
  assert.ok(ackCell(), 'acknowledged once quiet');

  // Without a barrier the driver may reset and come back up before the device side looks:
  // the reset counter still tells it, and the device is reset and activated again.
  const events = { statusChanged: (): void => undefined, queueNotify: (): void => undefined };
  bringUp();
  assert.equal(calls, ['activate', 'reset', 'activate']);
  const silent = new MmioTransport(sab, events, memory);
  silent.write(REG.status, new Uint8Array(4));
  bringUp(); // through t: its statusChanged runs onStatus, which sees the missed reset
  assert.equal(calls, ['activate', 'reset', 'activate', 'reset', 'activate']);
  release();
});
test('config writes: applied only to the bytes the device declared writable, then told to the device once', () => {
  const sab = TransportState.create({ deviceId: 2, features: 0n, queueMaxSizes: [8], config: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), writableConfig: [{ offset: 4, length: 2 }] });
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x10000 }]);
  const state = new TransportState(sab);
  const seen: number[][] = [];
  const device: VirtioDevice = {
    deviceId: 2,
    features: 0n,
    queueMaxSizes: [8],
    config: new Uint8Array(8),
    activate: () => undefined,
    notify: () => undefined,
    reset: () => undefined,
    dispose: () => Promise.resolve(),
    configWritten: (config) => seen.push([...config]),
    metrics: () => ({}),
  };
  const activation = new VirtioActivation(state, device, memory, () => undefined);
  let told = 0;
  const t = new MmioTransport(sab, { statusChanged: () => activation.onStatus(), queueNotify: () => undefined, configWritten: () => told++ }, memory);
  t.write(REG.config + 4, Uint8Array.of(0xaa, 0xbb));
  t.write(REG.config + 5, Uint8Array.of(0xcc, 0xdd)); // byte 6 is read-only: refused whole
  t.write(REG.config + 0, Uint8Array.of(0xee)); // read-only
  assert.is(told, 1);
  assert.is(state.configWrites, 1);
  const read = new Uint8Array(8);
  t.read(REG.config, read);
  assert.equal([...read], [1, 2, 3, 4, 0xaa, 0xbb, 7, 8]);
  activation.onStatus();
  activation.onStatus();
  assert.equal(seen, [[1, 2, 3, 4, 0xaa, 0xbb, 7, 8]], 'the device sees each write once, with the whole config space');
  assert.throws(() => TransportState.create({ deviceId: 2, features: 0n, queueMaxSizes: [8], config: new Uint8Array(4), writableConfig: [{ offset: 2, length: 4 }] }), (e: unknown) => e instanceof TransportConfigError);
});

test.run();
