// One virtio-blk request, parsed from one descriptor chain (virtio 1.2 §5.2.6):
//
//   struct virtio_blk_req {
//     le32 type; le32 reserved; le64 sector;   // device-readable header, 16 bytes
//     u8 data[];                                // readable (OUT, DISCARD, WRITE_ZEROES) or writable (IN, GET_ID)
//     u8 status;                                // device-writable: the LAST byte of the writable side
//   };
//
// Parsing is pure: it reads the header and segments out of guest memory, validates them against
// the disk, and returns either an operation for the backend (with zero-copy views of the data
// buffers) or the status the request must get without touching the backend. Nothing here throws
// on guest input.

import type { DescriptorChain } from '../chain.js';
import {
  MAX_DISCARD_SECTORS,
  MAX_DISCARD_SEG,
  MAX_WRITE_ZEROES_SECTORS,
  MAX_WRITE_ZEROES_SEG,
  SECTOR_SIZE,
  VIRTIO_BLK_ID_BYTES,
} from './config.js';

/** Request types (§5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_T_SECURE_ERASE = 14;

/** Status values (§5.2.6). */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
export type BlockStatus = typeof VIRTIO_BLK_S_OK | typeof VIRTIO_BLK_S_IOERR | typeof VIRTIO_BLK_S_UNSUPP;

/** sizeof the request header: le32 type, le32 reserved, le64 sector. */
export const REQ_HEADER_SIZE = 16;
/** struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags (§5.2.6). */
export const SEGMENT_SIZE = 16;
/** flags bit 0: unmap (WRITE_ZEROES may deallocate); every other bit is reserved. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** What parsing needs to know about the disk and the negotiated features. */
export interface RequestLimits {
  /** Disk size in 512-byte sectors (exact as a Number: a capacity is below 2^53 / 512). */
  readonly capacity: number;
  readonly readOnly: boolean;
  /** VIRTIO_BLK_F_DISCARD offered and negotiated. */
  readonly discard: boolean;
  /** VIRTIO_BLK_F_WRITE_ZEROES offered and negotiated. */
  readonly writeZeroes: boolean;
}

/** A byte range of the image. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** The backend work a valid request asks for. */
export type BlockOp =
  /** IN: read `length` bytes at `offset` into `buffers` (views of guest memory). */
  | { readonly kind: 'read'; readonly offset: number; readonly length: number; readonly buffers: Uint8Array[] }
  /** OUT: write `buffers` (views of guest memory, `length` bytes) at `offset`. */
  | { readonly kind: 'write'; readonly offset: number; readonly length: number; readonly buffers: Uint8Array[] }
  | { readonly kind: 'flush' }
  /** GET_ID: copy the serial into the first 20 writable bytes. */
  | { readonly kind: 'get-id' }
  | { readonly kind: 'discard'; readonly ranges: ByteRange[] }
  | { readonly kind: 'write-zeroes'; readonly ranges: ByteRange[] };

/** A request whose header was readable and which has a status byte. */
export interface ParsedRequest {
  readonly head: number;
  /** The type field as the guest wrote it (-1 when the header was short). */
  readonly type: number;
  /** Bytes on the writable side; the status byte is the last of them. */
  readonly writableLength: number;
  /** The backend work; undefined when the request is answered with `status` at once. */
  readonly op: BlockOp | undefined;
  /** For op === undefined: the status to answer, and why (for logs and metrics). */
  readonly status: BlockStatus;
  readonly reason: string;
}

/** A chain with no device-writable byte: no status can be written, only the chain returned (len 0). */
export interface UnusableRequest {
  readonly head: number;
  readonly unusable: true;
  readonly reason: string;
}

export type ParseResult = ParsedRequest | UnusableRequest;

export function isUnusable(r: ParseResult): r is UnusableRequest {
  return 'unusable' in r;
}

function answer(head: number, type: number, writableLength: number, status: BlockStatus, reason: string): ParsedRequest {
  return { head, type, writableLength, op: undefined, status, reason };
}

// The data buffers of IN and OUT, when the header and the status byte are descriptors of their
// own, as Linux sends them: the chain's own views (one array copy, no view per buffer). Their
// lengths add up by construction: writableLength - 1 and readableLength - 16.

/** IN: the writable views before the status byte, if it is a descriptor of its own. */
function viewsBeforeStatus(writable: readonly Uint8Array[]): Uint8Array[] | undefined {
  return writable[writable.length - 1]?.byteLength === 1 ? writable.slice(0, -1) : undefined;
}

/** OUT: the readable views after the header, if it is a descriptor of its own. */
function viewsAfterHeader(readable: readonly Uint8Array[]): Uint8Array[] | undefined {
  return readable[0]?.byteLength === REQ_HEADER_SIZE ? readable.slice(1) : undefined;
}

/** The little-endian u32 at `at` of `b` (b.byteLength >= at + 4). */
function le32(b: Uint8Array, at: number): number {
  return ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)) >>> 0;
}

/**
 * A le64 sector number, given as its low and high 32 bits, as a Number. Exact below 2^44 (2^53
 * bytes); a larger one, beyond any disk, is clamped to MAX_SAFE_INTEGER, so that it fails
 * inside() and the arithmetic on it stays exact.
 */
function sectorNumber(lo: number, hi: number): number {
  return hi >= 1 << 12 ? Number.MAX_SAFE_INTEGER : hi * 0x1_0000_0000 + lo;
}

/** The sector as the guest wrote it, for messages. */
function sectorText(lo: number, hi: number): string {
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** Whether [sector, sector + sectors) lies inside the disk; sectors is a count (>= 0). */
function inside(sector: number, sectors: number, capacity: number): boolean {
  return sector <= capacity && sectors <= capacity - sector;
}

/** Parses and validates one request (§5.2.6, §5.2.6.1, §5.2.6.2). Never throws on guest input. */
export function parseRequest(chain: DescriptorChain, limits: RequestLimits): ParseResult {
  const head = chain.head;
  const writableLength = chain.writableLength;
  if (writableLength === 0) {
    return { head, unusable: true, reason: `request at head ${head} has no device-writable byte for its status (§5.2.6)` };
  }
  if (chain.readableLength < REQ_HEADER_SIZE) {
    return answer(head, -1, writableLength, VIRTIO_BLK_S_IOERR, `request at head ${head}: header of ${chain.readableLength} readable bytes, ${REQ_HEADER_SIZE} needed`);
  }
  const reader = chain.reader();
  // The header is normally a descriptor of its own (Linux's is): read it in place; a header
  // split across descriptors is gathered first.
  const first = chain.readable[0] as Uint8Array; // readableLength >= 16: there is one
  let header = first;
  if (first.byteLength >= REQ_HEADER_SIZE) {
    reader.skip(REQ_HEADER_SIZE);
  } else {
    header = new Uint8Array(REQ_HEADER_SIZE);
    reader.read(header);
  }
  const type = le32(header, 0);
  const sectorLo = le32(header, 8);
  const sectorHi = le32(header, 12);
  const sector = sectorNumber(sectorLo, sectorHi);
  const dataIn = writableLength - 1; // writable bytes before the status byte
  const dataOut = reader.remaining; // readable bytes after the header
  const where = `request at head ${head} (type ${type})`;

  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const isRead = type === VIRTIO_BLK_T_IN;
      const length = isRead ? dataIn : dataOut;
      if (!isRead && limits.readOnly) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${where}: write to a read-only disk (VIRTIO_BLK_F_RO, §5.2.6.2)`);
      }
      if (length % SECTOR_SIZE !== 0) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${where}: data length ${length} is not a multiple of ${SECTOR_SIZE} (§5.2.6.1)`);
      }
      const sectors = length / SECTOR_SIZE;
      if (!inside(sector, sectors, limits.capacity)) {
        return answer(
          head,
          type,
          writableLength,
          VIRTIO_BLK_S_IOERR,
          `${where}: sectors [${sectorText(sectorLo, sectorHi)}, +${sectors}) are beyond the capacity of ${limits.capacity} sectors`,
        );
      }
      const offset = sector * SECTOR_SIZE; // exact: sector <= capacity < 2^53 / 512
      const buffers = isRead ? (viewsBeforeStatus(chain.writable) ?? chain.writer().take(length)) : (viewsAfterHeader(chain.readable) ?? reader.take(length));
      return { head, type, writableLength, op: { kind: isRead ? 'read' : 'write', offset, length, buffers }, status: VIRTIO_BLK_S_OK, reason: '' };
    }

    case VIRTIO_BLK_T_FLUSH:
      // §5.2.6.1: the driver sets sector to 0; a device need not check it.
      return { head, type, writableLength, op: { kind: 'flush' }, status: VIRTIO_BLK_S_OK, reason: '' };

    case VIRTIO_BLK_T_GET_ID:
      if (dataIn < VIRTIO_BLK_ID_BYTES) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${where}: GET_ID needs ${VIRTIO_BLK_ID_BYTES} writable bytes before the status byte, got ${dataIn}`);
      }
      return { head, type, writableLength, op: { kind: 'get-id' }, status: VIRTIO_BLK_S_OK, reason: '' };

    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const isDiscard = type === VIRTIO_BLK_T_DISCARD;
      const name = isDiscard ? 'DISCARD' : 'WRITE_ZEROES';
      if (!(isDiscard ? limits.discard : limits.writeZeroes)) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_UNSUPP, `${where}: ${name} without VIRTIO_BLK_F_${name} negotiated`);
      }
      if (limits.readOnly) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${where}: ${name} on a read-only disk`);
      }
      const maxSeg = isDiscard ? MAX_DISCARD_SEG : MAX_WRITE_ZEROES_SEG;
      const maxSectors = isDiscard ? MAX_DISCARD_SECTORS : MAX_WRITE_ZEROES_SECTORS;
      if (dataOut === 0 || dataOut % SEGMENT_SIZE !== 0) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${where}: ${dataOut} bytes of segments, not a non-zero multiple of ${SEGMENT_SIZE}`);
      }
      const count = dataOut / SEGMENT_SIZE;
      if (count > maxSeg) {
        return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${where}: ${count} segments, more than the ${maxSeg} the config space allows`);
      }
      const raw = new Uint8Array(dataOut);
      reader.read(raw);
      const sv = new DataView(raw.buffer);
      const ranges: ByteRange[] = [];
      for (let i = 0; i < count; i++) {
        const segLo = sv.getUint32(i * SEGMENT_SIZE, true);
        const segHi = sv.getUint32(i * SEGMENT_SIZE + 4, true);
        const segSector = sectorNumber(segLo, segHi);
        const num = sv.getUint32(i * SEGMENT_SIZE + 8, true);
        const flags = sv.getUint32(i * SEGMENT_SIZE + 12, true);
        const seg = `${where}: segment ${i}`;
        // §5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP.
        if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0 || (isDiscard && flags !== 0)) {
          return answer(head, type, writableLength, VIRTIO_BLK_S_UNSUPP, `${seg}: flags 0x${flags.toString(16)} not supported for ${name}`);
        }
        if (num > maxSectors) {
          return answer(head, type, writableLength, VIRTIO_BLK_S_IOERR, `${seg}: ${num} sectors, more than max ${maxSectors}`);
        }
        if (!inside(segSector, num, limits.capacity)) {
          return answer(
            head,
            type,
            writableLength,
            VIRTIO_BLK_S_IOERR,
            `${seg}: sectors [${sectorText(segLo, segHi)}, +${num}) are beyond the capacity of ${limits.capacity} sectors`,
          );
        }
        ranges.push({ offset: segSector * SECTOR_SIZE, length: num * SECTOR_SIZE });
      }
      return { head, type, writableLength, op: { kind: isDiscard ? 'discard' : 'write-zeroes', ranges }, status: VIRTIO_BLK_S_OK, reason: '' };
    }

    default:
      return answer(head, type, writableLength, VIRTIO_BLK_S_UNSUPP, `${where}: unsupported request type`);
  }
}
