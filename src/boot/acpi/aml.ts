// A small AML encoder (ACPI 6.5 §20, "ACPI Machine Language Specification") for the few objects
// tsvmm's DSDT declares: Name, Scope, Device, Package, Buffer (resource templates), integers,
// strings and EISA ids. Each helper returns the encoded bytes of one term; terms nest by value.
//
//   name('_S5_', pkg([int(5), int(0), int(0), int(0)]))
//     = 08 '_S5_' 12 <PkgLength> 04 0A 05 00 00 00        Name (_S5_, Package () { 5, 0, 0, 0 })

const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const ONES_OP = 0xff;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82; // after ExtOpPrefix
const ROOT_CHAR = 0x5c; // '\'
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;

export const AML = {
  NAME_OP,
  BYTE_PREFIX,
  WORD_PREFIX,
  DWORD_PREFIX,
  STRING_PREFIX,
  QWORD_PREFIX,
  SCOPE_OP,
  BUFFER_OP,
  PACKAGE_OP,
  ZERO_OP,
  ONE_OP,
  ONES_OP,
  EXT_OP_PREFIX,
  DEVICE_OP,
  ROOT_CHAR,
  DUAL_NAME_PREFIX,
  MULTI_NAME_PREFIX,
} as const;

/** Largest value a PkgLength can encode (4 bytes: 4 + 8 + 8 + 8 bits). */
export const MAX_PKG_LENGTH = 0x0fff_ffff;

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * PkgLength for `payload` bytes that follow it (§20.2.4). The encoded length counts the PkgLength
 * bytes themselves. One byte holds up to 63 in bits 0..5; otherwise bits 6..7 of the lead byte
 * say how many bytes follow (1..3), bits 0..3 hold the low nibble and each following byte the
 * next 8 bits.
 */
export function pkgLength(payload: number): Uint8Array {
  if (!Number.isInteger(payload) || payload < 0) throw new RangeError(`bad AML package payload length ${payload}`);
  if (payload + 1 <= 0x3f) return Uint8Array.of(payload + 1);
  for (let follow = 1; follow <= 3; follow++) {
    const total = payload + 1 + follow;
    if (total < 2 ** (4 + 8 * follow)) {
      const out = new Uint8Array(1 + follow);
      out[0] = (follow << 6) | (total & 0x0f);
      for (let i = 1; i <= follow; i++) out[i] = (total >>> (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML package of ${payload} bytes is longer than a PkgLength can encode (${MAX_PKG_LENGTH})`);
}

/** A 4-character NameSeg: a lead character A-Z or '_', then A-Z, 0-9 or '_' (§20.2.2). */
export function nameSeg(seg: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{3}$/.test(seg)) throw new RangeError(`"${seg}" is not an AML NameSeg (4 characters, A-Z 0-9 _, not starting with a digit)`);
  return Uint8Array.from(seg, (c) => c.charCodeAt(0));
}

/** A NameString: optional '\' root prefix, then one, two (DualNamePrefix) or more (MultiNamePrefix) segments joined by '.'. */
export function nameString(path: string): Uint8Array {
  const root = path.startsWith('\\');
  const segs = (root ? path.slice(1) : path).split('.').map(nameSeg);
  const prefix = root ? [ROOT_CHAR] : [];
  if (segs.length === 1) return concat([Uint8Array.from(prefix), ...segs]);
  if (segs.length === 2) return concat([Uint8Array.from([...prefix, DUAL_NAME_PREFIX]), ...segs]);
  if (segs.length > 255) throw new RangeError(`AML name path "${path}" has more than 255 segments`);
  return concat([Uint8Array.from([...prefix, MULTI_NAME_PREFIX, segs.length]), ...segs]);
}

/** An integer constant in its shortest encoding: ZeroOp, OneOp, or Byte/Word/DWord/QWordConst. */
export function int(value: number | bigint): Uint8Array {
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`AML integer ${value} is outside 0..2^64-1`);
  if (v === 0n) return Uint8Array.of(ZERO_OP);
  if (v === 1n) return Uint8Array.of(ONE_OP);
  const le = (bytes: number): number[] => Array.from({ length: bytes }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
  if (v <= 0xffn) return Uint8Array.of(BYTE_PREFIX, ...le(1));
  if (v <= 0xffffn) return Uint8Array.of(WORD_PREFIX, ...le(2));
  if (v <= 0xffff_ffffn) return Uint8Array.of(DWORD_PREFIX, ...le(4));
  return Uint8Array.of(QWORD_PREFIX, ...le(8));
}

/** A String constant: printable ASCII, NUL-terminated. */
export function string(s: string): Uint8Array {
  if (!/^[\x01-\x7f]*$/.test(s)) throw new RangeError(`AML string "${s}" must be ASCII without NUL`);
  return Uint8Array.from([STRING_PREFIX, ...Array.from(s, (c) => c.charCodeAt(0)), 0]);
}

/**
 * EisaId("PNP0501"): three upper-case letters packed 5 bits each into a big-endian 16-bit word,
 * then four hex digits as two bytes, stored as a DWordConst (the ASL EISAID macro).
 */
export function eisaId(id: string): Uint8Array {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`"${id}" is not an EISA id (3 letters A-Z, 4 hex digits)`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = parseInt(id.slice(3), 16);
  return Uint8Array.of(DWORD_PREFIX, vendor >> 8, vendor & 0xff, product >> 8, product & 0xff);
}

/** Name (path, object). */
export function name(path: string, object: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(NAME_OP), nameString(path), object]);
}

/** Package () { elements } with NumElements = elements.length (at most 255). */
export function pkg(elements: readonly Uint8Array[]): Uint8Array {
  if (elements.length > 255) throw new RangeError(`AML Package of ${elements.length} elements: at most 255 (use VarPackage)`);
  const body = concat([Uint8Array.of(elements.length), ...elements]);
  return concat([Uint8Array.of(PACKAGE_OP), pkgLength(body.byteLength), body]);
}

/** Scope (path) { terms }. */
export function scope(path: string, terms: readonly Uint8Array[]): Uint8Array {
  const body = concat([nameString(path), ...terms]);
  return concat([Uint8Array.of(SCOPE_OP), pkgLength(body.byteLength), body]);
}

/** Device (path) { terms }. */
export function device(path: string, terms: readonly Uint8Array[]): Uint8Array {
  const body = concat([nameString(path), ...terms]);
  return concat([Uint8Array.of(EXT_OP_PREFIX, DEVICE_OP), pkgLength(body.byteLength), body]);
}

/** Buffer () { bytes }, its size given as an integer term. */
export function buffer(bytes: Uint8Array): Uint8Array {
  const body = concat([int(bytes.byteLength), bytes]);
  return concat([Uint8Array.of(BUFFER_OP), pkgLength(body.byteLength), body]);
}

// --- Resource descriptors (§6.4), the contents of a _CRS ResourceTemplate ---------------------

/** ResourceTemplate () { descriptors }: a Buffer ending with an End Tag (checksum 0: "treat as correct"). */
export function resourceTemplate(descriptors: readonly Uint8Array[]): Uint8Array {
  return buffer(concat([...descriptors, Uint8Array.of(0x79, 0x00)]));
}

/** IO (Decode16, base, base, 1, length): a fixed range of I/O ports (§6.4.2.5, small item 0x08). */
export function ioPort(base: number, length: number): Uint8Array {
  if (base < 0 || base > 0xffff || length < 1 || length > 0xff) throw new RangeError(`I/O range ${base}+${length} does not fit an IO descriptor`);
  return Uint8Array.of(0x47, 0x01, base & 0xff, base >> 8, base & 0xff, base >> 8, 0x01, length);
}

/** Memory32Fixed (ReadWrite, base, length) (§6.4.3.4, large item 0x06). */
export function memory32Fixed(base: number, length: number): Uint8Array {
  if (base < 0 || length < 1 || base + length > 0x1_0000_0000) throw new RangeError(`memory range ${base}+${length} does not fit a Memory32Fixed descriptor`);
  const out = new Uint8Array(12);
  const dv = new DataView(out.buffer);
  out[0] = 0x86;
  dv.setUint16(1, 9, true);
  out[3] = 0x01; // read-write
  dv.setUint32(4, base, true);
  dv.setUint32(8, length, true);
  return out;
}

/**
 * Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }: the Extended Interrupt
 * descriptor (§6.4.3.6, large item 0x09), which names a GSI directly (any number, not just 0..15).
 */
export function interrupt(gsi: number): Uint8Array {
  const out = new Uint8Array(9);
  const dv = new DataView(out.buffer);
  out[0] = 0x89;
  dv.setUint16(1, 6, true);
  out[3] = 0x01 | 0x02; // bit 0 consumer, bit 1 edge-triggered; active-high, exclusive, not wake-capable
  out[4] = 1; // interrupt table length
  dv.setUint32(5, gsi, true);
  return out;
}
