// The virtio-vsock wire format (src/devices/vsock/packet.ts): header codec round trips, every
// validation reason of checkGuestPacket, the guest-CID config space and the event buffer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  VIRTIO_ID_VSOCK,
  VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_INVALID,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_TYPE_STREAM,
  VSOCK_HEADER_SIZE,
  VSOCK_HOST_CID,
  VSOCK_MAX_PKT_PAYLOAD,
  checkGuestCid,
  checkGuestPacket,
  encodeConfig,
  encodeEvent,
  encodeHeader,
  parseHeader,
  type VsockHeader,
} from '../../src/devices/vsock/packet.js';
import { VsockConfigError, VsockPacketError, type VsockPacketErrorReason } from '../../src/devices/vsock/errors.js';
import { GUEST_CID, guestHeaderBytes } from '../helpers/vsock-packets.js';

const LIMITS = { guestCid: GUEST_CID, maxPayload: VSOCK_MAX_PKT_PAYLOAD };

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const anyHeader: fc.Arbitrary<VsockHeader> = fc.record({
  srcCid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  dstCid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  srcPort: u32,
  dstPort: u32,
  len: u32,
  type: u16,
  op: u16,
  flags: u32,
  bufAlloc: u32,
  fwdCnt: u32,
});

test('constants are those of virtio 1.2 §5.10 and Linux virtio_vsock.h', () => {
  assert.is(VIRTIO_ID_VSOCK, 19);
  assert.is(VSOCK_HEADER_SIZE, 44);
  assert.is(VSOCK_HOST_CID, 2n);
  assert.is(VIRTIO_VSOCK_TYPE_STREAM, 1);
  assert.is(VIRTIO_VSOCK_OP_RW, 5);
  assert.is(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, 0);
  assert.is(VSOCK_MAX_PKT_PAYLOAD, 65536);
});

test('encodeHeader lays fields out little-endian at the offsets of struct virtio_vsock_hdr', () => {
  const b = encodeHeader({
    srcCid: 0x0102030405060708n,
    dstCid: 2n,
    srcPort: 0x11223344,
    dstPort: 0x55667788,
    len: 0x99aabbcc,
    type: 0x0102,
    op: 0x0304,
    flags: 0xdeadbeef,
    bufAlloc: 0x01020304,
    fwdCnt: 0xa0b0c0d0,
  });
  assert.is(b.byteLength, 44);
  assert.equal([...b.subarray(0, 8)], [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal([...b.subarray(8, 16)], [2, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal([...b.subarray(16, 20)], [0x44, 0x33, 0x22, 0x11]);
  assert.equal([...b.subarray(20, 24)], [0x88, 0x77, 0x66, 0x55]);
  assert.equal([...b.subarray(24, 28)], [0xcc, 0xbb, 0xaa, 0x99]);
  assert.equal([...b.subarray(28, 30)], [0x02, 0x01]);
  assert.equal([...b.subarray(30, 32)], [0x04, 0x03]);
  assert.equal([...b.subarray(32, 36)], [0xef, 0xbe, 0xad, 0xde]);
  assert.equal([...b.subarray(36, 40)], [0x04, 0x03, 0x02, 0x01]);
  assert.equal([...b.subarray(40, 44)], [0xd0, 0xc0, 0xb0, 0xa0]);
});

test('parseHeader(encodeHeader(h)) is h, for every header, also at an offset in a larger buffer', () => {
  fc.assert(
    fc.property(anyHeader, fc.integer({ min: 0, max: 16 }), (h, offset) => {
      const buffer = new Uint8Array(offset + 60).fill(0xee);
      const written = encodeHeader(h, buffer.subarray(offset));
      assert.is(written.byteLength, 44);
      assert.equal(parseHeader(buffer.subarray(offset)), { ...h });
      assert.ok(buffer.subarray(offset + 44).every((x) => x === 0xee), 'nothing written past 44 bytes');
      assert.ok(buffer.subarray(0, offset).every((x) => x === 0xee), 'nothing written before the offset');
    }),
    { numRuns: 300 },
  );
});

test('encodeHeader refuses a buffer shorter than 44 bytes; parseHeader a short header, with the typed error', () => {
  assert.throws(() => encodeHeader(parseHeader(new Uint8Array(44)), new Uint8Array(43)), RangeError);
  try {
    parseHeader(new Uint8Array(43));
    assert.unreachable('parseHeader accepted 43 bytes');
  } catch (e) {
    assert.instance(e, VsockPacketError);
    assert.is((e as VsockPacketError).reason, 'short-header');
  }
});

function reasonOf(header: Uint8Array, available: number): VsockPacketErrorReason | undefined {
  const r = checkGuestPacket(header, available, LIMITS);
  return r.ok ? undefined : r.error.reason;
}

test('checkGuestPacket accepts valid packets and returns their header', () => {
  const rw = guestHeaderBytes({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1000, dstPort: 52, len: 100 });
  const r = checkGuestPacket(rw, 100, LIMITS);
  assert.ok(r.ok);
  assert.is(r.ok && r.header.len, 100);
  assert.ok(checkGuestPacket(rw, 4000, LIMITS).ok, 'a chain longer than len is fine (§5.10.6: only len bytes are used)');
  assert.ok(checkGuestPacket(guestHeaderBytes({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2, len: 65536 }), 65536, LIMITS).ok);
  for (let op = VIRTIO_VSOCK_OP_REQUEST; op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST; op++) {
    if (op === VIRTIO_VSOCK_OP_RW) continue;
    assert.ok(checkGuestPacket(guestHeaderBytes({ op, srcPort: 1, dstPort: 2 }), 0, LIMITS).ok, `op ${op}`);
  }
});

test('checkGuestPacket: every reason, each with the header when one was readable', () => {
  const base = { op: VIRTIO_VSOCK_OP_RW, srcPort: 1000, dstPort: 52 };
  assert.is(reasonOf(new Uint8Array(0), 0), 'short-header');
  assert.is(reasonOf(guestHeaderBytes(base).subarray(0, 43), 0), 'short-header');
  assert.is(reasonOf(guestHeaderBytes({ ...base, srcCid: 4n }), 0), 'wrong-src-cid');
  assert.is(reasonOf(guestHeaderBytes({ ...base, srcCid: GUEST_CID + (1n << 32n) }), 0), 'wrong-src-cid');
  assert.is(reasonOf(guestHeaderBytes({ ...base, dstCid: 3n }), 0), 'wrong-dst-cid');
  assert.is(reasonOf(guestHeaderBytes({ ...base, dstCid: 2n + (1n << 40n) }), 0), 'wrong-dst-cid');
  assert.is(reasonOf(guestHeaderBytes({ ...base, type: 2 }), 0), 'unknown-type');
  assert.is(reasonOf(guestHeaderBytes({ ...base, type: 0 }), 0), 'unknown-type');
  assert.is(reasonOf(guestHeaderBytes({ ...base, op: VIRTIO_VSOCK_OP_INVALID }), 0), 'unknown-op');
  assert.is(reasonOf(guestHeaderBytes({ ...base, op: 8 }), 0), 'unknown-op');
  assert.is(reasonOf(guestHeaderBytes({ ...base, op: 0xffff }), 0), 'unknown-op');
  assert.is(reasonOf(guestHeaderBytes({ ...base, len: 65537 }), 1 << 20), 'oversized');
  assert.is(reasonOf(guestHeaderBytes({ ...base, len: 0xffff_ffff }), 0), 'oversized');
  assert.is(reasonOf(guestHeaderBytes({ ...base, len: 10 }), 9), 'truncated');
  assert.is(reasonOf(guestHeaderBytes({ ...base, len: 1 }), 0), 'truncated');
  assert.is(reasonOf(guestHeaderBytes({ ...base, op: VIRTIO_VSOCK_OP_REQUEST, len: 1 }), 1), 'unexpected-payload');
  assert.is(reasonOf(guestHeaderBytes({ ...base, op: VIRTIO_VSOCK_OP_SHUTDOWN, len: 4 }), 4), 'unexpected-payload');
  assert.is(reasonOf(guestHeaderBytes({ ...base, op: VIRTIO_VSOCK_OP_RST, len: 4 }), 4), 'unexpected-payload');

  const bad = checkGuestPacket(guestHeaderBytes({ ...base, type: 9 }), 0, LIMITS);
  assert.not.ok(bad.ok);
  if (!bad.ok) {
    assert.instance(bad.error, VsockPacketError);
    assert.is(bad.header?.srcPort, 1000, 'the header comes back so the muxer can answer with RST');
    assert.match(bad.error.message, /type 9/);
  }
  const short = checkGuestPacket(new Uint8Array(10), 0, LIMITS);
  assert.is(!short.ok && short.header, undefined, 'no header from 10 bytes');
});

test('checkGuestPacket honours a smaller configured maximum payload', () => {
  const h = guestHeaderBytes({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2, len: 4097 });
  const r = checkGuestPacket(h, 5000, { guestCid: GUEST_CID, maxPayload: 4096 });
  assert.is(!r.ok && r.error.reason, 'oversized');
});

test('checkGuestPacket never throws and only ever returns a header or a typed reason, for any bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 60 }), fc.integer({ min: 0, max: 1 << 17 }), (raw, available) => {
      const r = checkGuestPacket(raw, available, LIMITS);
      if (r.ok) {
        assert.ok(raw.byteLength >= 44);
        assert.ok(r.header.len <= available && r.header.len <= VSOCK_MAX_PKT_PAYLOAD);
      } else {
        assert.instance(r.error, VsockPacketError);
      }
    }),
    { numRuns: 500 },
  );
});

test('the config space is le64 guest_cid; reserved CIDs are refused (§5.10.4)', () => {
  assert.equal([...encodeConfig(3n)], [3, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal([...encodeConfig(0xfffffffen)], [0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  for (const cid of [0n, 1n, 2n, 0xffff_ffffn, 1n << 32n, 2n ** 64n - 1n, -1n]) {
    assert.throws(() => encodeConfig(cid), (e: unknown) => e instanceof VsockConfigError, `CID ${cid}`);
    assert.throws(() => checkGuestCid(cid), (e: unknown) => e instanceof VsockConfigError);
  }
  assert.is(checkGuestCid(1234n), 1234n);
});

test('the event is le32 id; TRANSPORT_RESET is 0', () => {
  assert.equal([...encodeEvent()], [0, 0, 0, 0]);
  assert.equal([...encodeEvent(0x01020304)], [4, 3, 2, 1]);
});

test.run();
