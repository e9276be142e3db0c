// virtio-blk disks from the command line, opened before the VM is built (a missing or unreadable
// image is a clear error before anything starts).
import { VirtioBlock, type IoEngine } from '../devices/virtio/block/index.js';

export interface DiskDevice {
  name: string;
  device: VirtioBlock;
}

export async function openDisks(specs: readonly { path: string; readOnly: boolean; direct: boolean; engine?: IoEngine }[]): Promise<DiskDevice[]> {
  const out: DiskDevice[] = [];
  try {
    for (const [i, s] of specs.entries()) {
      out.push({ name: `virtio-blk${i}`, device: await VirtioBlock.open({ path: s.path, readOnly: s.readOnly, direct: s.direct, ...(s.engine ? { engine: s.engine } : {}) }) });
    }
  } catch (e) {
    await Promise.all(out.map((d) => d.device.dispose()));
    throw e;
  }
  return out;
}
