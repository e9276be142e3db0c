// Gathers what assessHost needs from this host's /dev/kvm.
import { Kvm, REQUIRED_CAPABILITIES } from '../vmm/kvm.js';
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

export function checkHost(): Assessment {
  const kvm = detectKvm();
  return assessHost(kvm, kvm.kind === 'absent' ? {} : probeCapabilities());
}
