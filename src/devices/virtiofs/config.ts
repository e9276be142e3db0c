// virtio-fs constants and configuration space (virtio 1.2 §5.11.2-§5.11.4), as pure functions:
// the tag and request-queue count the driver reads, the queue layout, and the DAX window's
// shared-memory region (§5.11.5, shmid VIRTIO_FS_SHMCAP_ID_CACHE).
import { VirtioFsError } from './errors.js';

/** Device ID of a file-system device (§5). */
export const VIRTIO_ID_FS = 26;
/** struct virtio_fs_config: u8 tag[36], le32 num_request_queues (§5.11.4). */
export const VIRTIO_FS_TAG_BYTES = 36;
export const CONFIG_OFFSETS = { tag: 0, numRequestQueues: 36 } as const;
export const CONFIG_SIZE = 40;
/** Queue 0 is hiprio (FORGET, §5.11.6.1); 1.. are the request queues (§5.11.2). */
export const HIPRIO_QUEUE = 0;
export const FIRST_REQUEST_QUEUE = 1;
/**
 * Request queues this device offers at most. Linux's virtio_fs (6.1) creates every queue offered
 * but sends all requests through the first, so more buys a Linux guest nothing yet; 8 leaves room
 * under the transport's 16 queues.
 */
export const MAX_REQUEST_QUEUES = 8;
/**
 * QueueNumMax of every queue. Linux sizes its ring from it and limits a request to
 * ring size - 4 descriptors (FUSE_HEADER_OVERHEAD in fs/fuse/virtio_fs.c): 1024 leaves room for
 * 1 MiB reads and writes (256 pages, FUSE_MAX_MAX_PAGES) as direct chains; virtiofsd and Cloud
 * Hypervisor offer the same.
 */
export const VIRTIO_FS_QUEUE_SIZE = 1024;
/** The DAX window's shmid (§5.11.5: VIRTIO_FS_SHMCAP_ID_CACHE). */
export const VIRTIO_FS_SHMCAP_ID_CACHE = 0;
/** The DAX window is mapped in 2 MiB ranges (Linux's FUSE_DAX_SHIFT), so its size and base are 2 MiB aligned. */
export const DAX_WINDOW_ALIGN_MIB = 2;
/** The largest DAX window accepted: 64 GiB of guest-physical space above RAM per share, far more
 * file data than a microVM's guest keeps mapped, and small beside the address space above RAM. */
export const MAX_DAX_WINDOW_MIB = 64 * 1024;

/** What is wrong with `tag` as a virtio-fs tag, or undefined (§5.11.4: 36 bytes of UTF-8, NUL padded). */
export function tagProblem(tag: string): string | undefined {
  const bytes = Buffer.byteLength(tag, 'utf8');
  if (bytes === 0 || bytes > VIRTIO_FS_TAG_BYTES) return `is ${bytes} bytes of UTF-8; a virtio-fs tag is 1 to ${VIRTIO_FS_TAG_BYTES} (§5.11.4)`;
  if (tag.includes('\0')) return 'holds a NUL byte, which would end it early in the NUL-padded config field (§5.11.4)';
  // Linux (since 6.9) refuses a tag with a newline: it is shown one per line in sysfs.
  if (tag.includes('\n')) return 'holds a newline, which Linux guests refuse';
  if (/\p{Cs}/u.test(tag)) return 'is not valid Unicode (a lone surrogate)';
  return undefined;
}

/** What is wrong with a DAX window of `mib` MiB, or undefined: 0 (none) or a multiple of 2 MiB up to the cap. */
export function daxWindowProblem(mib: number): string | undefined {
  if (!Number.isInteger(mib) || mib < 0 || mib > MAX_DAX_WINDOW_MIB || mib % DAX_WINDOW_ALIGN_MIB !== 0) {
    return `${mib} MiB is not 0 (no window) or a multiple of ${DAX_WINDOW_ALIGN_MIB} MiB up to ${MAX_DAX_WINDOW_MIB} MiB (64 GiB)`;
  }
  return undefined;
}

/** struct virtio_fs_config (§5.11.4): the tag's UTF-8 bytes NUL-padded to 36, then num_request_queues. */
export function fsConfig(tag: string, numRequestQueues: number): Uint8Array {
  const problem = tagProblem(tag);
  if (problem) throw new VirtioFsError(`virtio-fs: tag ${JSON.stringify(tag)} ${problem}`);
  if (!Number.isInteger(numRequestQueues) || numRequestQueues < 1 || numRequestQueues > MAX_REQUEST_QUEUES) {
    throw new VirtioFsError(`virtio-fs: ${numRequestQueues} request queues; give 1 to ${MAX_REQUEST_QUEUES}`);
  }
  const bytes = new Uint8Array(CONFIG_SIZE);
  bytes.set(Buffer.from(tag, 'utf8'), CONFIG_OFFSETS.tag);
  new DataView(bytes.buffer).setUint32(CONFIG_OFFSETS.numRequestQueues, numRequestQueues, true);
  return bytes;
}
