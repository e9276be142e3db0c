// Pure reader of the x86 boot protocol header of a bzImage: where its compressed payload (the
// ELF vmlinux) lies. Booting the extracted vmlinux through its PVH note lets QEMU skip the
// in-guest decompression, which under TCG costs ~2.7 s per boot (issue 4).
import { KernelImageError } from './errors.js';

export type PayloadFormat = 'xz' | 'gzip' | 'zstd' | 'lzma' | 'bzip2' | 'lz4' | 'lzo' | 'unknown';

export interface BzImagePayload {
  /** Byte offset of the compressed payload in the bzImage file. */
  offset: number;
  /** Its length, including the 4-byte decompressed size some formats have appended. */
  length: number;
  format: PayloadFormat;
}

const MAGICS: ReadonlyArray<readonly [PayloadFormat, readonly number[]]> = [
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['lzma', [0x5d, 0x00, 0x00]],
];

export function payloadFormat(bytes: Uint8Array): PayloadFormat {
  for (const [format, magic] of MAGICS) {
    if (magic.every((b, i) => bytes[i] === b)) return format;
  }
  return 'unknown';
}

/**
 * Boot protocol (Documentation/x86/boot.rst): "HdrS" at 0x202, version at 0x206,
 * setup_sects at 0x1f1 (0 means 4), payload_offset/payload_length at 0x248/0x24c (>= 2.08),
 * the offset counted from the protected-mode code, which follows the (setup_sects+1) sectors.
 */
export function locatePayload(image: Uint8Array, name = 'bzImage'): BzImagePayload {
  if (image.length < 0x250) throw new KernelImageError(`${name} is ${image.length} bytes, too short to be a bzImage`);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (view.getUint32(0x202, true) !== 0x53726448) {
    throw new KernelImageError(`${name} has no "HdrS" boot header at 0x202: not an x86 bzImage`);
  }
  const version = view.getUint16(0x206, true);
  if (version < 0x208) {
    throw new KernelImageError(
      `${name} speaks boot protocol ${(version >> 8).toString()}.${(version & 0xff).toString()}, ` +
        'older than 2.08, so it does not say where its payload is',
    );
  }
  const setupSects = image[0x1f1] === 0 ? 4 : (image[0x1f1] ?? 4);
  const offset = (setupSects + 1) * 512 + view.getUint32(0x248, true);
  const length = view.getUint32(0x24c, true);
  if (length === 0 || offset + length > image.length) {
    throw new KernelImageError(`${name} says its payload is ${length} bytes at ${offset}, outside the ${image.length}-byte file`);
  }
  return { offset, length, format: payloadFormat(image.subarray(offset, offset + 8)) };
}

/** ELF magic: what a correctly decompressed payload starts with. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}
