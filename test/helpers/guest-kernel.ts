// Where the kernels/ guest kernel and initramfs are, for tests that boot Linux. scripts/test.mjs
// builds them before these tests run (outside the test bed, whose view of the host is read-only)
// and passes the paths in TSVMM_KERNEL / TSVMM_INITRD; otherwise ask kernels/build.sh.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export interface GuestKernel {
  bzImage: string;
  vmlinux: string;
  initramfs: string;
}

export function guestKernel(): GuestKernel | undefined {
  let bzImage = process.env.TSVMM_KERNEL;
  let initramfs = process.env.TSVMM_INITRD;
  if (!bzImage || !initramfs) {
    try {
      const out = execFileSync('bash', [join(packageRoot(), 'kernels', 'build.sh'), '--print-paths-if-built'], { encoding: 'utf8' });
      const lines = out.trim().split('\n');
      bzImage = lines[lines.length - 2];
      initramfs = lines[lines.length - 1];
    } catch {
      return undefined;
    }
  }
  if (!bzImage || !initramfs) return undefined;
  return { bzImage, vmlinux: join(bzImage, '..', 'vmlinux'), initramfs };
}
