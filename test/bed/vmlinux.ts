// Chooses and prepares the kernel image QEMU boots: the uncompressed ELF vmlinux taken out of
// the bzImage when the kernel has a PVH entry (QEMU then skips in-guest decompression), else
// the bzImage itself.
import { open, readFile } from 'node:fs/promises';
import { isElf, locatePayload } from './bzimage.js';
import { runCommand } from './exec.js';
import { KernelImageError } from './errors.js';
import { progress } from './log.js';

/** True when the kernel config says CONFIG_PVH=y (QEMU can enter the ELF vmlinux directly). */
export function hasPvhEntry(kernelConfig: string): boolean {
  return /^CONFIG_PVH=y$/m.test(kernelConfig);
}

/** Decompresses the bzImage's payload into `outPath` and checks that it is an ELF file. */
export async function extractVmlinux(bzImagePath: string, outPath: string): Promise<void> {
  const image = await readFile(bzImagePath);
  const payload = locatePayload(image, bzImagePath);
  // Debian builds with CONFIG_KERNEL_XZ; other formats would need their own decompressor.
  if (payload.format !== 'xz') {
    throw new KernelImageError(`the payload of ${bzImagePath} is ${payload.format}-compressed; the test bed only extracts xz payloads`);
  }
  progress(`extracting the uncompressed vmlinux from ${bzImagePath} (xz) ...`);
  // --single-stream: the payload ends with a 4-byte size that is not part of the xz stream.
  await runCommand(['xz', '-dc', '--single-stream'], {
    input: image.subarray(payload.offset, payload.offset + payload.length),
    stdoutFile: outPath,
    hint: `the xz payload of ${bzImagePath} could not be decompressed; is xz-utils installed?`,
  });
  const head = new Uint8Array(4);
  const fh = await open(outPath, 'r');
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (!isElf(head)) throw new KernelImageError(`the decompressed payload of ${bzImagePath} (${outPath}) is not an ELF vmlinux`);
}
