// KVM's own event counters (debugfs /sys/kernel/debug/kvm/<name>: sums over every vCPU of every
// VM on the host), read around each test of a benchmark (bench/blk.ts, bench/vsock.ts). With one VM running at a time,
// as the benchmark does, their differences are that VM's exits per request whichever VMM runs
// it: QEMU's included, which counts nothing itself.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const DIR = '/sys/kernel/debug/kvm';

/** The counters reported: every exit; those that reached user space (MMIO, PIO); HLTs; interrupts
 * injected; and the time a halted vCPU spent polling for a wake-up before it slept (halt polling:
 * ns that ended in a wake-up, ns that did not), CPU the vCPU thread holds while the VMM's other
 * threads may be waiting for it. */
export const KVM_COUNTERS = ['exits', 'mmio_exits', 'io_exits', 'halt_exits', 'irq_injections', 'halt_poll_success_ns', 'halt_poll_fail_ns'] as const;
export type KvmCounters = Record<(typeof KVM_COUNTERS)[number], number>;

/**
 * Whether the counters can be read. Inside the test bed (a throw-away machine of our own) debugfs
 * is mounted when it is not; on any other host it is only used if already mounted.
 */
export function kvmStatsAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  if (existsSync(`${DIR}/exits`)) return true;
  if (env.TSVMM_WHERE !== 'testbed') return false;
  try {
    execFileSync('mount', ['-t', 'debugfs', 'debugfs', '/sys/kernel/debug'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  return existsSync(`${DIR}/exits`);
}

export function readKvmCounters(): KvmCounters | undefined {
  try {
    const out: Partial<KvmCounters> = {};
    for (const k of KVM_COUNTERS) out[k] = Number(readFileSync(`${DIR}/${k}`, 'utf8').trim());
    return out as KvmCounters;
  } catch {
    return undefined;
  }
}

export function subtractCounters(b: KvmCounters, a: KvmCounters): KvmCounters {
  const out: Partial<KvmCounters> = {};
  for (const k of KVM_COUNTERS) out[k] = b[k] - a[k];
  return out as KvmCounters;
}
