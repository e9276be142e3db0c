// What every ACPI table shares: the 36-byte System Description Table header (ACPI 6.5 §5.2.6),
// the checksum rule (all bytes of a table sum to 0 mod 256), and the 12-byte Generic Address
// Structure (§5.2.3.2) the FADT uses to point at registers. All multi-byte fields little-endian.

export const SDT_HEADER_SIZE = 36;
/** OEMID (6 bytes), OEM Table ID prefix and Creator ID of every table tsvmm writes. */
export const OEM_ID = 'TSVMM ';
export const CREATOR_ID = 'TSVM';
export const OEM_REVISION = 1;
export const CREATOR_REVISION = 1;

/** Header field offsets (§5.2.6, Table 5.4). */
export const SDT = {
  signature: 0, // char[4]
  length: 4, // u32, whole table including the header
  revision: 8, // u8
  checksum: 9, // u8
  oemId: 10, // char[6]
  oemTableId: 16, // char[8]
  oemRevision: 24, // u32
  creatorId: 28, // char[4]
  creatorRevision: 32, // u32
} as const;

/** Writes ASCII `s` at `at`, padded with spaces to `width` when given. */
export function putAscii(buf: Uint8Array, at: number, s: string, width = s.length): void {
  if (s.length > width) throw new RangeError(`"${s}" is longer than its ${width}-byte field`);
  for (let i = 0; i < width; i++) buf[at + i] = i < s.length ? s.charCodeAt(i) : 0x20;
}

/** Sum of `bytes` mod 256. */
export function byteSum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}

/** The byte that makes `bytes` (with that byte still 0) sum to 0 mod 256. */
export function checksumByte(bytes: Uint8Array): number {
  return (0x100 - byteSum(bytes)) & 0xff;
}

/**
 * A table of `length` bytes with its header filled in except the checksum; the caller writes the
 * body from offset 36 and then calls sealTable. The OEM Table ID is "TSVM" + the signature.
 */
export function newTable(signature: string, revision: number, length: number): { bytes: Uint8Array; dv: DataView } {
  if (signature.length !== 4) throw new RangeError(`ACPI signature "${signature}" is not 4 characters`);
  const bytes = new Uint8Array(length);
  const dv = new DataView(bytes.buffer);
  putAscii(bytes, SDT.signature, signature);
  dv.setUint32(SDT.length, length, true);
  dv.setUint8(SDT.revision, revision);
  putAscii(bytes, SDT.oemId, OEM_ID, 6);
  putAscii(bytes, SDT.oemTableId, `TSVM${signature}`, 8);
  dv.setUint32(SDT.oemRevision, OEM_REVISION, true);
  putAscii(bytes, SDT.creatorId, CREATOR_ID, 4);
  dv.setUint32(SDT.creatorRevision, CREATOR_REVISION, true);
  return { bytes, dv };
}

/** Sets the header checksum so that the whole table sums to 0. */
export function sealTable(bytes: Uint8Array): Uint8Array {
  bytes[SDT.checksum] = 0;
  bytes[SDT.checksum] = checksumByte(bytes);
  return bytes;
}

export const GAS_SIZE = 12;
/** Address space ids (§5.2.3.2, Table 5.1). */
export const GAS_SYSTEM_MEMORY = 0;
export const GAS_SYSTEM_IO = 1;
/** Access sizes: 1 byte, 2 word, 3 dword, 4 qword. */
export const GAS_ACCESS_BYTE = 1;

export interface GenericAddress {
  spaceId: number;
  bitWidth: number;
  bitOffset: number;
  accessSize: number;
  address: number;
}

/** An 8-bit register at I/O port `port`: the form FADT register fields take. */
export function ioByteRegister(port: number): GenericAddress {
  return { spaceId: GAS_SYSTEM_IO, bitWidth: 8, bitOffset: 0, accessSize: GAS_ACCESS_BYTE, address: port };
}

export function putGas(dv: DataView, at: number, g: GenericAddress): void {
  dv.setUint8(at, g.spaceId);
  dv.setUint8(at + 1, g.bitWidth);
  dv.setUint8(at + 2, g.bitOffset);
  dv.setUint8(at + 3, g.accessSize);
  dv.setBigUint64(at + 4, BigInt(g.address), true);
}
