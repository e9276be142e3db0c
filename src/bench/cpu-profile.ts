// A V8 CPU profile (node --cpu-prof, the .cpuprofile JSON) reduced to where the time went: self
// time per function, summed over every node of that function, the largest first. For benchmarks
// that run tsvmm inside the test bed, where a profile file is easier to summarise than to fetch.

/** The parts of a .cpuprofile this reads (Chrome DevTools protocol, Profiler.Profile). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  /** `function file:line` (the file's last two path parts; line 1-based). */
  where: string;
  selfMs: number;
  percent: number;
}

export function topSelfTime(profile: CpuProfile, count: number): ProfileEntry[] {
  const perNode = new Map<number, number>();
  profile.samples.forEach((id, i) => perNode.set(id, (perNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const perFunction = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const us = perNode.get(n.id) ?? 0;
    total += us;
    const file = n.callFrame.url.split('/').slice(-2).join('/');
    const where = `${n.callFrame.functionName || '(anonymous)'} ${file}${file ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    perFunction.set(where, (perFunction.get(where) ?? 0) + us);
  }
  return [...perFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([where, us]) => ({ where, selfMs: us / 1000, percent: total > 0 ? (100 * us) / total : 0 }));
}
