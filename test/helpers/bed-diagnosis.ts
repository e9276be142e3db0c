// When a nested guest stops answering inside the test bed, was it tsvmm or the emulated machine?
// Evidence that does not depend on tsvmm decides (test/bed/README.md, "A nested guest that stops"):
//   - a control guest: QEMU (not tsvmm) boots the kernels/ guest under the same nested /dev/kvm,
//     now, beside the stopped tsvmm; QEMU 7.2's lost timer wake-up stalls every nested guest of
//     the machine it hits, QEMU's included, so a control guest that cannot boot convicts the bed;
//   - L1's own kernel log: "rcu_* kthread timer wakeup didn't happen" is that lost wake-up's
//     signature in L1 itself;
//   - KVM's state for the guest: a vCPU kept halted with interrupts on while a deliverable vector
//     waits in its IRR, in two reports its thread answered from KVM_RUN (vcpu-reports.ts).
// Also kept for the record: the tail of L1's KVM interrupt trace (kvm:* tracepoints, started
// for the bed's first nested guest), which shows what KVM injected into the stopped guest last.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { guestKernel } from './guest-kernel.js';
import { heldInterrupt } from './vcpu-reports.js';
import { HOST_TOOL_ENV } from './host-env.js';

/** Every failure that the bed's diagnosis puts on the emulated machine carries this word; the
 * runner retries an attempt only when all its failures do (test/runner/bed-attempt.ts). */
export const EMULATED_MACHINE_STALL = 'EMULATED-MACHINE-STALL';

export class EmulatedMachineStall extends Error {
  constructor(readonly evidence: string, details: string) {
    super(`${EMULATED_MACHINE_STALL}: ${evidence}\n${details}`);
    this.name = 'EmulatedMachineStall';
  }
}

export interface BedHealth {
  stalled: boolean;
  /** One line: why the machine is judged stalled or healthy. */
  evidence: string;
  /** The control guest's result, L1's stall lines and the KVM trace tail, for the log. */
  details: string;
}

const TRACEFS = '/sys/kernel/tracing';
/** What KVM did about interrupts, exits and wake-ups (Linux 6.1's kvm trace events). */
const KVM_EVENTS = ['kvm_exit', 'kvm_set_irq', 'kvm_ioapic_set_irq', 'kvm_pic_set_irq', 'kvm_apic_accept_irq', 'kvm_inj_virq', 'kvm_eoi', 'kvm_vcpu_wakeup', 'kvm_userspace_exit'];
const TRACE_MARK = '/tmp/.tsvmm-kvm-trace-on';
const L1_STALL = /rcu_\w+ kthread timer wakeup didn't happen/;
const CONTROL_TIMEOUT_MS = 120_000;

/** Starts L1's KVM trace once per bed machine (idempotent; a no-op where tracefs is missing). */
export function startKvmTrace(): void {
  if (existsSync(TRACE_MARK)) return;
  writeFileSync(TRACE_MARK, '');
  if (!existsSync(`${TRACEFS}/events`)) spawnSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS], { env: HOST_TOOL_ENV, timeout: 10_000 });
  for (const e of KVM_EVENTS) {
    try {
      writeFileSync(`${TRACEFS}/events/kvm/${e}/enable`, '1');
    } catch {
      // an event this kernel lacks: the others still trace
    }
  }
}

function kvmTraceTail(lines: number): string {
  const r = spawnSync('tail', ['-n', String(lines), `${TRACEFS}/trace`], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.trimEnd() : `(no KVM trace: ${(r.stderr || r.error?.message || `exit ${String(r.status)}`).trim()})`;
}

function l1StallLines(): string[] {
  const r = spawnSync('dmesg', [], { encoding: 'utf8', env: HOST_TOOL_ENV, timeout: 10_000 });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => L1_STALL.test(l)) : [];
}

const DEBUGFS = '/sys/kernel/debug';
/**
 * L1's log lines about its clock: its TSC rate (detected, refined), TSC marked unstable, KVM
 * seeing the TSC go back, clocksource switches, and KVM refusing a vCPU's TSC rate ("user
 * requested TSC rate below hardware speed": that vCPU's TSC multiplier stays 0, issue 26).
 */
const L1_CLOCK = /unstable|backwards TSC|clocksource: Switched|Marking TSC|tsc: Refined|tsc: Detected|TSC rate|TSC scaling ratio/i;

/** What L1's own log says about its clock (the last few lines), for the details. */
function l1ClockLines(): string[] {
  const r = spawnSync('dmesg', [], { encoding: 'utf8', env: HOST_TOOL_ENV, timeout: 10_000 });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => L1_CLOCK.test(l)).slice(-8) : [];
}

/**
 * KVM's per-vCPU TSC state in L1's debugfs (kvm/<pid>-<fd>/vcpuN/tsc-offset and
 * tsc-scaling-ratio): the offset KVM applies to L1's TSC for each nested guest.
 */
function kvmTscState(): string {
  if (!existsSync(`${DEBUGFS}/kvm`)) spawnSync('mount', ['-t', 'debugfs', 'nodev', DEBUGFS], { env: HOST_TOOL_ENV, timeout: 10_000 });
  try {
    const out: string[] = [];
    for (const vm of readdirSync(`${DEBUGFS}/kvm`).filter((d) => /^\d+-\d+$/.test(d))) {
      for (const vcpu of readdirSync(`${DEBUGFS}/kvm/${vm}`).filter((d) => /^vcpu\d+$/.test(d))) {
        const read = (f: string): string => {
          try {
            return readFileSync(`${DEBUGFS}/kvm/${vm}/${vcpu}/${f}`, 'utf8').trim();
          } catch {
            return '?';
          }
        };
        out.push(`${vm}/${vcpu}: tsc-offset ${read('tsc-offset')}, tsc-scaling-ratio ${read('tsc-scaling-ratio')}`);
      }
    }
    return out.length > 0 ? out.join('; ') : 'no VM in KVM debugfs';
  } catch (e) {
    return `(no KVM debugfs: ${(e as Error).message})`;
  }
}

interface ControlResult {
  /** 'booted': reached its marker and exited; 'stalled': started but did not; 'unavailable': could not run. */
  kind: 'booted' | 'stalled' | 'unavailable';
  detail: string;
}

/** Boots the kernels/ guest with QEMU microvm on the nested /dev/kvm, to its init marker. */
function controlGuest(): Promise<ControlResult> {
  const k = guestKernel();
  if (!k) return Promise.resolve({ kind: 'unavailable', detail: 'no kernels/ guest to boot' });
  const args = ['-M', 'microvm,acpi=off', '-enable-kvm', '-cpu', 'host', '-m', '128', '-smp', '1', '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot', '-device', 'i8042'];
  args.push('-kernel', k.bzImage, '-initrd', k.initramfs, '-append', 'console=ttyS0 reboot=k panic=1 pci=off quiet');
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CONTROL_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ kind: 'unavailable', detail: `qemu-system-x86_64: ${e.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const s = ((Date.now() - t0) / 1000).toFixed(1);
      const marker = /TSVMM-INIT-OK[^\r\n]*/.exec(out)?.[0];
      if (marker !== undefined && !timedOut) resolve({ kind: 'booted', detail: `QEMU microvm booted the kernels/ guest to its marker in ${s} s` });
      else if (timedOut) {
        const how = marker === undefined ? 'did not reach its init marker' : 'reached its init marker but did not end (its power-off waits on timers)';
        resolve({ kind: 'stalled', detail: `QEMU microvm's run of the kernels/ guest ${how} in ${CONTROL_TIMEOUT_MS / 1000} s, where it takes about 3 s (console: ${JSON.stringify(out.slice(-300))})` });
      }
      else resolve({ kind: 'unavailable', detail: `QEMU exited with ${String(code)} after ${s} s without the marker: ${JSON.stringify(out.slice(-300))}` });
    });
  });
}

/** The guest's own kernel reporting that its timer interrupts stopped (its LAPIC timer is KVM's). */
const GUEST_TIMER_STALL = /rcu: rcu_\w+ kthread timer wakeup didn't happen[^\r\n]*/;

/**
 * Judges the emulated machine while the stopped guest is still there (call before killing it),
 * from the control guest, L1's log, and what KVM holds for the guest (`tsvmmStderr`: tsvmm's
 * reports, vcpu-reports.ts); `guestConsole` only adds the guest's own timer-stall line to the
 * details.
 */
export async function diagnoseEmulatedMachine(tsvmmStderr: string, guestConsole: string): Promise<BedHealth> {
  const trace = kvmTraceTail(60);
  const tscState = kvmTscState();
  const held = heldInterrupt(tsvmmStderr);
  const control = await controlGuest();
  const stallLines = l1StallLines();
  const clockLines = l1ClockLines();
  const tscRefused = clockLines.find((l) => /TSC rate below hardware speed/.test(l));
  const guestStall = GUEST_TIMER_STALL.exec(guestConsole)?.[0];
  const details = [
    `control guest: ${control.detail}`,
    `L1 kernel log: ${stallLines.length ? stallLines.join(' / ') : 'no timer-wakeup stall logged'}`,
    `KVM's view of the guest: ${held ?? 'no interrupt held back in two reports (see the vCPU lines above)'}`,
    `the guest's own log: ${guestStall ?? 'no timer-wakeup stall'}`,
    `L1's clock in its log: ${clockLines.join(' / ') || 'nothing'}`,
    `KVM's TSC state per vCPU (L1 debugfs): ${tscState}`,
    `L1 KVM trace, last events:`,
    trace,
  ].join('\n');
  if (tscRefused) {
    const evidence = `emulated machine at fault: L1's KVM refused a vCPU's TSC rate ("${tscRefused.trim()}"), which leaves that vCPU's TSC multiplier at 0 and its TSC-deadline timer late by L1's uptime`;
    return { stalled: true, evidence, details };
  }
  if (control.kind === 'stalled') return { stalled: true, evidence: `emulated machine stalled: ${control.detail}`, details };
  if (stallLines.length > 0) return { stalled: true, evidence: `emulated machine stalled: L1 logged "${(stallLines[0] as string).trim()}"`, details };
  if (held !== undefined) return { stalled: true, evidence: `emulated machine stalled: ${held}`, details };
  const why = control.kind === 'booted' ? control.detail : `control guest unavailable (${control.detail})`;
  return { stalled: false, evidence: `emulated machine healthy: ${why}; L1 logged no timer-wakeup stall; KVM held no interrupt back`, details };
}
