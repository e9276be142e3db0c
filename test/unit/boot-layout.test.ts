// Memory layout, e820 map, initrd placement, command line and zero page (boot_params) fields.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import {
  BootError,
  buildZeroPage,
  e820Map,
  encodeCmdline,
  firstAddressAboveRam,
  GiB,
  MiB,
  MMIO_GAP_START,
  placeInitrd,
  planInitrd,
  ramLayout,
  virtioMmioSlotAddr,
  writeCmdline,
} from '../../src/boot/index.js';
import { throwsReason } from '../helpers/boot-errors.js';

/** Regions as ramLayout gives them, but with tiny placeholder buffers for the huge ones. */
function fakeRegions(memoryBytes: number): { guestPhysAddr: number; bytes: Uint8Array }[] {
  // e820Map only reads guestPhysAddr and byteLength; a typed-array stand-in avoids allocating GiBs.
  return ramLayout(memoryBytes).map((r) => ({ guestPhysAddr: r.guestPhysAddr, bytes: { byteLength: r.size } as Uint8Array }));
}

test('layout constants are those of design.md', async () => {
  const l = await import('../../src/boot/layout.js');
  assert.is(l.BOOT_GDT_ADDR, 0x500);
  assert.is(l.BOOT_IDT_ADDR, 0x520);
  assert.is(l.ZERO_PAGE_ADDR, 0x7000);
  assert.is(l.PML4_ADDR, 0x9000);
  assert.is(l.PDPT_ADDR, 0xa000);
  assert.is(l.PD_ADDR, 0xb000);
  assert.is(l.CMDLINE_ADDR, 0x20000);
  assert.is(l.MPTABLE_ADDR, 0x9fc00);
  assert.is(l.KERNEL_LOAD_ADDR, 0x100000);
  assert.is(l.MMIO_GAP_START, 0xd0000000);
  assert.is(l.MMIO_GAP_END, 0x100000000);
  assert.is(l.IOAPIC_ADDR, 0xfec00000);
  assert.is(l.LAPIC_ADDR, 0xfee00000);
  // The boot structures do not overlap each other.
  const areas: [string, number, number][] = [
    ['gdt', l.BOOT_GDT_ADDR, 32],
    ['idt', l.BOOT_IDT_ADDR, 8],
    ['zero page', l.ZERO_PAGE_ADDR, l.ZERO_PAGE_SIZE],
    ['page tables', l.PML4_ADDR, 3 * 4096],
    ['cmdline', l.CMDLINE_ADDR, l.CMDLINE_MAX_SIZE],
    ['mptable', l.MPTABLE_ADDR, 0x400],
  ];
  for (const [a, as, al] of areas) {
    for (const [b, bs, bl] of areas) {
      if (a !== b) assert.ok(as + al <= bs || bs + bl <= as, `${a} overlaps ${b}`);
    }
  }
  assert.ok(l.BOOT_STACK_POINTER < l.PML4_ADDR && l.BOOT_STACK_POINTER > l.ZERO_PAGE_ADDR + l.ZERO_PAGE_SIZE);
});

test('virtio-mmio slots are 4 KiB apart from 0xd0000000 and bounded', () => {
  assert.is(virtioMmioSlotAddr(0), 0xd0000000);
  assert.is(virtioMmioSlotAddr(1), 0xd0001000);
  assert.is(virtioMmioSlotAddr(255), 0xd00ff000);
  assert.throws(() => virtioMmioSlotAddr(256), /out of range/);
  assert.throws(() => virtioMmioSlotAddr(-1), /out of range/);
});

test('ramLayout: one region below the gap, two when RAM is larger than the gap start', () => {
  assert.equal(ramLayout(128 * MiB), [{ guestPhysAddr: 0, size: 128 * MiB }]);
  assert.equal(ramLayout(MMIO_GAP_START), [{ guestPhysAddr: 0, size: MMIO_GAP_START }]);
  assert.equal(ramLayout(4 * GiB), [
    { guestPhysAddr: 0, size: 0xd0000000 },
    { guestPhysAddr: 0x100000000, size: 4 * GiB - 0xd0000000 },
  ]);
  assert.is(firstAddressAboveRam(128 * MiB), 0x100000000);
  assert.is(firstAddressAboveRam(8 * GiB), 0x100000000 + 8 * GiB - 0xd0000000);
  assert.throws(() => ramLayout(1 * MiB), /at least 2 MiB/);
  assert.throws(() => ramLayout(128 * MiB + 1), /4 KiB pages/);
});

test('property: ramLayout keeps every byte of RAM, none in the gap', () => {
  fc.assert(
    fc.property(fc.integer({ min: 512, max: 64 * 1024 * 256 }), (pages) => {
      const size = pages * 4096;
      const regions = ramLayout(size);
      assert.is(regions.reduce((n, r) => n + r.size, 0), size);
      for (const r of regions) assert.ok(r.guestPhysAddr + r.size <= MMIO_GAP_START || r.guestPhysAddr >= 0x100000000);
    }),
  );
});

test('e820 for several memory sizes, below and above the gap', () => {
  const low = [
    { addr: 0, size: 0x9fc00, type: 1 },
    { addr: 0x9fc00, size: 0x60400, type: 2 },
  ];
  assert.equal(e820Map(fakeRegions(128 * MiB)), [...low, { addr: 0x100000, size: 127 * MiB, type: 1 }]);
  assert.equal(e820Map(fakeRegions(2 * MiB)), [...low, { addr: 0x100000, size: 1 * MiB, type: 1 }]);
  assert.equal(e820Map(fakeRegions(MMIO_GAP_START)), [...low, { addr: 0x100000, size: MMIO_GAP_START - 0x100000, type: 1 }]);
  assert.equal(e820Map(fakeRegions(4 * GiB)), [
    ...low,
    { addr: 0x100000, size: MMIO_GAP_START - 0x100000, type: 1 },
    { addr: 0x100000000, size: 4 * GiB - MMIO_GAP_START, type: 1 },
  ]);
  assert.equal(e820Map(fakeRegions(64 * GiB)).at(-1), { addr: 0x100000000, size: 64 * GiB - MMIO_GAP_START, type: 1 });
  // From a real GuestMemory too.
  assert.equal(e820Map(GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 4 * MiB }])).length, 3);
  throwsReason(() => e820Map(GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 512 * 1024 }])), 'bad-memory-layout', /first 1 MiB/);
  throwsReason(() => e820Map(GuestMemory.fromSizes([{ guestPhysAddr: 0x100000, size: 4 * MiB }])), 'bad-memory-layout', /no region/);
});

test('initrd: top of low RAM, page-aligned, below initrd_addr_max and the gap, above the kernel', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 64 * MiB }]);
  const initrd = new Uint8Array(0x1234).fill(0x77);
  const p = placeInitrd(m, initrd, 0x7fffffff, 0x1200000);
  assert.equal(p, { addr: 64 * MiB - 0x2000, size: 0x1234 });
  assert.is(p.addr % 4096, 0);
  assert.is(m.readU8(p.addr), 0x77);
  assert.is(m.readU8(p.addr + 0x1233), 0x77);
  // initrd_addr_max lower than RAM: the initrd ends at or below it (it names the last byte).
  assert.is(planInitrd(m, 0x1000, 0x1ffffff, 0x1200000), 0x1fff000);
  assert.is(planInitrd(m, 0x1800, 0x1ffffff, 0x1200000), 0x1ffe000);
  // Exactly fits between the kernel's end and the top.
  assert.is(planInitrd(m, 64 * MiB - 0x1200000, 0x7fffffff, 0x1200000), 0x1200000);
  throwsReason(() => planInitrd(m, 64 * MiB - 0x1200000 + 1, 0x7fffffff, 0x1200000), 'initrd-does-not-fit', /above the kernel's end 0x1200000.*low guest RAM 0x4000000/);
  throwsReason(() => planInitrd(m, 0x1000, 0x11fffff, 0x1200000), 'initrd-does-not-fit', /initrd_addr_max 0x11fffff/);
  throwsReason(() => planInitrd(m, 0, 0x7fffffff), 'bad-initrd', /0 bytes/);
});

test('initrd: with RAM above the gap it stays below 0xd0000000', () => {
  const regions = [
    { guestPhysAddr: 0, bytes: { byteLength: MMIO_GAP_START } as Uint8Array },
    { guestPhysAddr: 0x100000000, bytes: { byteLength: GiB } as Uint8Array },
  ];
  const m = { regionList: regions } as unknown as GuestMemory;
  assert.is(planInitrd(m, 10 * MiB, 0xffffffff, 0x2000000), MMIO_GAP_START - 10 * MiB);
  assert.is(planInitrd(m, 10 * MiB, 0x7fffffff, 0x2000000), 0x80000000 - 10 * MiB);
});

test('property: a placed initrd is aligned, inside [kernelEnd, min(top, addr_max + 1)) or refused', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 32 * MiB }]);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 * MiB }), fc.integer({ min: 0x100000, max: 0xffffffff }), fc.integer({ min: 0, max: 40 * MiB }), (size, max, kernelEnd) => {
      let addr: number;
      try {
        addr = planInitrd(m, size, max, kernelEnd);
      } catch (e) {
        assert.instance(e, BootError);
        return;
      }
      assert.is(addr % 4096, 0);
      assert.ok(addr >= kernelEnd && addr >= 0x100000);
      assert.ok(addr + size <= Math.min(32 * MiB, max + 1));
    }),
  );
});

test('cmdline: NUL-terminated at 0x20000, checked against cmdline_size and the area', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 2 * MiB }]);
  m.fill(0x20000, 64, 0xee);
  const p = writeCmdline(m, 'console=ttyS0 panic=1');
  assert.equal(p, { addr: 0x20000, size: 22 });
  assert.is(Buffer.from(m.slice(0x20000, 21)).toString('latin1'), 'console=ttyS0 panic=1');
  assert.is(m.readU8(0x20000 + 21), 0);
  assert.is(m.readU8(0x20000 + 22), 0xee);
  assert.is(writeCmdline(m, '').size, 1);
  assert.is(encodeCmdline('x'.repeat(2047)).byteLength, 2047);
  throwsReason(() => encodeCmdline('x'.repeat(2048)), 'bad-cmdline', /2048 bytes.*2047/);
  throwsReason(() => encodeCmdline('x'.repeat(300), 255), 'bad-cmdline', /cmdline_size 255/);
  throwsReason(() => encodeCmdline('x'.repeat(0x10000), 0x100000), 'bad-cmdline', /cmdline area at 0x20000/);
  throwsReason(() => encodeCmdline('root=/dev/vda\0init=/bin/sh'), 'bad-cmdline', /NUL byte at offset 13/);
  assert.is(encodeCmdline('é').byteLength, 2, 'UTF-8 bytes are counted');
});

test('zero page (ELF kernel): header fields filled by the loader at their offsets', () => {
  const e820 = e820Map(fakeRegions(4 * GiB));
  const page = buildZeroPage({ cmdline: { addr: 0x20000, size: 30 }, initrd: { addr: 0x1_2345_6000, size: 0x1_0000_1000 }, e820 });
  const dv = new DataView(page.buffer);
  assert.is(page.byteLength, 4096);
  assert.is(dv.getUint16(0x1fe, true), 0xaa55); // boot_flag
  assert.is(dv.getUint32(0x202, true), 0x53726448); // header 'HdrS'
  assert.is(dv.getUint16(0x206, true), 0x020c); // version
  assert.is(dv.getUint8(0x210), 0xff); // type_of_loader
  assert.is(dv.getUint8(0x211), 0x01); // loadflags LOADED_HIGH
  assert.is(dv.getUint32(0x230, true), 0x1000000); // kernel_alignment
  assert.is(dv.getUint32(0x228, true), 0x20000); // cmd_line_ptr
  assert.is(dv.getUint32(0x0c8, true), 0); // ext_cmd_line_ptr
  assert.is(dv.getUint32(0x238, true), 30); // cmdline_size
  // 64-bit ramdisk address/size split into the low field and the ext_ field.
  assert.is(dv.getUint32(0x218, true), 0x2345_6000);
  assert.is(dv.getUint32(0x0c0, true), 1);
  assert.is(dv.getUint32(0x21c, true), 0x1000);
  assert.is(dv.getUint32(0x0c4, true), 1);
  assert.is(dv.getUint8(0x1ef), 0); // sentinel
  assert.is(dv.getUint8(0x1e8), 4); // e820_entries
  e820.forEach((e, i) => {
    const o = 0x2d0 + i * 20;
    assert.is(dv.getBigUint64(o, true), BigInt(e.addr));
    assert.is(dv.getBigUint64(o + 8, true), BigInt(e.size));
    assert.is(dv.getUint32(o + 16, true), e.type);
  });
  assert.is(dv.getUint32(0x2d0 + 4 * 20, true), 0, 'nothing after the last entry');
});

test('zero page (bzImage): the setup header is copied, then the loader fields are set', () => {
  const hdr = new Uint8Array(0x26c - 0x1f1);
  const h = new DataView(hdr.buffer);
  const at = (off: number): number => off - 0x1f1;
  h.setUint8(at(0x1f1), 27); // setup_sects
  h.setUint16(at(0x1fe), 0xaa55, true);
  h.setUint32(at(0x202), 0x53726448, true);
  h.setUint16(at(0x206), 0x020f, true);
  h.setUint8(at(0x210), 0x00);
  h.setUint8(at(0x211), 0x81); // LOADED_HIGH | CAN_USE_HEAP
  h.setUint32(at(0x230), 0x200000, true);
  h.setUint32(at(0x238), 2047, true);
  h.setUint32(at(0x260), 0x2b00000, true);
  const page = buildZeroPage({ setupHeader: hdr, kernelLoadAddr: 0x100000, cmdline: { addr: 0x20000, size: 12 }, e820: [] });
  const dv = new DataView(page.buffer);
  assert.is(dv.getUint8(0x1f1), 27);
  assert.is(dv.getUint16(0x206, true), 0x020f);
  assert.is(dv.getUint8(0x210), 0xff);
  assert.is(dv.getUint8(0x211), 0x81);
  assert.is(dv.getUint32(0x214, true), 0x100000); // code32_start
  assert.is(dv.getUint32(0x230, true), 0x200000);
  assert.is(dv.getUint32(0x260, true), 0x2b00000);
  assert.is(dv.getUint32(0x238, true), 12);
  assert.is(dv.getUint32(0x218, true), 0);
  assert.is(dv.getUint8(0x1e8), 0);
  throwsReason(
    () => buildZeroPage({ cmdline: { addr: 0x20000, size: 1 }, e820: Array.from({ length: 129 }, () => ({ addr: 0, size: 1, type: 1 })) }),
    'bad-memory-layout',
    /129 e820 entries/,
  );
});

test.run();
