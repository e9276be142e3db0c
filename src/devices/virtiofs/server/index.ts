// The virtio-fs passthrough server: a FuseRequestHandler over one confined host directory.
export { PassthroughServer, MAX_PAGES, MAX_WRITE, OFFERED_INIT_FLAGS, type PassthroughServerOptions } from './server.js';
export { DEFAULT_MAX_INODES, FD_RESERVE, defaultMaxInodes } from './inode-table.js';
