// Reads the local APIC register page that KVM_GET_LAPIC returns (struct kvm_lapic_state: the
// xAPIC's 1 KiB of registers, Intel SDM vol. 3 §11.4.1 table 11-1), for a stuck-guest report:
// which vectors are requested (IRR) and in service (ISR), the priorities, and the timer.
export const LAPIC_STATE_SIZE = 1024;

const TPR = 0x80;
const PPR = 0xa0;
const SVR = 0xf0;
const ISR = 0x100;
const TMR = 0x180;
const IRR = 0x200;
const LVT_TIMER = 0x320;
const TIMER_INITIAL = 0x380;
const TIMER_CURRENT = 0x390;
const TIMER_DIVIDE = 0x3e0;

const TIMER_MODES = ['one-shot', 'periodic', 'tsc-deadline', 'reserved'];

export interface LapicSummary {
  tpr: number;
  ppr: number;
  enabled: boolean;
  /** Vectors whose bit is set in IRR, ISR and TMR (level-triggered), lowest first. */
  irr: number[];
  isr: number[];
  tmr: number[];
  timer: { vector: number; masked: boolean; mode: string; initialCount: number; currentCount: number; divide: number };
}

/** The vectors set in the 256-bit register at `base` (eight 32-bit words, 16 bytes apart). */
function vectors(v: DataView, base: number): number[] {
  const out: number[] = [];
  for (let word = 0; word < 8; word++) {
    const bits = v.getUint32(base + word * 16, true);
    for (let b = 0; b < 32; b++) if ((bits >>> b) & 1) out.push(word * 32 + b);
  }
  return out;
}

export function decodeLapic(state: Uint8Array): LapicSummary {
  if (state.byteLength < LAPIC_STATE_SIZE) throw new RangeError(`a LAPIC state is ${LAPIC_STATE_SIZE} bytes, got ${state.byteLength}`);
  const v = new DataView(state.buffer, state.byteOffset, LAPIC_STATE_SIZE);
  const lvt = v.getUint32(LVT_TIMER, true);
  return {
    tpr: v.getUint32(TPR, true) & 0xff,
    ppr: v.getUint32(PPR, true) & 0xff,
    enabled: (v.getUint32(SVR, true) & 0x100) !== 0,
    irr: vectors(v, IRR),
    isr: vectors(v, ISR),
    tmr: vectors(v, TMR),
    timer: {
      vector: lvt & 0xff,
      masked: (lvt & 0x10000) !== 0,
      mode: TIMER_MODES[(lvt >>> 17) & 3] as string,
      initialCount: v.getUint32(TIMER_INITIAL, true),
      currentCount: v.getUint32(TIMER_CURRENT, true),
      divide: v.getUint32(TIMER_DIVIDE, true) & 0xb,
    },
  };
}

/** One line for a report, e.g. "LAPIC on, TPR 0 PPR 0, IRR [] ISR [], TMR [], timer one-shot vector 236 count 0/123". */
export function describeLapic(state: Uint8Array): string {
  const l = decodeLapic(state);
  const t = l.timer;
  const list = (xs: number[]): string => `[${xs.join(' ')}]`;
  return `LAPIC ${l.enabled ? 'on' : 'software-disabled'}, TPR ${l.tpr} PPR ${l.ppr}, IRR ${list(l.irr)} ISR ${list(l.isr)} TMR ${list(l.tmr)}, timer ${t.masked ? 'masked ' : ''}${t.mode} vector ${t.vector} count ${t.currentCount}/${t.initialCount}`;
}
