// The virtio-vsock wire format (virtio 1.2 §5.10): constants, the 44-byte packet header, the
// guest-CID configuration space and the event buffer, as pure functions. Everything the guest
// wrote is hostile: checkGuestPacket() checks every length before any field is used and returns
// a typed reason instead of throwing.

import { VsockConfigError, VsockPacketError, type VsockPacketErrorReason } from './errors.js';

/** Device ID of the socket device (§5.10.1). */
export const VIRTIO_ID_VSOCK = 19;
/** Virtqueue indices (§5.10.2). */
export const VSOCK_RX_QUEUE = 0;
export const VSOCK_TX_QUEUE = 1;
export const VSOCK_EVENT_QUEUE = 2;

/** Socket types (§5.10.6.2). Only streams are offered: no VIRTIO_VSOCK_F_SEQPACKET. */
export const VIRTIO_VSOCK_TYPE_STREAM = 1;

/** Operations (§5.10.6). */
export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;
export type VsockOp =
  | typeof VIRTIO_VSOCK_OP_REQUEST
  | typeof VIRTIO_VSOCK_OP_RESPONSE
  | typeof VIRTIO_VSOCK_OP_RST
  | typeof VIRTIO_VSOCK_OP_SHUTDOWN
  | typeof VIRTIO_VSOCK_OP_RW
  | typeof VIRTIO_VSOCK_OP_CREDIT_UPDATE
  | typeof VIRTIO_VSOCK_OP_CREDIT_REQUEST;

/** SHUTDOWN flags (§5.10.6.5): the sender will receive no more / send no more. */
export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
export const VIRTIO_VSOCK_SHUTDOWN_BOTH = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

/** Event ids on the event queue (§5.10.6.7 Device Events). */
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;

/** The host's well-known CID (§5.10.4). */
export const VSOCK_HOST_CID = 2n;

/** sizeof(struct virtio_vsock_hdr). */
export const VSOCK_HEADER_SIZE = 44;
/** sizeof(struct virtio_vsock_config): le64 guest_cid. */
export const VSOCK_CONFIG_SIZE = 8;
/** sizeof(struct virtio_vsock_event): le32 id. */
export const VSOCK_EVENT_SIZE = 4;
/** The largest payload of one packet: Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE (the guest never sends more). */
export const VSOCK_MAX_PKT_PAYLOAD = 64 * 1024;

const U32_MAX = 0xffff_ffff;

/** struct virtio_vsock_hdr (§5.10.6), all fields little-endian. CIDs are le64, hence bigint. */
export interface VsockHeader {
  readonly srcCid: bigint;
  readonly dstCid: bigint;
  readonly srcPort: number;
  readonly dstPort: number;
  /** Payload bytes that follow the header. */
  readonly len: number;
  readonly type: number;
  readonly op: number;
  readonly flags: number;
  /** The sender's receive buffer for this stream, in payload bytes (§5.10.6.3). */
  readonly bufAlloc: number;
  /** The sender's free-running count of payload bytes it has consumed (§5.10.6.3). */
  readonly fwdCnt: number;
}

const OFFSET = {
  srcCid: 0,
  dstCid: 8,
  srcPort: 16,
  dstPort: 20,
  len: 24,
  type: 28,
  op: 30,
  flags: 32,
  bufAlloc: 36,
  fwdCnt: 40,
} as const;

const OP_NAMES: Record<number, string> = {
  [VIRTIO_VSOCK_OP_INVALID]: 'INVALID',
  [VIRTIO_VSOCK_OP_REQUEST]: 'REQUEST',
  [VIRTIO_VSOCK_OP_RESPONSE]: 'RESPONSE',
  [VIRTIO_VSOCK_OP_RST]: 'RST',
  [VIRTIO_VSOCK_OP_SHUTDOWN]: 'SHUTDOWN',
  [VIRTIO_VSOCK_OP_RW]: 'RW',
  [VIRTIO_VSOCK_OP_CREDIT_UPDATE]: 'CREDIT_UPDATE',
  [VIRTIO_VSOCK_OP_CREDIT_REQUEST]: 'CREDIT_REQUEST',
};

/** The op's name for messages ('RW', 'op 9' for an unknown one). */
export function opName(op: number): string {
  return OP_NAMES[op] ?? `op ${op}`;
}

/** Whether `op` is one of the ops of §5.10.6 other than INVALID. */
export function isKnownOp(op: number): op is VsockOp {
  return Number.isInteger(op) && op >= VIRTIO_VSOCK_OP_REQUEST && op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads the header from the first 44 bytes of `bytes`. Throws VsockPacketError('short-header')
 * when there are fewer; reads nothing else and checks no field (see checkGuestPacket).
 */
export function parseHeader(bytes: Uint8Array): VsockHeader {
  if (bytes.byteLength < VSOCK_HEADER_SIZE) {
    throw new VsockPacketError('short-header', `vsock header of ${bytes.byteLength} bytes, expected ${VSOCK_HEADER_SIZE}`);
  }
  const v = view(bytes);
  return {
    srcCid: v.getBigUint64(OFFSET.srcCid, true),
    dstCid: v.getBigUint64(OFFSET.dstCid, true),
    srcPort: v.getUint32(OFFSET.srcPort, true),
    dstPort: v.getUint32(OFFSET.dstPort, true),
    len: v.getUint32(OFFSET.len, true),
    type: v.getUint16(OFFSET.type, true),
    op: v.getUint16(OFFSET.op, true),
    flags: v.getUint32(OFFSET.flags, true),
    bufAlloc: v.getUint32(OFFSET.bufAlloc, true),
    fwdCnt: v.getUint32(OFFSET.fwdCnt, true),
  };
}

/**
 * Writes `header` into the first 44 bytes of `into` (a new buffer when absent) and returns the
 * 44-byte view. Numeric fields are written modulo their width (callers pass in-range values).
 */
export function encodeHeader(header: VsockHeader, into: Uint8Array = new Uint8Array(VSOCK_HEADER_SIZE)): Uint8Array {
  if (into.byteLength < VSOCK_HEADER_SIZE) {
    throw new RangeError(`encodeHeader: ${into.byteLength} bytes given, the header needs ${VSOCK_HEADER_SIZE}`);
  }
  const v = view(into);
  v.setBigUint64(OFFSET.srcCid, BigInt.asUintN(64, header.srcCid), true);
  v.setBigUint64(OFFSET.dstCid, BigInt.asUintN(64, header.dstCid), true);
  v.setUint32(OFFSET.srcPort, header.srcPort >>> 0, true);
  v.setUint32(OFFSET.dstPort, header.dstPort >>> 0, true);
  v.setUint32(OFFSET.len, header.len >>> 0, true);
  v.setUint16(OFFSET.type, header.type & 0xffff, true);
  v.setUint16(OFFSET.op, header.op & 0xffff, true);
  v.setUint32(OFFSET.flags, header.flags >>> 0, true);
  v.setUint32(OFFSET.bufAlloc, header.bufAlloc >>> 0, true);
  v.setUint32(OFFSET.fwdCnt, header.fwdCnt >>> 0, true);
  return into.subarray(0, VSOCK_HEADER_SIZE);
}

/** What checkGuestPacket needs to know. */
export interface PacketLimits {
  /** The guest's CID (the config space's guest_cid). */
  readonly guestCid: bigint;
  /** The largest len accepted; at most VSOCK_MAX_PKT_PAYLOAD. */
  readonly maxPayload: number;
}

/**
 * The result of checking a guest packet. `header` is present whenever 44 header bytes were
 * there, also on failure: the muxer needs its ports to answer with RST.
 */
export type CheckedPacket =
  | { readonly ok: true; readonly header: VsockHeader }
  | { readonly ok: false; readonly error: VsockPacketError; readonly header?: VsockHeader };

function reject(reason: VsockPacketErrorReason, message: string, header?: VsockHeader): CheckedPacket {
  return { ok: false, error: new VsockPacketError(reason, message), header };
}

/**
 * Checks a packet from the tx queue: `headerBytes` are the first bytes of the chain's readable
 * side (44 or more), `payloadAvailable` the readable bytes after the header. Checks in order:
 * header length, CIDs, type, op, len against the maximum and against the chain, then that only
 * RW carries a payload. Never throws.
 */
export function checkGuestPacket(headerBytes: Uint8Array, payloadAvailable: number, limits: PacketLimits): CheckedPacket {
  if (headerBytes.byteLength < VSOCK_HEADER_SIZE) {
    return reject('short-header', `vsock header of ${headerBytes.byteLength} bytes, expected ${VSOCK_HEADER_SIZE}`);
  }
  const h = parseHeader(headerBytes);
  const what = `${opName(h.op)} ${h.srcCid}:${h.srcPort} -> ${h.dstCid}:${h.dstPort}`;
  if (h.srcCid !== limits.guestCid) {
    return reject('wrong-src-cid', `${what}: src_cid ${h.srcCid} is not the guest's CID ${limits.guestCid}`, h);
  }
  if (h.dstCid !== VSOCK_HOST_CID) {
    return reject('wrong-dst-cid', `${what}: dst_cid ${h.dstCid} is not the host (${VSOCK_HOST_CID})`, h);
  }
  if (h.type !== VIRTIO_VSOCK_TYPE_STREAM) {
    return reject('unknown-type', `${what}: type ${h.type} is not VIRTIO_VSOCK_TYPE_STREAM`, h);
  }
  if (!isKnownOp(h.op)) return reject('unknown-op', `${what}: unknown op ${h.op}`, h);
  if (h.len > limits.maxPayload) {
    return reject('oversized', `${what}: len ${h.len} exceeds the maximum payload of ${limits.maxPayload} bytes`, h);
  }
  if (h.len > payloadAvailable) {
    return reject('truncated', `${what}: len ${h.len} but only ${payloadAvailable} payload bytes in the descriptor chain`, h);
  }
  if (h.len !== 0 && h.op !== VIRTIO_VSOCK_OP_RW) {
    return reject('unexpected-payload', `${what}: len ${h.len} on an op that carries no payload`, h);
  }
  return { ok: true, header: h };
}

/**
 * Checks a guest CID against §5.10.4: the upper 32 bits are reserved (zero), and 0, 1, 2 (the
 * host) and 0xffffffff are reserved. Returns the CID; throws VsockConfigError.
 */
export function checkGuestCid(cid: bigint): bigint {
  if (cid < 3n || cid >= BigInt(U32_MAX)) {
    throw new VsockConfigError(`guest CID ${cid} is reserved or out of range: it must be in [3, ${U32_MAX - 1}] (virtio 1.2 §5.10.4)`);
  }
  return cid;
}

/** struct virtio_vsock_config (§5.10.4): le64 guest_cid. Checks the CID first. */
export function encodeConfig(guestCid: bigint): Uint8Array {
  const out = new Uint8Array(VSOCK_CONFIG_SIZE);
  view(out).setBigUint64(0, checkGuestCid(guestCid), true);
  return out;
}

/** struct virtio_vsock_event (§5.10.6.7): le32 id. */
export function encodeEvent(id: number = VIRTIO_VSOCK_EVENT_TRANSPORT_RESET): Uint8Array {
  const out = new Uint8Array(VSOCK_EVENT_SIZE);
  view(out).setUint32(0, id >>> 0, true);
  return out;
}
