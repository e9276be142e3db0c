// Gathers what assessHost needs from this host's /dev/kvm.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Kvm, REQUIRED_CAPABILITIES } from '../vmm/kvm.js';
import { packageRoot } from '../package-root.js';
import { detectKvm } from './host.js';
import { assessHost, type Assessment, type CapabilityProbe } from './assess.js';

export function probeCapabilities(): CapabilityProbe {
  let kvm: Kvm | undefined;
  try {
    kvm = Kvm.open();
    const missing = kvm.missingCapabilities();
    return {
      apiVersion: kvm.apiVersion(),
      missing,
      present: REQUIRED_CAPABILITIES.filter((c) => !missing.includes(c)),
    };
  } catch (e) {
    return { openError: e instanceof Error ? e.message : String(e) };
  } finally {
    kvm?.dispose();
  }
}

/** One line on the kernels/ guest: built (with paths) or how to build it. */
export function guestKernelLine(): string {
  try {
    const out = execFileSync('bash', [join(packageRoot(), 'kernels', 'build.sh'), '--print-paths-if-built'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const [bzImage, initramfs] = out.trim().split('\n').slice(-2);
    return `guest kernel: built (${bzImage}, ${initramfs})`;
  } catch {
    return 'guest kernel: not built; npm run kernel builds it (a few minutes)';
  }
}

export function checkHost(): Assessment {
  const kvm = detectKvm();
  const a = assessHost(kvm, kvm.kind === 'absent' ? {} : probeCapabilities());
  a.lines.push(guestKernelLine());
  return a;
}
