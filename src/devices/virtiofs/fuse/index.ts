// The FUSE codec of the virtio-fs device (virtio 1.2 §5.11; include/uapi/linux/fuse.h 7.38):
// constants, request decoding, reply and dirent encoding. Pure: no I/O, no guest memory.
export * from './constants.js';
export * from './errors.js';
export { defineStruct, pad, readStruct, writeStruct, type Layout, type LaidOutField, type ValueOfLayout } from './layout.js';
export * from './structs.js';
export { decodeRequest, REQUEST_OPCODES, type DecodeOptions, type FuseRequest, type FuseRequestBody, type FuseRequestKind } from './request.js';
export { isSingleComponent, nameToString } from './names.js';
export * from './reply.js';
export * from './dirent.js';
