// machine/resources.ts and machine/disposal-stack.ts: resources by request, each with an owner;
// disposal that releases everything, last first, even when a step throws.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ResourceAllocator, ResourceExhaustedError } from '../../src/machine/resources.js';
import { DisposalError, DisposalStack } from '../../src/machine/disposal-stack.js';
import { IRQ_BASE, IRQ_MAX, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SLOT_SIZE } from '../../src/boot/index.js';

test('slots, lines and KVM slots are handed out lowest first; exhaustion names who holds them', () => {
  const r = ResourceAllocator.forX86(0x1_0000_0000);
  assert.equal(r.mmioSlot('rootfs'), { base: VIRTIO_MMIO_BASE, size: VIRTIO_MMIO_SLOT_SIZE });
  assert.equal(r.mmioSlot('vsock0'), { base: VIRTIO_MMIO_BASE + VIRTIO_MMIO_SLOT_SIZE, size: VIRTIO_MMIO_SLOT_SIZE });
  assert.is(r.gsi('rootfs'), IRQ_BASE);
  for (let g = IRQ_BASE + 1; g <= IRQ_MAX; g++) assert.is(r.gsi(`d${g}`), g);
  assert.throws(() => r.gsi('one too many'), (e: unknown) => e instanceof ResourceExhaustedError && /interrupt line \(GSI\) left for one too many/.test(e.message) && /5: rootfs/.test(e.message));
  assert.is(r.kvmSlot('ram'), 0);
  assert.is(r.kvmSlot('page'), 1);
  r.releaseKvmSlot(0);
  assert.is(r.kvmSlot('again'), 0, 'a released KVM slot is reused');
  assert.ok(r.describe().includes('virtio-mmio slot 1: vsock0'));
});

test('ranges above RAM: aligned, one after another, refused past the guest-physical limit', () => {
  const r = ResourceAllocator.forX86(0x1_2345_6000);
  const a = r.aboveRam('fs0 DAX', 8n << 20n, 2n << 20n);
  assert.is(a.guestPhysAddr, 0x1_2360_0000n, 'rounded up to 2 MiB');
  const b = r.aboveRam('fs1 DAX', 1n << 30n, 1n << 30n);
  assert.is(b.guestPhysAddr, 0x1_4000_0000n, 'after the first, at the next 1 GiB');
  assert.throws(() => r.aboveRam('huge', 1n << 40n, 4096n), (e: unknown) => e instanceof ResourceExhaustedError && /huge/.test(e.message) && /fs0 DAX/.test(e.message));
  assert.throws(() => r.aboveRam('odd', 4096n, 3000n), RangeError);
  assert.throws(() => r.aboveRam('empty', 0n, 4096n), RangeError);
});

test('DisposalStack: last made, first released; every release runs when some throw; idempotent', async () => {
  const s = new DisposalStack();
  const log: string[] = [];
  s.defer('a', () => void log.push('a'));
  s.use('b', { dispose: () => void log.push('b') });
  s.defer('c', async () => {
    await new Promise((r) => setTimeout(r, 1));
    log.push('c');
  });
  await s.dispose();
  assert.equal(log, ['c', 'b', 'a']);
  await s.dispose();
  assert.equal(log, ['c', 'b', 'a'], 'a second dispose releases nothing again');
  assert.throws(() => s.defer('late', () => undefined), /after disposal/);

  const t = new DisposalStack();
  const ran: string[] = [];
  t.defer('first', () => void ran.push('first'));
  t.defer('bad one', () => {
    throw new Error('boom');
  });
  t.defer('last', () => void ran.push('last'));
  await t.dispose().then(
    () => assert.unreachable('one release threw'),
    (e: unknown) => assert.ok(e instanceof Error && e.message === 'bad one: boom', String(e)),
  );
  assert.equal(ran, ['last', 'first']);

  const u = new DisposalStack();
  u.defer('x', () => Promise.reject(new Error('one')));
  u.defer('y', () => {
    throw new Error('two');
  });
  await u.dispose().then(
    () => assert.unreachable('two releases threw'),
    (e: unknown) => assert.ok(e instanceof DisposalError && e.errors.length === 2 && /y: two; x: one/.test(e.message), String(e)),
  );
});

test.run();
