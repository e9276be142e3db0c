// Pure: what happened to a test-bed run, from QEMU's exit and the guest's harness lines.
import { HARNESS_PREFIX } from './log.js';

/**
 * isa-debug-exit makes QEMU exit((value << 1) | 1), and a process status keeps 8 bits, so an
 * odd code carries the low 7 bits of what the guest wrote; an even code (0: a clean power
 * off) means the guest never wrote. QEMU's own startup failure exits with 1, which looks like
 * value 0: callers must also check that the guest got as far as starting the command.
 */
export function decodeDebugExit(qemuExitCode: number): number | undefined {
  return (qemuExitCode & 1) === 1 ? (qemuExitCode >> 1) & 0x7f : undefined;
}

export type HarnessEvent = { kind: 'started'; guestUptimeS: number } | { kind: 'exited'; status: number; guestUptimeS: number };

const STARTED = /command starting \(guest uptime ([\d.]+) s\)/;
const EXITED = /command exited with status (\d+) \(guest uptime ([\d.]+) s\)/;

/** Recognises guest-init.sh's two marker lines (see there). */
/** The reason of a kernel panic line ("Kernel panic - not syncing: VFS: ..."), if it is one. */
export function parsePanicLine(line: string): string | undefined {
  const m = /Kernel panic - not syncing: ?(.*)$/.exec(line);
  return m === null ? undefined : `kernel panic: ${m[1] ?? ''}`.trim();
}

export function parseHarnessLine(line: string): HarnessEvent | undefined {
  if (!line.startsWith(`${HARNESS_PREFIX} `)) return undefined;
  const s = STARTED.exec(line);
  if (s?.[1] !== undefined) return { kind: 'started', guestUptimeS: Number(s[1]) };
  const e = EXITED.exec(line);
  if (e?.[1] !== undefined && e[2] !== undefined) return { kind: 'exited', status: Number(e[1]), guestUptimeS: Number(e[2]) };
  return undefined;
}

export interface RunFacts {
  timedOut: boolean;
  timeoutMs: number;
  aborted: boolean;
  qemuExitCode: number | null;
  qemuSignal: string | null;
  commandStarted: boolean;
  /** Status from the guest's "command exited" line, if it printed one. */
  reportedStatus: number | undefined;
  /** Last lines of console output and QEMU's stderr, for the vm-died message. */
  tail: string;
  /** The kernel's "Kernel panic - not syncing: ..." line, if one was seen. */
  panic?: string | undefined;
  /** Seconds without a heartbeat after which the watchdog killed QEMU (undefined: it did not). */
  frozenAfterS?: number | undefined;
}

export type RunReason = 'exited' | 'timeout' | 'vm-died' | 'frozen';

export interface Outcome {
  reason: RunReason;
  exitCode: number | null;
  message: string;
}

export function classifyRun(f: RunFacts): Outcome {
  if (f.frozenAfterS !== undefined && f.reportedStatus === undefined) {
    return {
      reason: 'frozen',
      exitCode: null,
      message: `the test-bed VM froze: no heartbeat from its kernel for ${f.frozenAfterS.toFixed(0)} s while the command ran (its timers stopped); QEMU was killed`,
    };
  }
  if (f.timedOut) {
    return { reason: 'timeout', exitCode: null, message: `the test bed timed out after ${(f.timeoutMs / 1000).toFixed(0)} s; QEMU was killed${f.commandStarted ? '' : ' before the command started'}` };
  }
  const portStatus = f.qemuExitCode === null ? undefined : decodeDebugExit(f.qemuExitCode);
  if (f.commandStarted && f.reportedStatus !== undefined && (portStatus === undefined || portStatus === (f.reportedStatus & 0x7f))) {
    // The console line has all 8 bits; isa-debug-exit agrees, or the guest powered off instead.
    return { reason: 'exited', exitCode: f.reportedStatus, message: `the command exited with status ${f.reportedStatus}` };
  }
  if (f.commandStarted && portStatus !== undefined && f.reportedStatus === undefined) {
    return { reason: 'exited', exitCode: portStatus, message: `the command exited with status ${portStatus} (from isa-debug-exit only: low 7 bits)` };
  }
  const how = f.aborted ? 'was stopped (interrupted)' : f.qemuSignal !== null ? `was killed by ${f.qemuSignal}` : `exited with status ${String(f.qemuExitCode)}`;
  const tail = f.tail.trim() === '' ? ' (no console output)' : `\nlast output:\n${f.tail.trimEnd()}`;
  return {
    reason: 'vm-died',
    exitCode: null,
    message: `the test-bed VM died${f.panic === undefined ? '' : ` (${f.panic})`}: QEMU ${how} without the guest reporting the command's status${f.commandStarted ? '' : ' (the command never started)'}${tail}`,
  };
}
