// Pure: the heartbeat watchdog's decisions for one test-bed run (run.ts does the I/O).
//
// Why a machine goes silent: QEMU 7.2's TCG loses a wake-up now and then under nested SVM.
// helper_vmrun (target/i386/tcg/sysemu/svm_helper.c) sets CPU_INTERRUPT_VIRQ with a plain
// `cs->interrupt_request |= ...` on the vCPU thread without the big QEMU lock, while the main
// loop's APIC timer sets CPU_INTERRUPT_POLL in the same word under the lock (apic_update_irq ->
// cpu_interrupt); when the two meet, POLL is lost, the timer's vector sits in IRR and is never
// delivered (what the freeze dumps show: IRR 236 above PPR, ISR empty), and with the LAPIC timer
// in one-shot mode no timer ever fires again. QEMU made interrupt_request atomic in 10.2 (commits
// 87511341c30d, 27e76d010104); Debian 12 ships 7.2. Two defences, in this order:
//   1. L1 runs with a periodic tick (nohz=off highres=off, qemu-args.ts): each tick raises the
//      timer's vector again, which re-polls the APIC, so a lost wake-up heals within a tick;
//   2. this watchdog: when the heartbeat stops anyway, it "revives" the machine with a key press
//      (a keyboard interrupt through the IOAPIC re-polls the APIC just the same; checked: a
//      frozen machine's heartbeat came back 5 s after one `sendkey`), and only a machine that
//      stays silent through the revives is killed as frozen.

export interface WatchdogPolicy {
  /** Silence after which the first revive is tried (0: never revive). */
  reviveAfterMs: number;
  /** Time between revives of one silence. */
  revivePeriodMs: number;
  /** Revives per silence before giving up on it. */
  maxRevives: number;
  /** Silence after which the machine is declared frozen and killed (0: never). */
  freezeMs: number;
}

/** guest-init.sh beats every 2 s; a busy single-vCPU L1 has delayed a beat by seconds. */
export const DEFAULT_WATCHDOG_POLICY: WatchdogPolicy = {
  reviveAfterMs: 10_000,
  revivePeriodMs: 10_000,
  maxRevives: 4,
  freezeMs: 60_000,
};

export type WatchdogAction =
  | { kind: 'none' }
  /** Send the machine an interrupt (attempt counts from 1 within this silence). */
  | { kind: 'revive'; silentMs: number; attempt: number }
  /** The heartbeat came back after `attempts` revives. */
  | { kind: 'revived'; silentMs: number; attempts: number }
  /** Silent for freezeMs: kill it. Reported once. */
  | { kind: 'frozen'; silentMs: number };

export class HeartbeatWatchdog {
  private beats = 0;
  private lastBeatAt: number;
  private revivesThisSilence = 0;
  private lastReviveAt = -Infinity;
  private frozen = false;
  /** Silences that ended after a revive, over the whole run. */
  revived = 0;

  constructor(
    private readonly policy: WatchdogPolicy,
    startedAt: number,
  ) {
    this.lastBeatAt = startedAt;
  }

  /** `beats`: the heartbeat's byte count now; `now`: a monotonic clock in ms. */
  observe(beats: number, now: number): WatchdogAction {
    if (this.frozen) return { kind: 'none' };
    if (beats !== this.beats) {
      const silentMs = now - this.lastBeatAt;
      const attempts = this.revivesThisSilence;
      this.beats = beats;
      this.lastBeatAt = now;
      this.revivesThisSilence = 0;
      this.lastReviveAt = -Infinity;
      if (attempts === 0) return { kind: 'none' };
      this.revived++;
      return { kind: 'revived', silentMs, attempts };
    }
    const silentMs = now - this.lastBeatAt;
    const p = this.policy;
    if (p.freezeMs > 0 && silentMs >= p.freezeMs) {
      this.frozen = true;
      return { kind: 'frozen', silentMs };
    }
    if (p.reviveAfterMs > 0 && silentMs >= p.reviveAfterMs && this.revivesThisSilence < p.maxRevives && now - this.lastReviveAt >= p.revivePeriodMs) {
      this.revivesThisSilence++;
      this.lastReviveAt = now;
      return { kind: 'revive', silentMs, attempt: this.revivesThisSilence };
    }
    return { kind: 'none' };
  }
}
