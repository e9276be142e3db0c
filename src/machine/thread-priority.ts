// The event loop's precedence over the vCPU threads where they share a CPU.
//
// Guest notifies reach the main thread through ioeventfds, so the vCPU thread does not exit: it
// keeps the CPU until the guest halts or the scheduler preempts it. Where the two threads share a
// CPU (a one-CPU host, an overcommitted one, a cgroup CPU quota), Linux's CFS lets a woken thread
// preempt the running one only when its vruntime is well below the runner's, and the event loop,
// which does every device's work (page-cache copies included), has the larger one. So the request
// waits until the guest idles: a HLT, the guest's tick stopped and restarted (TSC-deadline MSR
// writes), then the host wake-up, per request. Measured in the one-CPU test bed (bench/README.md,
// session 11, with the vCPU thread reniced instead): 1.77 HLT and 9.7 exits per 1 MiB read against
// 1.10 and 6.7 when the event loop wins, and 10-34% less host CPU per request.
//
// Asked for (--io-boost N), the event loop runs `boost` nice steps above the vCPU threads. It is
// off by default because it costs throughput at depth: served the moment each notify lands, a
// guest with 8 requests in flight gets them answered one by one instead of in batches, and in the
// same bed 4 KiB reads at QD8 fell from about 3000 to 780 IOPS (session 11).
//
// The main thread is raised (setpriority on this thread; Linux's nice value is per thread), and
// each vCPU worker sets itself back to the value the main thread had (a thread inherits its
// creator's nice). Only the event loop gains (and libuv's threadpool threads that start while it
// is raised, which carry the disks' I/O); vCPUs keep the weight they had against every other
// process. Raising needs CAP_SYS_NICE or an RLIMIT_NICE that allows it; without either, nothing
// changes and the outcome says why. Threads on CPUs of their own never compete, and this changes
// nothing for them.

/** What changed: the nice values of the event loop and the vCPU threads, or why nothing did. */
export interface EventLoopPriority {
  /** Nice value the vCPU threads run at (the main thread's before the boost). */
  readonly vcpuNice: number;
  /** Nice value the event-loop thread runs at. */
  readonly eventLoopNice: number;
  /** Set when the boost was asked for and not applied: the error's code or message. */
  readonly notRaised?: string;
}

/** getpriority/setpriority on the calling thread (node:os's getPriority(0) / setPriority(0, n)). */
export interface ThreadNice {
  get(): number;
  set(nice: number): void;
}

/** Nice steps the event loop runs above the vCPU threads unless configured otherwise: none
 * (see the header comment for what a boost gains and costs). */
export const DEFAULT_EVENT_LOOP_BOOST = 0;

/** Lowest nice value Linux has. */
const NICE_MIN = -20;
/** Most nice steps a boost can be: from the highest nice value (19) to the lowest (-20). */
export const MAX_EVENT_LOOP_BOOST = 39;

/** Raises the calling (event-loop) thread `boost` nice steps, down to -20; boost 0 does nothing. */
export function raiseEventLoop(boost: number, nice: ThreadNice): EventLoopPriority {
  if (!Number.isInteger(boost) || boost < 0 || boost > MAX_EVENT_LOOP_BOOST) {
    throw new RangeError(`event-loop priority boost ${boost}: 0 to ${MAX_EVENT_LOOP_BOOST} nice steps`);
  }
  const base = nice.get();
  const target = Math.max(NICE_MIN, base - boost);
  if (target === base) return { vcpuNice: base, eventLoopNice: base };
  try {
    nice.set(target);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return { vcpuNice: base, eventLoopNice: base, notRaised: typeof code === 'string' ? code : e instanceof Error ? e.message : String(e) };
  }
  return { vcpuNice: base, eventLoopNice: target };
}

/** One line for --stats. */
export function describePriority(p: EventLoopPriority): string {
  if (p.notRaised !== undefined) return `event loop: nice ${p.eventLoopNice}, as the vCPU threads (not raised: ${p.notRaised})`;
  if (p.eventLoopNice === p.vcpuNice) return `event loop: nice ${p.eventLoopNice}, as the vCPU threads`;
  return `event loop: nice ${p.eventLoopNice}, vCPU threads ${p.vcpuNice}`;
}
