// virtio-blk (virtio 1.2 §5.2): the device, its config space, its requests and its file backend.
export { VirtioBlock, VirtioBlockError, defaultSerial, type VirtioBlockOptions, type BlockMetrics } from './device.js';
export {
  FileBackend,
  BlockBackendError,
  DIRECT_ALIGN,
  READ_NOW_MAX,
  ZERO_CHUNK,
  defaultIoEngine,
  type BlockBackend,
  type FileBackendOptions,
  type IoEngine,
  type TransferDone,
} from './backend.js';
export * from './config.js';
export * from './request.js';
