// The read-only ext4 "tools" disk of test/guest/build.sh (vsockt, blkbench) for tests that run
// programs inside the guest: TSVMM_GUEST_TOOLS when set (scripts/test.mjs builds it outside the
// test bed, whose view of the host is read-only), else test/guest/build.sh builds or finds it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export function guestTools(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TSVMM_GUEST_TOOLS) return env.TSVMM_GUEST_TOOLS;
  try {
    const out = execFileSync('bash', [join(packageRoot(), 'test', 'guest', 'build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const tools = out.trim().split('\n').pop();
    return tools?.endsWith('tools.ext4') ? tools : undefined;
  } catch {
    return undefined;
  }
}

/** The shell line that mounts the tools disk (the virtio disk labelled tsvmm-tools) at /mnt/t. */
export const MOUNT_TOOLS = 'mkdir -p /mnt/t && for d in /sys/block/vd*; do n=${d##*/}; mount -t ext4 -o ro /dev/$n /mnt/t 2>/dev/null && [ -x /mnt/t/vsockt ] && break; umount /mnt/t 2>/dev/null; done';
