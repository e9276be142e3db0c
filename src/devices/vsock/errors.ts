// Typed errors of the vsock core. Three classes, for three different culprits:
// - VsockPacketError: a packet the guest put on the tx queue is malformed (virtio 1.2 §5.10.6).
//   It is returned, never thrown, by the packet checks: guest input never raises an exception.
// - VsockConfigError: the VMM was configured with something the spec forbids (a reserved CID,
//   a zero buffer size).
// - VsockUsageError: the code driving the muxer (the device or the host backend) broke its
//   contract: a re-entrant call, a port that is not a u32, a backend that claims to have taken
//   more bytes than it was offered. These are programming errors and are thrown.
// Their `reason` is for code to branch on; their message says what was wrong with which value.

export type VsockPacketErrorReason =
  /** Fewer than 44 bytes of header in the chain's device-readable side. */
  | 'short-header'
  /** src_cid is not the guest's CID (§5.10.6.4: the driver MUST use guest_cid as source). */
  | 'wrong-src-cid'
  /** dst_cid is not the host (2): this device only carries guest <-> host traffic. */
  | 'wrong-dst-cid'
  /** type is not VIRTIO_VSOCK_TYPE_STREAM (§5.10.6.4: answered with RST). */
  | 'unknown-type'
  /** op is VIRTIO_VSOCK_OP_INVALID or not one of the ops of §5.10.6. */
  | 'unknown-op'
  /** len exceeds the largest payload accepted (64 KiB, Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
  | 'oversized'
  /** len exceeds the payload bytes actually present in the descriptor chain. */
  | 'truncated'
  /** len is not zero on an op that carries no payload (every op but RW). */
  | 'unexpected-payload';

export class VsockPacketError extends Error {
  constructor(
    readonly reason: VsockPacketErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'VsockPacketError';
  }
}

export class VsockConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VsockConfigError';
  }
}

export type VsockUsageErrorReason =
  /** A muxer method was called from inside a backend callback the muxer was running. */
  | 're-entered'
  /** A port argument is not an integer in [0, 2^32). */
  | 'bad-port'
  /** A backend's deliver() returned something other than an integer in [0, bytes.length]. */
  | 'bad-deliver-count'
  /** onGuestConnect returned something other than 'accept', 'refuse' or 'defer'. */
  | 'bad-decision';

export class VsockUsageError extends Error {
  constructor(
    readonly reason: VsockUsageErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'VsockUsageError';
  }
}
