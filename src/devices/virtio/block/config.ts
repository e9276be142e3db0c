// virtio-blk feature bits and configuration space (virtio 1.2 §5.2.3, §5.2.4), as pure functions.
// Everything here is a constant or a function of the disk's description: no I/O, no state.

/** Device ID of a block device (§5). */
export const VIRTIO_BLK_DEVICE_ID = 2;
/** The sector unit of every request and of `capacity`, whatever blk_size says (§5.2.4, §5.2.6). */
export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;
/** Bytes of the GET_ID answer: the serial, NUL-padded, not necessarily NUL-terminated (§5.2.6). */
export const VIRTIO_BLK_ID_BYTES = 20;

/** Feature bits (§5.2.3). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** Byte offsets in struct virtio_blk_config (§5.2.4). */
export const CONFIG_OFFSETS = {
  capacity: 0, // le64, in 512-byte sectors
  sizeMax: 8, // le32, VIRTIO_BLK_F_SIZE_MAX
  segMax: 12, // le32, VIRTIO_BLK_F_SEG_MAX
  geometry: 16, // le16 cylinders, u8 heads, u8 sectors (VIRTIO_BLK_F_GEOMETRY)
  blkSize: 20, // le32, VIRTIO_BLK_F_BLK_SIZE
  physicalBlockExp: 24, // u8, VIRTIO_BLK_F_TOPOLOGY
  alignmentOffset: 25, // u8
  minIoSize: 26, // le16
  optIoSize: 28, // le32
  writeback: 32, // u8, VIRTIO_BLK_F_CONFIG_WCE
  numQueues: 34, // le16, VIRTIO_BLK_F_MQ
  maxDiscardSectors: 36, // le32, VIRTIO_BLK_F_DISCARD
  maxDiscardSeg: 40, // le32
  discardSectorAlignment: 44, // le32
  maxWriteZeroesSectors: 48, // le32, VIRTIO_BLK_F_WRITE_ZEROES
  maxWriteZeroesSeg: 52, // le32
  writeZeroesMayUnmap: 56, // u8
} as const;
/** Bytes of the config space we expose: up to write_zeroes_may_unmap and its 3 bytes of padding. */
export const CONFIG_SIZE = 60;

/** The single request queue (no VIRTIO_BLK_F_MQ) and its maximum size. */
export const QUEUE_MAX_SIZE = 256;
/**
 * seg_max: data descriptors per request. A chain holds at most QUEUE_MAX_SIZE descriptors
 * (the queue's cap), two of which are the header and the status byte.
 */
export const SEG_MAX = QUEUE_MAX_SIZE - 2;
/** Cap on one WRITE_ZEROES/DISCARD request: 32 MiB of sectors, in at most this many segments. */
export const MAX_WRITE_ZEROES_SECTORS = (32 << 20) >> SECTOR_SHIFT;
export const MAX_WRITE_ZEROES_SEG = 16;
export const MAX_DISCARD_SECTORS = (32 << 20) >> SECTOR_SHIFT;
export const MAX_DISCARD_SEG = 16;

/** What the device tells the driver about one disk. */
export interface BlockGeometry {
  /** Size of the image in bytes; capacity is floor(size / 512) (a partial last sector is unreachable). */
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Offer VIRTIO_BLK_F_DISCARD (on a writable disk). Off unless asked: the device asks where the
   * backend punches holes (backend.ts). */
  readonly discard?: boolean;
  /** Offer VIRTIO_BLK_F_WRITE_ZEROES (only on a writable disk); on by default. */
  readonly writeZeroes?: boolean;
  /** Logical block size to report (VIRTIO_BLK_F_BLK_SIZE); 512 by default. */
  readonly blockSize?: number;
  /** Largest single data segment (VIRTIO_BLK_F_SIZE_MAX); not offered when undefined. */
  readonly sizeMax?: number;
}

/** Capacity in 512-byte sectors (§5.2.4). */
export function capacitySectors(sizeBytes: number): bigint {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    throw new RangeError(`virtio-blk: image size ${sizeBytes} is not a non-negative integer number of bytes`);
  }
  return BigInt(Math.floor(sizeBytes / SECTOR_SIZE));
}

const bit = (n: number): bigint => 1n << BigInt(n);

/** Whether DISCARD / WRITE_ZEROES are offered for this disk. */
export function offersDiscard(g: BlockGeometry): boolean {
  return (g.discard ?? false) && !g.readOnly;
}
export function offersWriteZeroes(g: BlockGeometry): boolean {
  return (g.writeZeroes ?? true) && !g.readOnly;
}

/**
 * Device feature bits (§5.2.3). The transport adds VIRTIO_F_VERSION_1 and the ring features.
 * FLUSH is always offered: without it a Linux driver assumes a write-through disk and never asks
 * for the fdatasync that makes acknowledged writes durable.
 */
export function blockFeatures(g: BlockGeometry): bigint {
  let f = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH);
  if (g.sizeMax !== undefined) f |= bit(VIRTIO_BLK_F_SIZE_MAX);
  if (g.readOnly) f |= bit(VIRTIO_BLK_F_RO);
  if (offersDiscard(g)) f |= bit(VIRTIO_BLK_F_DISCARD);
  if (offersWriteZeroes(g)) f |= bit(VIRTIO_BLK_F_WRITE_ZEROES);
  return f;
}

/** struct virtio_blk_config for this disk (§5.2.4), little-endian; fields of features not offered are 0. */
export function blockConfig(g: BlockGeometry): Uint8Array {
  const blockSize = g.blockSize ?? SECTOR_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < SECTOR_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new RangeError(`virtio-blk: block size ${blockSize} is not a power of two >= ${SECTOR_SIZE}`);
  }
  if (g.sizeMax !== undefined && (!Number.isInteger(g.sizeMax) || g.sizeMax < 1 || g.sizeMax > 0xffff_ffff)) {
    throw new RangeError(`virtio-blk: size_max ${g.sizeMax} is not a u32 >= 1`);
  }
  const bytes = new Uint8Array(CONFIG_SIZE);
  const v = new DataView(bytes.buffer);
  const o = CONFIG_OFFSETS;
  v.setBigUint64(o.capacity, capacitySectors(g.sizeBytes), true);
  if (g.sizeMax !== undefined) v.setUint32(o.sizeMax, g.sizeMax, true);
  v.setUint32(o.segMax, SEG_MAX, true);
  v.setUint32(o.blkSize, blockSize, true);
  if (offersDiscard(g)) {
    v.setUint32(o.maxDiscardSectors, MAX_DISCARD_SECTORS, true);
    v.setUint32(o.maxDiscardSeg, MAX_DISCARD_SEG, true);
    v.setUint32(o.discardSectorAlignment, blockSize >> SECTOR_SHIFT, true);
  }
  if (offersWriteZeroes(g)) {
    v.setUint32(o.maxWriteZeroesSectors, MAX_WRITE_ZEROES_SECTORS, true);
    v.setUint32(o.maxWriteZeroesSeg, MAX_WRITE_ZEROES_SEG, true);
    // §5.2.5: 0 — our write zeroes writes zeroes; it never deallocates.
    v.setUint8(o.writeZeroesMayUnmap, 0);
  }
  return bytes;
}

/**
 * The GET_ID answer: the serial's UTF-8 bytes, truncated to 20 and NUL-padded (§5.2.6).
 * Truncation never splits a multi-byte character.
 */
export function serialBytes(serial: string): Uint8Array {
  const out = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  const enc = new TextEncoder().encode(serial);
  let n = Math.min(enc.byteLength, VIRTIO_BLK_ID_BYTES);
  // Back off to a character boundary: continuation bytes are 10xxxxxx.
  while (n < enc.byteLength && n > 0 && ((enc[n] as number) & 0xc0) === 0x80) n--;
  out.set(enc.subarray(0, n));
  return out;
}
