// Typed errors of the split virtqueue (virtio 1.2 §2.7). Two classes, so that a device can tell a
// bad request from a broken queue:
// - VirtioChainError: one descriptor chain is malformed. The avail entry has been consumed; the
//   device fails that request (pushUsed(err.head, 0) when err.returnable) or sets NEEDS_RESET.
// - VirtioQueueError: the queue itself cannot be used (bad configuration, a driver that moved
//   avail.idx impossibly far, a device that returns more buffers than it took). Nothing was
//   consumed; the device sets NEEDS_RESET (§2.1.2).
// Their `reason` is for code to branch on; their message says what was wrong with which value.

export type VirtioChainErrorReason =
  /** NEXT links revisit a descriptor: more descriptors followed than the table holds. */
  | 'loop'
  /** More descriptors than the queue's maximum size in one chain, or more than 2^32-1 bytes on one side. */
  | 'too-long'
  /** A buffer or indirect table [addr, addr+len) is not inside one region of guest memory. */
  | 'out-of-range'
  /** A descriptor inside an indirect table has VIRTQ_DESC_F_INDIRECT (§2.7.5.3.1). */
  | 'nested-indirect'
  /** An indirect table's length is zero, not a multiple of 16, or holds more entries than the queue's maximum size. */
  | 'bad-indirect-length'
  /** A device-readable descriptor follows a device-writable one (§2.7.4.2). */
  | 'direction'
  /** A head or next index outside the descriptor table (or outside the indirect table). */
  | 'index'
  /** VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3.1). */
  | 'indirect-not-negotiated';

export class VirtioChainError extends Error {
  constructor(
    readonly reason: VirtioChainErrorReason,
    /** The head index the chain was taken from (as read from the available ring). */
    readonly head: number,
    /**
     * Whether the device may return this head with pushUsed(head, 0) to fail the request. False
     * when the head itself is outside the descriptor table: then there is no chain to return and
     * the device sets NEEDS_RESET.
     */
    readonly returnable: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'VirtioChainError';
  }
}

export type VirtioQueueErrorReason =
  /** Queue size not a power of two in [1, max], or max not in [1, 32768]. */
  | 'bad-size'
  /** A ring part's address is misaligned (§2.7: 16 / 2 / 4) or not inside guest memory for its full size. */
  | 'bad-address'
  /** The driver moved avail.idx more than the queue size ahead of the device's next index. */
  | 'avail-overrun'
  /** pushUsed with a head outside the table, a length that is not a u32, or nothing in flight. */
  | 'bad-used-entry';

export class VirtioQueueError extends Error {
  constructor(
    readonly reason: VirtioQueueErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'VirtioQueueError';
  }
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
