// What kind of /dev/kvm this host has. The device node alone proves little: kvm-pvm provides one
// that runs real-mode toy guests but not Linux. Pure probes of the file system only; the runtime
// probe that boots a guest lives with the test harness.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import type { HostInfo, KvmKind } from '../bench/exits/model.js';

export interface KvmDetection {
  kind: KvmKind;
  detail: string;
  /** /dev/kvm exists and this user may open it read-write. */
  accessible: boolean;
}

/** Where the probes look; tests point it at a fake tree. */
export interface HostPaths {
  devKvm: string;
  sysModule: string;
  cpuinfo: string;
}

export const DEFAULT_PATHS: HostPaths = { devKvm: '/dev/kvm', sysModule: '/sys/module', cpuinfo: '/proc/cpuinfo' };

export function detectKvm(env: NodeJS.ProcessEnv = process.env, paths: HostPaths = DEFAULT_PATHS): KvmDetection {
  const present = existsSync(paths.devKvm);
  let accessible = false;
  if (present) {
    try {
      accessSync(paths.devKvm, constants.R_OK | constants.W_OK);
      accessible = true;
    } catch {
      accessible = false;
    }
  }
  const mod = (name: string): boolean => existsSync(`${paths.sysModule}/${name}`);
  if (!present) return { kind: 'absent', detail: `${paths.devKvm} does not exist`, accessible };
  if (env.TSVMM_WHERE === 'testbed') {
    return { kind: 'testbed', detail: 'nested KVM (kvm_amd) inside the QEMU TCG test bed', accessible };
  }
  if (mod('kvm_pvm')) {
    return { kind: 'kvm-pvm', detail: 'provided by the kvm-pvm module (/sys/module/kvm_pvm): toy guests only', accessible };
  }
  if (mod('kvm_intel')) return { kind: 'hardware', detail: 'kvm_intel (VT-x)', accessible };
  if (mod('kvm_amd')) return { kind: 'hardware', detail: 'kvm_amd (AMD-V)', accessible };
  return { kind: 'unknown', detail: `${paths.devKvm} exists but no known KVM module is loaded`, accessible };
}

export function cpuModel(cpuinfo = DEFAULT_PATHS.cpuinfo): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync(cpuinfo, 'utf8'));
    return m?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function hostInfo(env: NodeJS.ProcessEnv = process.env): HostInfo {
  const kvm = detectKvm(env);
  return {
    hostname: hostname(),
    kernel: release(),
    cpuModel: cpuModel(),
    kvmKind: kvm.kind,
    kvmDetail: kvm.detail,
    node: process.version,
  };
}
