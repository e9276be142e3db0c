// Host CPU time of a VMM process per thread, from /proc/<pid>/task/<tid>/stat, so that the block
// benchmark can say where each request's CPU time goes: the main thread (tsvmm: the event loop
// that runs the virtio-blk device; QEMU: its main loop), the vCPU thread (guest time and exits),
// and the rest (libuv's or QEMU's I/O thread pool, V8's helper threads). Where the host has few
// CPUs (the test bed has one), CPU time per request bounds the request rate directly.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ThreadTimes {
  comm: string;
  /** utime + stime, clock ticks (guest time is part of utime). */
  ticks: number;
  /** Time spent running the guest (field 43, guest_time): non-zero only on vCPU threads. */
  guestTicks: number;
}

let ticksPerSecond: number | undefined;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux/x86): getconf CLK_TCK, once. */
export function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** A snapshot of every thread of `pid`; threads that end while it is read are left out. */
export function threadTimes(pid: number): Map<number, ThreadTimes> {
  const out = new Map<number, ThreadTimes>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // the process has ended
  }
  for (const tid of tids) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // Fields after the parenthesised comm (which may contain spaces): field 3 is at index 0.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const utime = Number(f[14 - 3]);
      const stime = Number(f[15 - 3]);
      const guest = Number(f[43 - 3] ?? 0);
      if (Number.isFinite(utime) && Number.isFinite(stime)) out.set(Number(tid), { comm, ticks: utime + stime, guestTicks: Number.isFinite(guest) ? guest : 0 });
    } catch {
      // the thread ended between readdir and read: it is not counted in this snapshot
    }
  }
  return out;
}

/** CPU milliseconds of one interval, by role. */
export interface CpuSplit {
  main: number;
  vcpu: number;
  other: number;
  total: number;
}

/**
 * The CPU time between two snapshots, split by role: the main thread (tid = pid); vCPU threads
 * (any guest time in the process's life, or QEMU's "CPU n/KVM" names); everything else.
 * Threads born inside the interval count from zero.
 */
export function cpuBetween(pid: number, a: Map<number, ThreadTimes>, b: Map<number, ThreadTimes>, ticksPerSecond: number): CpuSplit {
  const ms = (t: number): number => (t * 1000) / ticksPerSecond;
  const split: CpuSplit = { main: 0, vcpu: 0, other: 0, total: 0 };
  for (const [tid, t] of b) {
    const before = a.get(tid);
    const d = ms(t.ticks - (before?.ticks ?? 0));
    if (tid === pid) split.main += d;
    else if (t.guestTicks > 0 || /^CPU \d+\/KVM$/.test(t.comm)) split.vcpu += d;
    else split.other += d;
    split.total += d;
  }
  return split;
}
