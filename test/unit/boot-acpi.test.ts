// ACPI tables (ACPI 6.5 §5.2): RSDP, XSDT, FADT, MADT, DSDT with its AML, where setupBoot puts
// them, and boot_params.acpi_rsdp_addr. The tables are read back the way a kernel reads them:
// scan for the RSDP, follow the addresses, check every length and checksum, decode the AML.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { buildAcpiTables, buildZeroPage, MiB, setupBoot, type AcpiDevices } from '../../src/boot/index.js';
import { int, nameSeg, nameString, pkgLength, eisaId } from '../../src/boot/acpi/aml.js';
import { buildDsdt, dsdtAml } from '../../src/boot/acpi/dsdt.js';
import { elfKernel } from '../helpers/elf-kernel.js';
import { throwsReason } from '../helpers/boot-errors.js';

const AREA_START = 0xe0000;
const AREA_END = 0x100000;

function sum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}
const ascii = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

/** Linux's acpi_scan_for_rsdp (and ACPICA's acpi_tb_scan_memory_for_rsdp): 16-byte steps, signature, both checksums. */
function scanForRsdp(m: GuestMemory): number | undefined {
  for (let a = AREA_START; a < AREA_END; a += 16) {
    if (ascii(m.slice(a, 8)) !== 'RSD PTR ') continue;
    if (sum(m.slice(a, 20)) !== 0) continue;
    if (m.readU8(a + 15) >= 2 && sum(m.slice(a, m.readU32(a + 20))) !== 0) continue;
    return a;
  }
  return undefined;
}

interface Sdt {
  addr: number;
  signature: string;
  length: number;
  revision: number;
  body: Uint8Array;
  bytes: Uint8Array;
}

/** A table at `addr`: header fields, and its bytes checked to sum to 0 (§5.2.6). */
function table(m: GuestMemory, addr: number): Sdt {
  const length = m.readU32(addr + 4);
  assert.ok(length >= 36 && length < 0x10000, `sane length ${length} at 0x${addr.toString(16)}`);
  const bytes = m.slice(addr, length);
  const signature = ascii(bytes.subarray(0, 4));
  assert.is(sum(bytes), 0, `${signature} checksum`);
  assert.is(ascii(bytes.subarray(10, 16)), 'TSVMM ', `${signature} OEMID`);
  assert.is(ascii(bytes.subarray(16, 24)), `TSVM${signature}`, `${signature} OEM table id`);
  assert.is(ascii(bytes.subarray(28, 32)), 'TSVM', `${signature} creator id`);
  assert.ok(addr >= AREA_START && addr + length <= AREA_END, `${signature} inside the BIOS area`);
  return { addr, signature, length, revision: bytes[8] as number, body: bytes.subarray(36), bytes };
}

interface Walk {
  rsdp: number;
  xsdt: Sdt;
  fadt: Sdt;
  madt: Sdt;
  dsdt: Sdt;
}

/** RSDP -> XSDT -> FADT (-> DSDT) and MADT, as acpi_tb_parse_root_table does. */
function walk(m: GuestMemory): Walk {
  const rsdp = scanForRsdp(m);
  assert.ok(rsdp !== undefined, 'an RSDP is found by scanning 0xe0000..0xfffff');
  assert.is(rsdp % 16, 0);
  assert.is(m.readU8(rsdp + 15), 2, 'RSDP revision 2');
  assert.is(m.readU32(rsdp + 16), 0, 'no RSDT');
  assert.is(m.readU32(rsdp + 20), 36, 'RSDP length');
  assert.is(ascii(m.slice(rsdp + 9, 6)), 'TSVMM ');
  const xsdt = table(m, Number(m.readU64(rsdp + 24)));
  assert.is(xsdt.signature, 'XSDT');
  assert.is(xsdt.revision, 1);
  assert.is((xsdt.length - 36) % 8, 0);
  const entries = Array.from({ length: (xsdt.length - 36) / 8 }, (_, i) => table(m, Number(m.readU64(xsdt.addr + 36 + 8 * i))));
  assert.equal(entries.map((t) => t.signature), ['FACP', 'APIC']);
  const [fadt, madt] = entries as [Sdt, Sdt];
  const dsdt = table(m, Number(m.readU64(fadt.addr + 140)));
  assert.is(dsdt.signature, 'DSDT');
  return { rsdp, xsdt, fadt, madt, dsdt };
}

function mem(size = 4 * MiB): GuestMemory {
  return GuestMemory.fromSizes([{ guestPhysAddr: 0, size }]);
}

function written(cpus: number, devices?: AcpiDevices): GuestMemory {
  const m = mem();
  for (const t of buildAcpiTables({ cpus, ioapicId: cpus, ...(devices ? { devices } : {}) }).tables) m.write(t.addr, t.bytes);
  return m;
}

// ---------------------------------------------------------------------------------------------
// A small AML decoder for what the DSDT holds (§20.2): enough to read the tables back.

type AmlValue =
  | { kind: 'int'; value: bigint }
  | { kind: 'string'; value: string }
  | { kind: 'package'; elements: AmlValue[] }
  | { kind: 'buffer'; bytes: Uint8Array };
type AmlTerm =
  | { op: 'name'; name: string; value: AmlValue }
  | { op: 'scope' | 'device'; name: string; terms: AmlTerm[] };

class AmlReader {
  private p = 0;
  constructor(private readonly b: Uint8Array) {}
  get done(): boolean {
    return this.p >= this.b.byteLength;
  }
  private u8(): number {
    if (this.p >= this.b.byteLength) throw new Error('AML ends in the middle of a term');
    return this.b[this.p++] as number;
  }
  /** Returns the end offset of the package. */
  pkgEnd(): number {
    const start = this.p;
    const lead = this.u8();
    const follow = lead >> 6;
    if (follow === 0) return start + (lead & 0x3f);
    assert.is(lead & 0x30, 0, 'PkgLength lead byte bits 4..5 are zero when bytes follow');
    let len = lead & 0x0f;
    for (let i = 0; i < follow; i++) len |= this.u8() << (4 + 8 * i);
    return start + len;
  }
  name(): string {
    let prefix = '';
    if (this.b[this.p] === 0x5c) {
      this.p++;
      prefix = '\\';
    }
    let count = 1;
    if (this.b[this.p] === 0x2e) {
      this.p++;
      count = 2;
    } else if (this.b[this.p] === 0x2f) {
      this.p++;
      count = this.u8();
    }
    const segs: string[] = [];
    for (let i = 0; i < count; i++) segs.push(String.fromCharCode(this.u8(), this.u8(), this.u8(), this.u8()));
    return prefix + segs.join('.');
  }
  value(): AmlValue {
    const op = this.u8();
    const le = (n: number): bigint => {
      let v = 0n;
      for (let i = 0; i < n; i++) v |= BigInt(this.u8()) << BigInt(8 * i);
      return v;
    };
    switch (op) {
      case 0x00:
        return { kind: 'int', value: 0n };
      case 0x01:
        return { kind: 'int', value: 1n };
      case 0x0a:
        return { kind: 'int', value: le(1) };
      case 0x0b:
        return { kind: 'int', value: le(2) };
      case 0x0c:
        return { kind: 'int', value: le(4) };
      case 0x0e:
        return { kind: 'int', value: le(8) };
      case 0x0d: {
        let s = '';
        for (let c = this.u8(); c !== 0; c = this.u8()) s += String.fromCharCode(c);
        return { kind: 'string', value: s };
      }
      case 0x12: {
        const end = this.pkgEnd();
        const n = this.u8();
        const elements: AmlValue[] = [];
        while (this.p < end) elements.push(this.value());
        assert.is(this.p, end, 'package ends where its PkgLength says');
        assert.is(elements.length, n, 'NumElements');
        return { kind: 'package', elements };
      }
      case 0x11: {
        const end = this.pkgEnd();
        const size = this.value();
        assert.is(size.kind, 'int');
        const bytes = this.b.slice(this.p, end);
        assert.is(BigInt(bytes.byteLength), (size as { value: bigint }).value, 'BufferSize');
        this.p = end;
        return { kind: 'buffer', bytes };
      }
      default:
        throw new Error(`unexpected AML data opcode 0x${op.toString(16)} at ${this.p - 1}`);
    }
  }
  terms(end = this.b.byteLength): AmlTerm[] {
    const out: AmlTerm[] = [];
    while (this.p < end) {
      const op = this.u8();
      if (op === 0x08) {
        out.push({ op: 'name', name: this.name(), value: this.value() });
      } else if (op === 0x10) {
        const e = this.pkgEnd();
        out.push({ op: 'scope', name: this.name(), terms: this.terms(e) });
      } else if (op === 0x5b && this.b[this.p] === 0x82) {
        this.p++;
        const e = this.pkgEnd();
        out.push({ op: 'device', name: this.name(), terms: this.terms(e) });
      } else {
        throw new Error(`unexpected AML opcode 0x${op.toString(16)} at ${this.p - 1}`);
      }
    }
    assert.is(this.p, end, 'terms end where the enclosing PkgLength says');
    return out;
  }
}

function decodeAml(bytes: Uint8Array): AmlTerm[] {
  return new AmlReader(bytes).terms();
}

const named = (terms: AmlTerm[], n: string): AmlTerm | undefined => terms.find((t) => t.name === n);
const nameValue = (terms: AmlTerm[], n: string): AmlValue => {
  const t = named(terms, n);
  assert.ok(t && t.op === 'name', `Name ${n}`);
  return (t as { value: AmlValue }).value;
};

/** Resource descriptors of a _CRS buffer (§6.4): [tag, body] until the End Tag, whose position is checked. */
function resources(buf: Uint8Array): { tag: number; body: Uint8Array }[] {
  const out: { tag: number; body: Uint8Array }[] = [];
  let p = 0;
  for (;;) {
    const b = buf[p] as number;
    if (b & 0x80) {
      const len = (buf[p + 1] as number) | ((buf[p + 2] as number) << 8);
      out.push({ tag: b, body: buf.subarray(p + 3, p + 3 + len) });
      p += 3 + len;
    } else {
      const len = b & 0x07;
      if (b >> 3 === 0x0f) {
        assert.is(p + 2, buf.byteLength, 'End Tag is the last descriptor');
        return out;
      }
      out.push({ tag: b, body: buf.subarray(p + 1, p + 1 + len) });
      p += 1 + len;
    }
  }
}

// ---------------------------------------------------------------------------------------------

for (const cpus of [1, 2, 4, 64, 254]) {
  test(`ACPI for ${cpus} vCPU(s): RSDP found by scan, every table's length and checksum, MADT per vCPU`, () => {
    const m = written(cpus);
    const w = walk(m);
    assert.is(w.rsdp, 0xe0000);
    // MADT (§5.2.12)
    assert.is(w.madt.revision, 6);
    assert.is(m.readU32(w.madt.addr + 36), 0xfee00000, 'local APIC address');
    assert.is(m.readU32(w.madt.addr + 40), 1, 'flags: PCAT_COMPAT');
    const lapics: { uid: number; id: number; flags: number }[] = [];
    const ioapics: { id: number; addr: number; gsiBase: number }[] = [];
    const nmis: { uid: number; flags: number; lint: number }[] = [];
    let p = w.madt.addr + 44;
    const end = w.madt.addr + w.madt.length;
    while (p < end) {
      const type = m.readU8(p);
      const len = m.readU8(p + 1);
      if (type === 0) {
        assert.is(len, 8);
        lapics.push({ uid: m.readU8(p + 2), id: m.readU8(p + 3), flags: m.readU32(p + 4) });
      } else if (type === 1) {
        assert.is(len, 12);
        ioapics.push({ id: m.readU8(p + 2), addr: m.readU32(p + 4), gsiBase: m.readU32(p + 8) });
      } else if (type === 4) {
        assert.is(len, 6);
        nmis.push({ uid: m.readU8(p + 2), flags: m.readU16(p + 3), lint: m.readU8(p + 5) });
      } else {
        assert.unreachable(`unexpected MADT entry type ${type}`);
      }
      p += len;
    }
    assert.is(p, end, 'entries end exactly at the table length');
    assert.equal(lapics, Array.from({ length: cpus }, (_, i) => ({ uid: i, id: i, flags: 1 })));
    assert.equal(ioapics, [{ id: cpus, addr: 0xfec00000, gsiBase: 0 }], 'the MP table IOAPIC id');
    assert.equal(nmis, [{ uid: 0xff, flags: 0, lint: 1 }]);
  });
}

test('FADT: revision 6.5, hardware-reduced, X_DSDT, sleep and reset registers in I/O space, boot flags', () => {
  const m = written(1);
  const { fadt, dsdt } = walk(m);
  const f = fadt.addr;
  assert.is(fadt.length, 276);
  assert.is(fadt.revision, 6);
  assert.is(m.readU8(f + 131) & 0x0f, 5, 'FADT minor version 5');
  assert.is(m.readU32(f + 36), 0, 'no FACS');
  assert.is(m.readU32(f + 40), 0, '32-bit DSDT unused');
  assert.is(m.readU64(f + 132), 0n, 'no X_FIRMWARE_CTRL');
  assert.is(Number(m.readU64(f + 140)), dsdt.addr, 'X_DSDT');
  const flags = m.readU32(f + 112);
  assert.ok(flags & (1 << 20), 'HW_REDUCED_ACPI');
  assert.ok(flags & (1 << 4) && flags & (1 << 5), 'no fixed power/sleep buttons');
  assert.ok(flags & (1 << 10), 'RESET_REG_SUP');
  assert.is(flags & ~((1 << 20) | (1 << 4) | (1 << 5) | (1 << 10)), 0, 'no other flags');
  const boot = m.readU16(f + 109);
  assert.ok(boot & (1 << 1), 'an 8042 at 0x60/0x64');
  assert.ok(boot & (1 << 0), 'legacy devices (the UART)');
  assert.ok(boot & (1 << 2), 'no VGA');
  assert.ok(boot & (1 << 3), 'no MSI');
  assert.ok(boot & (1 << 5), 'no CMOS RTC');
  assert.is(boot & (1 << 4), 0, 'ASPM bit clear');
  const gas = (at: number): number[] => [m.readU8(at), m.readU8(at + 1), m.readU8(at + 2), m.readU8(at + 3), Number(m.readU64(at + 4))];
  assert.equal(gas(f + 244), [1, 8, 0, 1, 0x600], 'SLEEP_CONTROL_REG: system I/O, 8 bits at 0x600');
  assert.equal(gas(f + 256), [1, 8, 0, 1, 0x601], 'SLEEP_STATUS_REG');
  assert.equal(gas(f + 116), [1, 8, 0, 1, 0x602], 'RESET_REG');
  assert.is(m.readU8(f + 128), 1, 'RESET_VALUE');
  for (let o = 148; o < 244; o++) assert.is(m.readU8(f + o), 0, `X_PM/GPE blocks empty (byte ${o})`);
  for (let o = 56; o < 96; o++) assert.is(m.readU8(f + o), 0, `PM/GPE blocks empty (byte ${o})`);
  assert.is(ascii(m.slice(f + 268, 8)), 'TSVMMKVM');
});

test('DSDT: \\_S5_ is Package { 5, 0, 0, 0 }; a UART and each virtio-mmio slot with their resources', () => {
  const devices: AcpiDevices = {
    serial: [{ port: 0x3f8, length: 8, gsi: 4 }],
    virtioMmio: [
      { base: 0xd0000000, size: 0x1000, gsi: 5 },
      { base: 0xd0001000, size: 0x1000, gsi: 6 },
    ],
  };
  const { dsdt } = walk(written(2, devices));
  assert.is(dsdt.revision, 2, '64-bit AML integers');
  const terms = decodeAml(dsdt.body);
  assert.equal(nameValue(terms, '\\_S5_'), {
    kind: 'package',
    elements: [5n, 0n, 0n, 0n].map((value) => ({ kind: 'int', value })),
  });
  const sb = named(terms, '\\_SB_');
  assert.ok(sb && sb.op === 'scope');
  const devs = (sb as { terms: AmlTerm[] }).terms;
  assert.equal(devs.map((d) => `${d.op} ${d.name}`), ['device COM0', 'device V000', 'device V001']);
  const body = (i: number): AmlTerm[] => (devs[i] as { terms: AmlTerm[] }).terms;
  // COM0: EisaId("PNP0501") = 0x0105d041; IO (Decode16, 0x3f8, 0x3f8, 1, 8); Interrupt {4}
  assert.equal(nameValue(body(0), '_HID'), { kind: 'int', value: 0x0105d041n });
  assert.equal(nameValue(body(0), '_UID'), { kind: 'int', value: 0n });
  const com = resources((nameValue(body(0), '_CRS') as { bytes: Uint8Array }).bytes);
  assert.equal(com.map((r) => r.tag), [0x47, 0x89]);
  assert.equal(Array.from(com[0]?.body ?? []), [0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]);
  assert.equal(Array.from(com[1]?.body ?? []), [0x03, 1, 4, 0, 0, 0], 'consumer, edge, active-high, exclusive, GSI 4');
  for (const [i, v] of (devices.virtioMmio ?? []).entries()) {
    assert.equal(nameValue(body(1 + i), '_HID'), { kind: 'string', value: 'LNRO0005' });
    assert.equal(nameValue(body(1 + i), '_UID'), { kind: 'int', value: BigInt(i) });
    const crs = resources((nameValue(body(1 + i), '_CRS') as { bytes: Uint8Array }).bytes);
    assert.equal(crs.map((r) => r.tag), [0x86, 0x89]);
    const mem32 = new DataView(crs[0]?.body.buffer as ArrayBuffer, crs[0]?.body.byteOffset, 9);
    assert.is(mem32.getUint8(0), 1, 'read-write');
    assert.is(mem32.getUint32(1, true), v.base);
    assert.is(mem32.getUint32(5, true), v.size);
    const irq = new DataView(crs[1]?.body.buffer as ArrayBuffer, crs[1]?.body.byteOffset, 6);
    assert.is(irq.getUint32(2, true), v.gsi);
  }
});

test('DSDT without devices holds only \\_S5_; the S5 value is what the sleep device expects', () => {
  const aml = dsdtAml(5);
  // NameOp '\' '_S5_' PackageOp PkgLength(7: itself + 6 bytes) NumElements(4) BytePrefix 5, Zero x3
  assert.equal(Array.from(aml), [0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00]);
  const t = buildDsdt(5);
  assert.is(t.byteLength, 36 + aml.byteLength);
  assert.is(sum(t), 0);
});

test('AML encoders: PkgLength at its boundaries, integers, names, EISA ids', () => {
  const decodeLen = (b: Uint8Array): number => {
    const lead = b[0] as number;
    const follow = lead >> 6;
    if (follow === 0) return lead & 0x3f;
    let len = lead & 0x0f;
    for (let i = 0; i < follow; i++) len |= (b[1 + i] as number) << (4 + 8 * i);
    return len;
  };
  for (const [payload, bytes] of [[0, 1], [62, 1], [63, 2], [4093, 2], [4094, 3], [(1 << 20) - 4, 3], [(1 << 20) - 3, 4], [(1 << 28) - 5, 4]] as const) {
    const enc = pkgLength(payload);
    assert.is(enc.byteLength, bytes, `payload ${payload}`);
    assert.is(decodeLen(enc), payload + bytes, `payload ${payload}: the length counts the PkgLength bytes`);
  }
  assert.throws(() => pkgLength((1 << 28) - 4), /longer than a PkgLength/);
  assert.equal(Array.from(int(0)), [0x00]);
  assert.equal(Array.from(int(1)), [0x01]);
  assert.equal(Array.from(int(2)), [0x0a, 2]);
  assert.equal(Array.from(int(0x1234)), [0x0b, 0x34, 0x12]);
  assert.equal(Array.from(int(0xd0000000)), [0x0c, 0, 0, 0, 0xd0]);
  assert.equal(Array.from(int(0x1_0000_0000n)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(Array.from(nameString('\\_SB_.COM0')), [0x5c, 0x2e, ...Buffer.from('_SB_COM0')]);
  assert.equal(Array.from(nameString('A___.B___.C___')), [0x2f, 3, ...Buffer.from('A___B___C___')]);
  assert.throws(() => nameSeg('_S5'), /NameSeg/);
  assert.throws(() => nameSeg('1ABC'), /NameSeg/);
  assert.equal(Array.from(eisaId('PNP0501')), [0x0c, 0x41, 0xd0, 0x05, 0x01]);
  assert.equal(Array.from(eisaId('PNP0A03')), [0x0c, 0x41, 0xd0, 0x0a, 0x03]);
});

test('setupBoot writes the tables at 0xe0000 and sets boot_params.acpi_rsdp_addr (0x070)', () => {
  const m = mem(64 * MiB);
  const boot = setupBoot(m, {
    kernel: elfKernel([0xf4]),
    cmdline: 'console=ttyS0',
    vcpus: 4,
    acpiDevices: { serial: [{ port: 0x3f8, length: 8, gsi: 4 }], virtioMmio: [{ base: 0xd0000000, size: 0x1000, gsi: 5 }] },
  });
  assert.is(boot.acpi.rsdpAddr, 0xe0000);
  assert.is(m.readU64(0x7000 + 0x70), 0xe0000n, 'acpi_rsdp_addr');
  const w = walk(m);
  assert.is(w.rsdp, Number(m.readU64(0x7000 + 0x70)));
  assert.is((w.madt.length - 44 - 12 - 6) / 8, 4, 'one local APIC per vCPU');
  assert.is(m.readU8(w.madt.addr + 44 + 4 * 8 + 2), boot.mptable.ioapicId, 'MADT and MP table agree on the IOAPIC id');
  assert.equal(decodeAml(w.dsdt.body).map((t) => t.name), ['\\_S5_', '\\_SB_']);
  // Still the MP table, for acpi=off.
  assert.is(m.readU32(0x9fc00), 0x5f504d5f);
  // The tables lie in the e820-reserved area.
  const reserved = boot.e820.find((e) => e.addr <= 0xe0000 && e.addr + e.size >= 0x100000);
  assert.is(reserved?.type, 2);
});

test('zero page: acpi_rsdp_addr is written only when given', () => {
  const base = { cmdline: { addr: 0x20000, size: 1 }, e820: [] };
  const dv = (p: Uint8Array): DataView => new DataView(p.buffer);
  assert.is(dv(buildZeroPage(base)).getBigUint64(0x70, true), 0n);
  assert.is(dv(buildZeroPage({ ...base, acpiRsdpAddr: 0xe0000 })).getBigUint64(0x70, true), 0xe0000n);
});

test('tables that do not fit the BIOS area are a typed error, and setupBoot then writes nothing', () => {
  const many = { virtioMmio: Array.from({ length: 1000 }, (_, i) => ({ base: 0xd0000000 + i * 0x1000, size: 0x1000, gsi: 5 + (i % 19) })) };
  // 1000 devices of ~70 bytes fit; the DSDT's naming limit is what stops more.
  assert.ok(buildAcpiTables({ cpus: 254, ioapicId: 254, devices: many }).end <= AREA_END);
  const tooMany = { virtioMmio: Array.from({ length: 1001 }, () => ({ base: 0xd0000000, size: 0x1000, gsi: 5 })) };
  throwsReason(() => buildAcpiTables({ cpus: 1, ioapicId: 1, devices: tooMany }), 'acpi-does-not-fit', /at most 1000/);
  const badPort = { serial: [{ port: 0x10000, length: 8, gsi: 4 }] };
  throwsReason(() => buildAcpiTables({ cpus: 1, ioapicId: 1, devices: badPort }), 'acpi-does-not-fit', /IO descriptor/);
  throwsReason(() => buildAcpiTables({ cpus: 255, ioapicId: 255 }), 'bad-vcpu-count');
  throwsReason(() => buildAcpiTables({ cpus: 0, ioapicId: 0 }), 'bad-vcpu-count');
  throwsReason(() => buildAcpiTables({ cpus: 4, ioapicId: 2 }), 'bad-vcpu-count', /IOAPIC id 2/);
  const m = mem(64 * MiB);
  throwsReason(() => setupBoot(m, { kernel: elfKernel([0xf4]), cmdline: '', vcpus: 1, acpiDevices: tooMany }), 'acpi-does-not-fit');
  assert.ok(m.slice(0, 2 * MiB).every((b) => b === 0), 'nothing written');
});

test('property: for any vCPU count and device list the tables are consistent and fit', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 254 }),
      fc.array(fc.record({ slot: fc.integer({ min: 0, max: 255 }), gsi: fc.integer({ min: 0, max: 23 }) }), { maxLength: 40 }),
      fc.integer({ min: 0, max: 4 }),
      (cpus, virtio, serials) => {
        const devices: AcpiDevices = {
          serial: Array.from({ length: serials }, (_, i) => ({ port: 0x3f8 - i * 0x100, length: 8, gsi: 4 })),
          virtioMmio: virtio.map((v) => ({ base: 0xd0000000 + v.slot * 0x1000, size: 0x1000, gsi: v.gsi })),
        };
        const t = buildAcpiTables({ cpus, ioapicId: cpus, devices });
        const sorted = [...t.tables].sort((a, b) => a.addr - b.addr);
        for (let i = 1; i < sorted.length; i++) {
          const prev = sorted[i - 1] as { addr: number; bytes: Uint8Array };
          assert.ok(prev.addr + prev.bytes.byteLength <= (sorted[i] as { addr: number }).addr, 'no overlap');
        }
        for (const x of t.tables) {
          assert.is(x.addr % 16, 0);
          if (x.signature !== 'RSD PTR ') {
            assert.is(sum(x.bytes), 0);
            assert.is(new DataView(x.bytes.buffer).getUint32(4, true), x.bytes.byteLength);
          }
        }
        const m = mem();
        for (const x of t.tables) m.write(x.addr, x.bytes);
        const w = walk(m);
        const terms = decodeAml(w.dsdt.body);
        const sb = named(terms, '\\_SB_') as { terms: AmlTerm[] } | undefined;
        assert.is(sb?.terms.length ?? 0, serials + virtio.length);
      },
    ),
    { numRuns: 60 },
  );
});

test.run();
