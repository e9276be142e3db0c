// The root of the ACPI tables: the RSDP (ACPI 6.5 §5.2.5.3), revision 2, pointing at an XSDT
// (§5.2.8) whose entries are 64-bit table addresses. No RSDT (RsdtAddress 0): every kernel that
// reads revision-2 RSDPs uses the XSDT.
import { checksumByte, newTable, OEM_ID, putAscii, SDT_HEADER_SIZE, sealTable } from './sdt.js';

export const RSDP_SIZE = 36;
/** The first 20 bytes are the ACPI 1.0 structure its first checksum covers. */
export const RSDP_V1_SIZE = 20;
export const RSDP_REVISION = 2;
export const RSDP_SIGNATURE = 'RSD PTR ';

/** RSDP field offsets (§5.2.5.3, Table 5.3). */
export const RSDP = {
  signature: 0, // char[8]
  checksum: 8, // u8, over bytes 0..19
  oemId: 9, // char[6]
  revision: 15, // u8
  rsdtAddress: 16, // u32
  length: 20, // u32
  xsdtAddress: 24, // u64
  extendedChecksum: 32, // u8, over all 36 bytes
} as const;

export function buildRsdp(xsdtAddr: number): Uint8Array {
  const bytes = new Uint8Array(RSDP_SIZE);
  const dv = new DataView(bytes.buffer);
  putAscii(bytes, RSDP.signature, RSDP_SIGNATURE);
  putAscii(bytes, RSDP.oemId, OEM_ID, 6);
  dv.setUint8(RSDP.revision, RSDP_REVISION);
  dv.setUint32(RSDP.rsdtAddress, 0, true);
  dv.setUint32(RSDP.length, RSDP_SIZE, true);
  dv.setBigUint64(RSDP.xsdtAddress, BigInt(xsdtAddr), true);
  bytes[RSDP.checksum] = checksumByte(bytes.subarray(0, RSDP_V1_SIZE));
  bytes[RSDP.extendedChecksum] = checksumByte(bytes);
  return bytes;
}

export const XSDT_REVISION = 1;

export function buildXsdt(entries: readonly number[]): Uint8Array {
  const { bytes, dv } = newTable('XSDT', XSDT_REVISION, SDT_HEADER_SIZE + 8 * entries.length);
  entries.forEach((addr, i) => dv.setBigUint64(SDT_HEADER_SIZE + 8 * i, BigInt(addr), true));
  return sealTable(bytes);
}
