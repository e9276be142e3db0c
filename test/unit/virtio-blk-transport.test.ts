// virtio-blk through the whole device stack minus KVM: registers, negotiation, queue, device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioBlock } from '../../src/devices/virtio/block/index.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { REG, STATUS } from '../../src/devices/virtio/mmio-regs.js';
import { VirtioTestDriver } from '../helpers/virtio-driver.js';

function header(type: number, sector: bigint): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setBigUint64(8, sector, true);
  return h;
}

/** Polls f until it gives a value; the deadline only catches a hang, so it is generous. */
async function until<T>(f: () => T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('a driver negotiates, writes and reads back a sector, and gets interrupts, all through the registers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-blkt-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, new Uint8Array(64 * 1024));
  const device = await VirtioBlock.open({ path });
  try {
    const d = new VirtioTestDriver(device, GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x200000 }]));
    assert.is(d.read(REG.deviceId), 2);
    const features = d.init((1n << 32n) | (1n << 29n) | (1n << 28n) | (1n << 9n));
    assert.ok(features & (1n << 32n), 'VERSION_1');
    // The ring features come from the transport (every queue is a SplitQueue): a Linux guest
    // negotiates them, and this test then runs with EVENT_IDX notifications and interrupts.
    assert.is(features & ((1n << 29n) | (1n << 28n)), (1n << 29n) | (1n << 28n), 'EVENT_IDX and INDIRECT_DESC offered');
    const capacity = new DataView(d.configBytes(0, 8).buffer).getBigUint64(0, true);
    assert.is(capacity, 128n);
    const q = d.queues[0];
    if (!q) throw new Error('no queue');
    const data = new Uint8Array(512).map((_, i) => i & 0xff);
    // The writable buffers of a chain, read back after the device used it.
    const written = (head: number, len: number): Uint8Array => {
      const out = new Uint8Array(len);
      let at = 0;
      for (const b of q.buffersOf(head)?.writable ?? []) {
        out.set(d.memory.slice(b.addr, Math.min(b.len, len - at)), at);
        at += b.len;
      }
      return out;
    };
    const w = q.post([header(1, 3n), data], [1]);
    const wBuffers = q.buffersOf(w);
    d.kick(0);
    const used = await until(() => (q.usedIdx > 0 ? true : undefined));
    assert.ok(used && wBuffers);
    assert.is(written(w, 1)[0], 0, 'status OK');
    q.collectUsed();
    assert.equal(Array.from(readFileSync(path).subarray(3 * 512, 4 * 512)), Array.from(data));
    const r = q.post([header(0, 3n)], [512, 1]);
    d.kick(0);
    await until(() => (q.usedIdx > 1 ? true : undefined));
    const back = written(r, 513);
    q.collectUsed();
    assert.equal(Array.from(back.subarray(0, 512)), Array.from(data));
    assert.is(back[512], 0);
    assert.ok(d.interrupts >= 1, 'interrupts were raised');
    assert.is(d.ackInterrupt() & 1, 1, 'used-buffer interrupt pending');
    d.write(REG.status, 0);
    assert.is(d.read(REG.status), 0, 'reset');
  } finally {
    await device.dispose();
  }
});

test('a driver that refuses VERSION_1 does not get FEATURES_OK', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-blkt-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, new Uint8Array(4096));
  const device = await VirtioBlock.open({ path });
  try {
    const d = new VirtioTestDriver(device, GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 0x200000 }]));
    assert.throws(() => d.init(1n << 9n), /refused features/);
    assert.is(d.read(REG.status) & STATUS.FEATURES_OK, 0);
  } finally {
    await device.dispose();
  }
});

test.run();
