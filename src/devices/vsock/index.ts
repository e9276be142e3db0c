// virtio-vsock (virtio 1.2 §5.10), the pure core: the packet format, one stream's state machine
// and the connection multiplexer the virtio device and the host backend drive.
export * from './errors.js';
export * from './packet.js';
export {
  VsockConnection,
  type CloseReason,
  type ConnectionAccounting,
  type ConnectionConfig,
  type ConnectionState,
  type GuestBoundPacket,
  type GuestPacketVerdict,
  type HostEffect,
} from './connection.js';
export {
  VsockMuxer,
  VSOCK_MUXER_DEFAULTS,
  type ConnectionInfo,
  type GuestConnectDecision,
  type HostConnectResult,
  type VsockBackend,
  type VsockMuxerOptions,
  type VsockMuxerStats,
} from './muxer.js';
