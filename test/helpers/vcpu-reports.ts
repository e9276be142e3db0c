// Reads the vCPU lines of tsvmm's SIGUSR2 reports (src/vmm/vcpu-loop.ts describeVcpu, with the
// LAPIC of src/vmm/lapic-state.ts) to tell a lost interrupt from one KVM holds back. An interrupt
// tsvmm never raised leaves the guest's IRR empty. One that sits in IRR above the processor
// priority while the vCPU stays halted with interrupts on, across two reports that the vCPU's
// thread answered (so it was inside KVM_RUN each time), was raised and reached the LAPIC, and KVM
// did not deliver it: no device code of tsvmm's is on that path.

export interface VcpuReport {
  vcpu: number;
  halted: boolean;
  interruptsOn: boolean;
  ppr: number;
  irr: number[];
}

const LINE = /^\[tsvmm\] report: vCPU (\d+): .*\(interrupts (on|off)\).* mp_state (\S+), .*; LAPIC on, TPR \d+ PPR (\d+), IRR \[([\d ]*)\]/;

export function parseVcpuReports(stderr: string): VcpuReport[] {
  const out: VcpuReport[] = [];
  for (const line of stderr.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    out.push({
      vcpu: Number(m[1]),
      interruptsOn: m[2] === 'on',
      halted: m[3] === 'halted',
      ppr: Number(m[4]),
      irr: (m[5] ?? '').split(' ').filter((v) => v !== '').map(Number),
    });
  }
  return out;
}

/** A vector the LAPIC would deliver now: its priority class above the PPR's (Intel SDM §11.8.3.1). */
function deliverable(r: VcpuReport): number | undefined {
  return r.irr.find((v) => v >> 4 > r.ppr >> 4);
}

/**
 * One sentence when some vCPU's last two reports both show it halted, interrupts on, with the
 * same deliverable vector in IRR; undefined otherwise.
 */
export function heldInterrupt(stderr: string): string | undefined {
  const reports = parseVcpuReports(stderr);
  for (const vcpu of new Set(reports.map((r) => r.vcpu))) {
    const mine = reports.filter((r) => r.vcpu === vcpu);
    const [a, b] = mine.slice(-2);
    if (!a || !b || mine.length < 2) continue;
    const v = deliverable(b);
    if (a.halted && b.halted && a.interruptsOn && b.interruptsOn && v !== undefined && a.irr.includes(v)) {
      return `KVM held vector ${v} in vCPU ${vcpu}'s IRR (above PPR ${b.ppr}) while the vCPU stayed halted with interrupts on, over two reports its thread answered from KVM_RUN: the interrupt was raised and not delivered`;
    }
  }
  return undefined;
}
