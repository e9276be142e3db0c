// virtio-fs (virtio 1.2 §5.11): the device (queues, config space, DAX window request) and the
// interface of the FUSE server behind it. The FUSE codec is ./fuse.
export { VirtioFs, DEFAULT_MAX_IN_FLIGHT, type VirtioFsOptions } from './device.js';
export { VirtioFsError } from './errors.js';
export * from './config.js';
export type { FuseChain, FuseRequestHandler } from './fuse-handler.js';
