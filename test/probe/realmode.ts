// Probe: can this host's /dev/kvm run a real-mode toy guest (what the addon tests and the exit
// benchmark need)? Prints one line; exit 0 yes, 1 no. Run in its own process with a timeout by
// scripts/test.mjs, so a KVM that hangs cannot hang the test run.
import { realModeGuest } from '../helpers/realmode.js';

const KVM_EXIT_IO = 2;

function probe(): string | undefined {
  // mov dx,0x1234; mov al,0x99; out dx,al; hlt
  const g = realModeGuest([0xba, 0x34, 0x12, 0xb0, 0x99, 0xee, 0xf4], { ram: 0x10000 });
  try {
    const reason = g.vcpu.runOnce();
    if (reason !== KVM_EXIT_IO) return `expected a PIO exit, got exit reason ${reason}`;
    if (g.vcpu.run.getUint16(34, true) !== 0x1234) return 'PIO exit on the wrong port';
    return undefined;
  } finally {
    g.dispose();
  }
}

try {
  const why = probe();
  console.log(why ? `realmode probe: no (${why})` : 'realmode probe: yes');
  process.exitCode = why ? 1 : 0;
} catch (e) {
  console.log(`realmode probe: no (${e instanceof Error ? e.message : String(e)})`);
  process.exitCode = 1;
}
