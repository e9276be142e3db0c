// The server's counters for `--stats`: requests by opcode, error replies by errno, bytes moved,
// malformed requests and replies that did not fit. Gauges (inodes, handles) come from the tables.
import type { DeviceMetrics } from '../../virtio/device.js';
import { opcodeName } from '../fuse/index.js';
import type { IoCounters } from './context.js';
import { errnoClass } from './errors.js';

export class ServerMetrics implements IoCounters {
  private readonly requests = new Map<string, number>();
  private readonly errors = new Map<string, number>();
  bytesRead = 0;
  bytesWritten = 0;
  /** Requests the decoder refused (answered EINVAL when their header was readable). */
  malformed = 0;
  /** Requests dropped unanswered: not even fuse_in_header was readable. */
  dropped = 0;
  /** Replies larger than the reply descriptors: not answered. */
  replyTooSmall = 0;
  /** Unexpected exceptions inside an op (answered EIO): server bugs. */
  internalErrors = 0;

  request(opcode: number): void {
    const k = opcodeName(opcode);
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  error(errno: number): void {
    const k = errnoClass(errno);
    this.errors.set(k, (this.errors.get(k) ?? 0) + 1);
  }

  snapshot(gauges: Readonly<Record<string, number>>): DeviceMetrics {
    const out: Record<string, number> = {
      ...gauges,
      bytes_read: this.bytesRead,
      bytes_written: this.bytesWritten,
      malformed_requests: this.malformed,
      dropped_requests: this.dropped,
      replies_too_small: this.replyTooSmall,
      internal_errors: this.internalErrors,
    };
    for (const [k, n] of this.requests) out[`requests_${k}`] = n;
    for (const [k, n] of this.errors) out[`errors_${k}`] = n;
    return out;
  }
}
