// Guest-side packet builders for the vsock tests: valid STREAM packets from the guest to the host
// by default, any field overridable to make garbage.
import {
  encodeHeader,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HOST_CID,
  type VsockHeader,
} from '../../src/devices/vsock/packet.js';

export const GUEST_CID = 3n;

/** Fields of a guest packet; everything defaults to a valid STREAM packet from the guest to the host. */
export interface GuestPacketFields {
  op: number;
  srcPort: number;
  dstPort: number;
  payload?: Uint8Array;
  /** Header len (defaults to payload length). */
  len?: number;
  flags?: number;
  bufAlloc?: number;
  fwdCnt?: number;
  type?: number;
  srcCid?: bigint;
  dstCid?: bigint;
}

export function guestHeader(f: GuestPacketFields): VsockHeader {
  return {
    srcCid: f.srcCid ?? GUEST_CID,
    dstCid: f.dstCid ?? VSOCK_HOST_CID,
    srcPort: f.srcPort,
    dstPort: f.dstPort,
    len: f.len ?? f.payload?.byteLength ?? 0,
    type: f.type ?? VIRTIO_VSOCK_TYPE_STREAM,
    op: f.op,
    flags: f.flags ?? 0,
    bufAlloc: f.bufAlloc ?? 256 * 1024,
    fwdCnt: f.fwdCnt ?? 0,
  };
}

/** Builds the header bytes of a guest packet. */
export function guestHeaderBytes(f: GuestPacketFields): Uint8Array {
  return encodeHeader(guestHeader(f));
}

export function bytes(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
