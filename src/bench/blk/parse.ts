// Parsers for what the block benchmark reads back: the lines test/guest/blkbench.c prints on the
// guest console, and the exit counts `tsvmm boot --stats` prints on stderr. Pure functions; a
// line that does not match is skipped, a matching line with a bad field throws (the benchmark
// must not average a figure it misread).

/** One BLKBENCH-RESULT line: a test run for a fixed time in the guest. */
export interface GuestResult {
  test: 'seqread' | 'seqwrite' | 'randread' | 'randwrite';
  bs: number;
  qd: number;
  ops: number;
  seconds: number;
  iops: number;
  mibps: number;
  /** Requests the guest's block layer completed on the device (-1: not a block device). */
  requests: number;
  /** Interrupts of the device's virtio IRQ line seen by the guest (-1: unknown). */
  interrupts: number;
  /** Physically contiguous runs in one worker's I/O buffer (the most of any worker): the data
   * descriptors a request from it carries (blkbench -l). */
  segments: number;
}

export interface GuestRun {
  device: { path: string; bytes: number; irq: string } | undefined;
  results: GuestResult[];
  /** BLKBENCH-WARM lines (blkbench -w): each test's untimed warm-up, the cold figure. */
  warmups: GuestResult[];
  done: boolean;
}

const TESTS = new Set(['seqread', 'seqwrite', 'randread', 'randwrite']);

function fields(line: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of line.trim().split(/\s+/).slice(1)) {
    const eq = w.indexOf('=');
    if (eq > 0) m.set(w.slice(0, eq), w.slice(eq + 1));
  }
  return m;
}

function num(f: Map<string, string>, key: string, line: string): number {
  const v = Number(f.get(key));
  if (f.get(key) === undefined || !Number.isFinite(v)) throw new Error(`blkbench line without a numeric ${key}=: ${JSON.stringify(line)}`);
  return v;
}

/** The blkbench lines in a console transcript (CR/LF as the serial console gives them). */
export function parseGuestOutput(console: string): GuestRun {
  const run: GuestRun = { device: undefined, results: [], warmups: [], done: false };
  for (const raw of console.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('BLKBENCH-DEVICE ')) {
      const f = fields(line);
      run.device = { path: f.get('path') ?? '', bytes: num(f, 'bytes', line), irq: f.get('irq') ?? '-' };
    } else if (line.startsWith('BLKBENCH-RESULT ') || line.startsWith('BLKBENCH-WARM ')) {
      const f = fields(line);
      const test = f.get('test') ?? '';
      if (!TESTS.has(test)) throw new Error(`blkbench line with an unknown test: ${JSON.stringify(line)}`);
      (line.startsWith('BLKBENCH-WARM ') ? run.warmups : run.results).push({
        test: test as GuestResult['test'],
        bs: num(f, 'bs', line),
        qd: num(f, 'qd', line),
        ops: num(f, 'ops', line),
        seconds: num(f, 'seconds', line),
        iops: num(f, 'iops', line),
        mibps: num(f, 'mibps', line),
        requests: num(f, 'requests', line),
        interrupts: num(f, 'interrupts', line),
        segments: num(f, 'segments', line),
      });
    } else if (line.startsWith('blkbench: done')) {
      run.done = true;
    }
  }
  return run;
}

/** Exit counts from `tsvmm boot --stats` (src/cli/boot.ts formatStats) and per-disk metrics. */
export interface TsvmmStats {
  /** Exits to user space, all vCPUs. */
  vcpuExits: number;
  /** Exits per bus device, keyed "mmio 0xd0000000 disk1" (reads + writes). */
  devices: Record<string, number>;
  /** The disks' metrics objects, keyed by device id (rootfs, disk1, ...). */
  disks: Record<string, Record<string, number>>;
}

export function parseTsvmmStats(stderr: string): TsvmmStats {
  const s: TsvmmStats = { vcpuExits: 0, devices: {}, disks: {} };
  for (const raw of stderr.split('\n')) {
    const line = raw.replace(/\r$/, '');
    let m = /^vCPU \d+: (\d+) exits to user space/.exec(line);
    if (m) {
      s.vcpuExits += Number(m[1]);
      continue;
    }
    m = /^(pio|mmio) (0x[0-9a-f]+) (.+): (\d+) reads, (\d+) writes$/.exec(line);
    if (m) {
      s.devices[`${m[1]} ${m[2]} ${m[3]}`] = Number(m[4]) + Number(m[5]);
      continue;
    }
    // A device's metrics: `<id>: {...}` (ids as in vm-description.ts).
    m = /^([A-Za-z0-9_]{1,64}): (\{.*\})$/.exec(line);
    if (m && m[1] && m[2]) {
      const parsed: unknown = JSON.parse(m[2]);
      if (typeof parsed !== 'object' || parsed === null) throw new Error(`disk metrics are not an object: ${line}`);
      const rec: Record<string, number> = {};
      for (const [k, v] of Object.entries(parsed)) if (typeof v === 'number') rec[k] = v;
      s.disks[m[1]] = rec;
    }
  }
  return s;
}

/** `after - before` for every count (what a workload added on top of a baseline boot). */
export function subtractStats(after: TsvmmStats, before: TsvmmStats): TsvmmStats {
  const devices: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.devices)) devices[k] = v - (before.devices[k] ?? 0);
  const disks: Record<string, Record<string, number>> = {};
  for (const [name, d] of Object.entries(after.disks)) {
    const b = before.disks[name] ?? {};
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(d)) out[k] = v - (b[k] ?? 0);
    disks[name] = out;
  }
  return { vcpuExits: after.vcpuExits - before.vcpuExits, devices, disks };
}
