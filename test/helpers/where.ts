// Where a KVM test runs, for its output: "native <kind of /dev/kvm>" or "test bed".
import { detectKvm } from '../../src/check/host.js';

export function whereLabel(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TSVMM_WHERE === 'testbed') return 'test bed (nested KVM in QEMU TCG)';
  return `native ${detectKvm(env).kind}`;
}
