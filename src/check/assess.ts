// `tsvmm check`: can this host run tsvmm guests, and if not, what to do. The assessment is pure
// (detection and capability results in, lines and a verdict out) so it is tested everywhere.
import type { KvmDetection } from './host.js';

export interface CapabilityProbe {
  /** The API version, or the error that stopped us from asking. */
  apiVersion?: number;
  openError?: string;
  missing?: string[];
  present?: string[];
}

export interface Assessment {
  /** A Linux guest can be expected to boot natively here. */
  linuxBoots: boolean;
  /** A real-mode toy guest (addon tests, the exit benchmark) can run natively. */
  toyGuests: boolean;
  lines: string[];
}

const TESTBED = 'run Linux-booting tests in the nested-KVM test bed: npm run test:kvm';

export function assessHost(kvm: KvmDetection, probe: CapabilityProbe): Assessment {
  const lines: string[] = [];
  if (kvm.kind === 'absent') {
    lines.push(`/dev/kvm: absent (${kvm.detail})`);
    lines.push(`verdict: tsvmm cannot run guests here; load kvm_intel/kvm_amd on a host with VT-x/AMD-V, or ${TESTBED}`);
    return { linuxBoots: false, toyGuests: false, lines };
  }
  if (!kvm.accessible || probe.openError) {
    lines.push(`/dev/kvm: present but not usable by this user (${probe.openError ?? 'no read-write access'})`);
    lines.push('verdict: add this user to the kvm group (usermod -aG kvm $USER, then log in again) or run as root');
    return { linuxBoots: false, toyGuests: false, lines };
  }
  lines.push(`/dev/kvm: present, read-write, ${kvm.kind} (${kvm.detail})`);
  if (probe.apiVersion !== undefined) lines.push(`KVM API version ${probe.apiVersion}`);
  const missing = probe.missing ?? [];
  if (missing.length > 0) {
    lines.push(`capabilities missing: ${missing.join(', ')}`);
    lines.push('verdict: this KVM lacks capabilities tsvmm needs; use a newer host kernel or hardware KVM');
    return { linuxBoots: false, toyGuests: false, lines };
  }
  lines.push(`capabilities: all required present (${(probe.present ?? []).map((c) => c.replace(/^KVM_CAP_/, '')).join(', ')})`);
  switch (kvm.kind) {
    case 'kvm-pvm':
      lines.push(
        'verdict: toy guests only: kvm-pvm runs real-mode guests (addon tests, tsvmm bench exits) but stops a Linux kernel with an emulation failure; ' +
          TESTBED,
      );
      return { linuxBoots: false, toyGuests: true, lines };
    case 'hardware':
      lines.push('verdict: hardware KVM: Linux guests can boot here');
      return { linuxBoots: true, toyGuests: true, lines };
    case 'testbed':
      lines.push('verdict: nested KVM inside the test bed: Linux guests can boot here (slowly)');
      return { linuxBoots: true, toyGuests: true, lines };
    default:
      lines.push(`verdict: unrecognised KVM provider; toy guests should run, but whether Linux boots is unknown; ${TESTBED}`);
      return { linuxBoots: false, toyGuests: true, lines };
  }
}
