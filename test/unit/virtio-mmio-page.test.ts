// The register page (RegisterPage in src/devices/virtio/mmio.ts): KVM serves the driver's register
// reads from it, so after anything the driver or the device does it must read exactly as the
// register file does. Checked here against the transport's own read() for random sequences of
// register writes and device-side changes (fast-check), and for the two documented exceptions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { MmioTransport, TransportState, type AckDoorbell, type RegisterPage } from '../../src/devices/virtio/mmio.js';
import { CONFIG_SPACE_SIZE, INT_CONFIG_CHANGE, INT_USED_BUFFER, REG, STATUS } from '../../src/devices/virtio/mmio-regs.js';

const PAGE_BYTES = 0x1000;

function setup(doorbell?: AckDoorbell) {
  const sab = TransportState.create({
    deviceId: 2,
    features: (1n << 28n) | (1n << 29n) | (1n << 40n),
    queueMaxSizes: [256, 64],
    config: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
    shm: [{ base: 0x1_0000_0000, length: 0x40_0000 }],
  });
  const hooks = { suspended: 0, resumed: 0 };
  const page: RegisterPage = {
    bytes: new Uint8Array(PAGE_BYTES),
    suspend: () => void hooks.suspended++,
    resume: () => void hooks.resumed++,
  };
  const memory = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x100000 }]);
  const events = { statusChanged: (): void => undefined, queueNotify: (): void => undefined };
  // The vCPU side (writes that exit) and the device side, each with its own view, as in a VM.
  const transport = new MmioTransport(sab, events, memory, () => undefined, { page, ackDoorbell: doorbell });
  const device = new TransportState(sab, { page, ackDoorbell: doorbell });
  device.renderPage();
  const pageWord = (off: number): number => new DataView(page.bytes.buffer).getUint32(off, true);
  const rd = (off: number): number => {
    const b = new Uint8Array(4);
    transport.read(off, b);
    return new DataView(b.buffer).getUint32(0, true);
  };
  const wr = (off: number, v: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    transport.write(off, b);
  };
  return { page, hooks, transport, device, pageWord, rd, wr };
}

type Op =
  | { kind: 'write'; offset: number; value: number }
  | { kind: 'raise'; bits: number }
  | { kind: 'needsReset' }
  | { kind: 'configChanged'; at: number; byte: number };

const WRITABLE = Object.values(REG).filter((o) => o < REG.config);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    offset: fc.constantFrom(...WRITABLE),
    // Small values hit selectors, queue numbers and status bits; any value is allowed.
    value: fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.constantFrom(0, 1, 2, 3, 0x0b, 0x0f, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
  }),
  fc.record({ kind: fc.constant('raise' as const), bits: fc.constantFrom(INT_USED_BUFFER, INT_CONFIG_CHANGE, 3) }),
  fc.record({ kind: fc.constant('needsReset' as const) }),
  fc.record({ kind: fc.constant('configChanged' as const), at: fc.integer({ min: 0, max: 7 }), byte: fc.integer({ min: 0, max: 255 }) }),
);

test('property: after any sequence of register writes and device changes, the page reads as the register file', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const s = setup();
      const check = (after: string): void => {
        for (let off = 0; off < REG.config; off += 4) {
          // The register file's reads come second: for InterruptStatus they may apply an ACK.
          const fromPage = s.pageWord(off);
          assert.is(fromPage, s.rd(off), `offset 0x${off.toString(16)} after ${after}`);
        }
        const config = new Uint8Array(CONFIG_SPACE_SIZE);
        s.transport.read(REG.config, config.subarray(0, 8));
        assert.equal(Array.from(s.page.bytes.subarray(REG.config, REG.config + 8)), Array.from(config.subarray(0, 8)), `config after ${after}`);
      };
      check('set-up');
      for (const o of ops) {
        if (o.kind === 'write') s.wr(o.offset, o.value);
        else if (o.kind === 'raise') s.device.raise(o.bits);
        else if (o.kind === 'needsReset') s.device.needsReset();
        else s.device.configChanged((c) => (c[o.at] = o.byte));
        check(JSON.stringify(o));
      }
    }),
    { numRuns: 300 },
  );
});

test('a config change takes the page away while it happens, and gives it back even if the update throws', () => {
  const s = setup();
  const gen = s.pageWord(REG.configGeneration);
  s.device.configChanged((c) => {
    assert.is(s.hooks.suspended, 1, 'suspended before the bytes change');
    assert.is(s.hooks.resumed, 0);
    c[0] = 42;
  });
  assert.is(s.hooks.resumed, 1);
  assert.is(s.page.bytes[REG.config], 42);
  assert.is(s.pageWord(REG.configGeneration), gen + 1);
  assert.is(s.pageWord(REG.interruptStatus) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
  assert.throws(() =>
    s.device.configChanged(() => {
      throw new Error('boom');
    }),
  );
  assert.is(s.hooks.resumed, 2, 'resumed after the failed update');
});

test('with the ACK doorbell, the page shows an acknowledgement from the next raise on (Linux reads it only then)', () => {
  let rung = 0;
  const bell: AckDoorbell = {
    take: () => {
      const had = rung > 0;
      rung = 0;
      return had;
    },
  };
  const s = setup(bell);
  s.wr(REG.status, STATUS.ACKNOWLEDGE);
  s.device.raise(INT_USED_BUFFER);
  assert.is(s.pageWord(REG.interruptStatus), INT_USED_BUFFER);
  rung++; // InterruptACK = 1, taken by KVM's ioeventfd: no exit, nothing renders
  assert.is(s.pageWord(REG.interruptStatus), INT_USED_BUFFER, 'still shown: the documented lag');
  s.device.raise(INT_USED_BUFFER);
  assert.is(s.pageWord(REG.interruptStatus), INT_USED_BUFFER, 'the new raise');
  assert.is(rung, 0, 'the raise applied the ACK first');
  s.device.configChanged(() => undefined);
  rung++;
  s.device.raise(INT_CONFIG_CHANGE);
  assert.is(s.pageWord(REG.interruptStatus), INT_CONFIG_CHANGE, 'the ACK cleared the used-buffer bit only');
});

test('a page too small for the registers and config space is refused', () => {
  const sab = TransportState.create({ deviceId: 2, features: 0n, queueMaxSizes: [8] });
  assert.throws(() => new TransportState(sab, { page: { bytes: new Uint8Array(0x100) } }), /register page of 256 bytes/);
});

test.run();
