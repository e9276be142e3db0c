// Where the kernels/ guest kernel and initramfs are: TSVMM_KERNEL / TSVMM_INITRD when set (the
// test driver builds them outside the test bed, whose view of the host is read-only, and passes
// the paths in), else whatever kernels/build.sh has already built. Never builds.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { packageRoot } from '../package-root.js';

export interface GuestKernel {
  bzImage: string;
  /** The uncompressed ELF beside the bzImage. */
  vmlinux: string;
  initramfs: string;
  /** The ext4 root file system image of kernels/build-rootfs.sh, when built. */
  rootfs?: string;
}

function builtPath(script: string, arg: string): string | undefined {
  try {
    const out = execFileSync('bash', [join(packageRoot(), 'kernels', script), arg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim().split('\n').pop();
  } catch {
    return undefined;
  }
}

export function findGuestKernel(env: NodeJS.ProcessEnv = process.env): GuestKernel | undefined {
  let bzImage = env.TSVMM_KERNEL;
  let initramfs = env.TSVMM_INITRD;
  if (!bzImage || !initramfs) {
    try {
      const out = execFileSync('bash', [join(packageRoot(), 'kernels', 'build.sh'), '--print-paths-if-built'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      [bzImage, initramfs] = out.trim().split('\n').slice(-2);
    } catch {
      return undefined;
    }
  }
  if (!bzImage || !initramfs) return undefined;
  const rootfs = env.TSVMM_ROOTFS || builtPath('build-rootfs.sh', '--if-built');
  return { bzImage, vmlinux: join(dirname(bzImage), 'vmlinux'), initramfs, ...(rootfs ? { rootfs } : {}) };
}
