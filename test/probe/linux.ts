// Probe: can this host's /dev/kvm boot the kernels/ guest to its init? Prints one line; exit 0
// yes, 1 no. kvm-pvm is recognised without trying: it stops a stock kernel with an emulation
// failure (measured), and its slow bzImage decompression would only burn the time limit.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { detectKvm } from '../../src/check/host.js';
import { packageRoot } from '../../src/package-root.js';
import { guestKernel } from '../helpers/guest-kernel.js';

const TIMEOUT_MS = 60_000;

function probe(): string | undefined {
  const kvm = detectKvm();
  if (kvm.kind === 'absent') return kvm.detail;
  if (!kvm.accessible) return '/dev/kvm is not read-writable by this user';
  if (kvm.kind === 'kvm-pvm') return 'kvm-pvm provides this /dev/kvm: it cannot boot a stock Linux kernel';
  const k = guestKernel();
  if (!k) return 'the guest kernel is not built (npm run kernel)';
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'tsvmm.js'), 'boot', k.bzImage, '--initrd', k.initramfs], {
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    input: '',
  });
  if (r.error) return `tsvmm boot did not finish within ${TIMEOUT_MS / 1000} s`;
  if (!/TSVMM-INIT-OK/.test(r.stdout)) {
    const last = `${r.stderr}`.trim().split('\n').pop() ?? '';
    return `the guest did not reach its init marker (${last})`;
  }
  return undefined;
}

const why = probe();
console.log(why ? `linux probe: no (${why})` : 'linux probe: yes');
process.exitCode = why ? 1 : 0;
