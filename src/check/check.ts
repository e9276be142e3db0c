// Gathers what assessHost needs from this host's /dev/kvm.
import { Kvm, REQUIRED_CAPABILITIES } from '../vmm/kvm.js';
import { findGuestKernel } from './guest-kernel.js';
import { detectKvm } from './host.js';
import { assessHost, type Assessment, type CapabilityProbe } from './assess.js';
import { ioRingUnsupported } from '../vmm/io-ring.js';

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
  const k = findGuestKernel();
  return k ? `guest kernel: built (${k.bzImage}, ${k.initramfs})` : 'guest kernel: not built; npm run kernel builds it (a few minutes)';
}

/** One line on io_uring, the engine of :direct disks where it is available (backend.ts), given
 * ioRingUnsupported()'s answer (undefined: available). */
export function ioRingLine(why: string | undefined): string {
  return why === undefined ? 'io_uring: available (the default I/O engine of :direct disks)' : `io_uring: not available (${why}); disks use libuv's threadpool`;
}

export function checkHost(): Assessment {
  const kvm = detectKvm();
  const a = assessHost(kvm, kvm.kind === 'absent' ? {} : probeCapabilities());
  a.lines.push(guestKernelLine());
  a.lines.push(ioRingLine(ioRingUnsupported()));
  return a;
}
