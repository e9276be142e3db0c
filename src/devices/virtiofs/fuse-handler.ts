// The seam between the virtio-fs device (virtio 1.2 §5.11: queues, descriptor chains, interrupts)
// and the FUSE server behind it (fuse.h requests and replies over a host directory). The device
// knows nothing of FUSE beyond where a request ends and a reply goes; the server knows nothing of
// virtqueues. Each request is one descriptor chain: its driver-readable descriptors hold the
// request (fuse_in_header, the op's in args, WRITE data), its device-writable ones take the reply
// (fuse_out_header and out args; READ data goes straight into them).
import type { DeviceMetrics } from '../virtio/device.js';

/** One request as the device hands it over: guest-memory views, valid until the request completes. */
export interface FuseChain {
  /** The driver-readable descriptors, in chain order. */
  readonly request: readonly Uint8Array[];
  /** The device-writable descriptors, in chain order; empty where the request takes no reply. */
  readonly reply: readonly Uint8Array[];
}

export interface FuseRequestHandler {
  /**
   * Serves one request. Resolves with the reply's length in bytes, written from the start of
   * `chain.reply` across its descriptors in order (the used length, §2.7.8); 0 for a request that
   * takes no reply (FORGET, BATCH_FORGET, INTERRUPT) or whose reply did not fit (the server then
   * counts it). Never rejects for anything the guest sent: a malformed request gets an error reply
   * where its header was readable, and is otherwise dropped and counted.
   * `queue` is 0 for the hiprio queue, 1.. for the request queues (FORGET arrives on hiprio).
   */
  handle(chain: FuseChain, queue: number): Promise<number>;
  /**
   * The driver reset the device: every inode, open file and mapping of this session goes, as a
   * FUSE_DESTROY would. Work in flight may still complete; its reply is ignored by the device.
   */
  reset(): void;
  /** Counters for `--stats` (requests by opcode, errors, open handles, inodes held). */
  metrics(): DeviceMetrics;
  /** Releases every fd and mapping the server holds. */
  dispose(): Promise<void>;
}
