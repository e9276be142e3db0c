// test/helpers/vcpu-reports.ts: telling an interrupt tsvmm never raised (a failure) from one KVM
// holds back in the guest's IRR (the emulated machine's fault), from tsvmm's SIGUSR2 reports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { heldInterrupt, parseVcpuReports } from '../helpers/vcpu-reports.js';

/** A vCPU report line as tsvmm prints it (this one from the CI run's write-read-256mib stop). */
const line = (opts: { state?: string; flags?: string; ppr?: number; irr?: string; vcpu?: number } = {}): string =>
  `[tsvmm] report: vCPU ${opts.vcpu ?? 0}: rip 0xffffffff8101a5ee rsp 0xffffffff81a03ed0 rflags 0x246 (interrupts ${opts.flags ?? 'on'}) cr3 0x31c9000 mp_state ${opts.state ?? 'halted'}, 5132 exits so far; LAPIC on, TPR 16 PPR ${opts.ppr ?? 16}, IRR [${opts.irr ?? '35'}] ISR [] TMR [], timer tsc-deadline vector 236 count 0/0, TSC deadline +454932136607 TSC ticks from now`;
const other = '[tsvmm] report: serial0: IER 0x7 LCR 0x13 MCR 0xb, THR-empty interrupt pending 1, receive FIFO 0 bytes';

test('parseVcpuReports: state, interrupt flag, PPR and IRR of each vCPU line', () => {
  assert.equal(parseVcpuReports([other, line(), line({ vcpu: 1, state: 'runnable', flags: 'off', irr: '', ppr: 0 })].join('\n')), [
    { vcpu: 0, halted: true, interruptsOn: true, ppr: 16, irr: [35] },
    { vcpu: 1, halted: false, interruptsOn: false, ppr: 0, irr: [] },
  ]);
  assert.equal(parseVcpuReports('[tsvmm] report: vCPU 0: rip 0x1 rflags 0x2 (interrupts on) mp_state halted, 1 exits so far; LAPIC unreadable: ENXIO'), []);
});

test('heldInterrupt: two answered reports, halted, interrupts on, the same deliverable vector: KVM held it', () => {
  const held = heldInterrupt([line(), other, line()].join('\n'));
  assert.match(held ?? '', /KVM held vector 35 in vCPU 0's IRR \(above PPR 16\)/);
});

test('heldInterrupt: nothing to say without two such reports (a lost interrupt leaves IRR empty: tsvmm is suspect)', () => {
  const none = (text: string, why: string): void => assert.is(heldInterrupt(text), undefined, why);
  none(line(), 'one report only');
  none([line({ irr: '' }), line({ irr: '' })].join('\n'), 'IRR empty: the interrupt never reached the LAPIC');
  none([line({ irr: '20', ppr: 32 }), line({ irr: '20', ppr: 32 })].join('\n'), 'vector 20 is not above PPR 32');
  none([line(), line({ state: 'runnable' })].join('\n'), 'it ran again');
  none([line({ flags: 'off' }), line({ flags: 'off' })].join('\n'), 'interrupts off: the guest is not ready for it');
  none([line({ irr: '35' }), line({ irr: '41' })].join('\n'), 'a different vector each time: interrupts are moving');
  none([line({ vcpu: 0 }), line({ vcpu: 1 })].join('\n'), 'one report of each of two vCPUs');
});

test.run();
