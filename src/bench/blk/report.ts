// Summaries and the printed table of the block benchmark (bench/blk.ts): medians over rounds per
// figure and VMM, the tsvmm/QEMU ratio (higher is better for tsvmm), and per-request counts.
import { geomean, max, median, min } from '../stats.js';
import type { GuestResult, GuestRun, TsvmmStats } from './parse.js';
import type { CpuSplit } from '../threads.js';
import { KVM_COUNTERS, type KvmCounters } from '../kvm-stats.js';

/** One boot of one VMM that ran the whole test list. */
export interface VmmRun {
  variant: string;
  round: number;
  /** Host wall time of the boot, spawn to exit. */
  wallMs: number;
  guest: GuestRun;
  /** tsvmm only: --stats of this boot minus the baseline boot's (what the tests added). */
  tsvmmDelta?: TsvmmStats;
  /** Host CPU ms of the VMM process during each test, in the order of guest.results. */
  cpu?: CpuSplit[];
  /** KVM's counters during each test, in the order of guest.results. */
  kvm?: KvmCounters[];
}

export interface FigureSummary {
  id: string;
  test: GuestResult['test'];
  qd: number;
  bs: number;
  unit: 'MiB/s' | 'IOPS';
  /** Per variant: the figure of every round, and their median/min/max. */
  variants: Record<string, {
    samples: number[];
    median: number;
    min: number;
    max: number;
    interruptsPerRequest: number | null;
    /** Host CPU µs per request of the VMM process, by thread role (medians over rounds). */
    cpuUsPerRequest: CpuSplit | null;
    /** KVM's counters per request (medians over rounds). */
    kvmPerRequest: KvmCounters | null;
  }>;
  /** Each tsvmm variant's median / each QEMU variant's median, keyed 'tsvmm-variant/qemu-variant'
   * (e.g. 'tsvmm-direct/qemu-none'). */
  ratios: Record<string, number>;
  /** The same pairs measured round by round: in each round (one test-bed machine) both variants
   * ran on the same machine minutes apart, so a round's ratio is free of what differs between
   * machines; their geometric mean is the paired estimate. Keyed like `ratios`. */
  pairedRatios: Record<string, PairedRatio>;
}

export interface PairedRatio {
  /** ours / peer in each round where both ran the figure, in round order. */
  perRound: number[];
  geomean: number;
  min: number;
  max: number;
}

/** tsvmm's variants ('tsvmm', 'tsvmm-direct'): the numerators of the ratios; the rest are peers. */
export const isTsvmmVariant = (name: string): boolean => name === 'tsvmm' || name.startsWith('tsvmm-');

/** The ratio columns: every tsvmm variant against every peer, as [key, tsvmm variant, peer]. */
export function ratioPairs(variants: readonly string[]): [string, string, string][] {
  const ours = variants.filter(isTsvmmVariant);
  const peers = variants.filter((v) => !isTsvmmVariant(v));
  return ours.flatMap((b) => peers.map((v): [string, string, string] => [`${b}/${v}`, b, v]));
}

export const figureId = (r: Pick<GuestResult, 'test' | 'qd'>): string => `${r.test}-qd${r.qd}`;
const unitOf = (test: GuestResult['test']): 'MiB/s' | 'IOPS' => (test.startsWith('seq') ? 'MiB/s' : 'IOPS');
const valueOf = (r: GuestResult): number => (r.test.startsWith('seq') ? r.mibps : r.iops);

export function summarise(runs: readonly VmmRun[], variants: readonly string[]): FigureSummary[] {
  const order: string[] = [];
  const byId = new Map<string, FigureSummary>();
  for (const run of runs) {
    for (const r of run.guest.results) {
      const id = figureId(r);
      let f = byId.get(id);
      if (!f) {
        f = { id, test: r.test, qd: r.qd, bs: r.bs, unit: unitOf(r.test), variants: {}, ratios: {}, pairedRatios: {} };
        byId.set(id, f);
        order.push(id);
      }
      const v = (f.variants[run.variant] ??= { samples: [], median: 0, min: 0, max: 0, interruptsPerRequest: null, cpuUsPerRequest: null, kvmPerRequest: null });
      v.samples.push(valueOf(r));
    }
  }
  for (const f of byId.values()) {
    for (const [name, v] of Object.entries(f.variants)) {
      v.median = median(v.samples);
      v.min = min(v.samples);
      v.max = max(v.samples);
      const perReq = runs
        .filter((run) => run.variant === name)
        .flatMap((run) => run.guest.results.filter((r) => figureId(r) === f.id && r.requests > 0 && r.interrupts >= 0))
        .map((r) => r.interrupts / r.requests);
      v.interruptsPerRequest = perReq.length ? median(perReq) : null;
      const cpu = runs
        .filter((run) => run.variant === name && run.cpu)
        .flatMap((run) => run.guest.results.flatMap((r, i) => {
          const c = run.cpu?.[i];
          return figureId(r) === f.id && c && r.requests > 0 ? [{ c, n: r.requests }] : [];
        }));
      const us = (k: keyof CpuSplit): number => median(cpu.map(({ c, n }) => (c[k] * 1000) / n));
      v.cpuUsPerRequest = cpu.length ? { main: us('main'), vcpu: us('vcpu'), other: us('other'), total: us('total') } : null;
      const kvm = runs
        .filter((run) => run.variant === name && run.kvm)
        .flatMap((run) => run.guest.results.flatMap((r, i) => {
          const k = run.kvm?.[i];
          return figureId(r) === f.id && k && r.requests > 0 ? [{ k, n: r.requests }] : [];
        }));
      if (kvm.length) {
        const per: Partial<KvmCounters> = {};
        for (const c of KVM_COUNTERS) per[c] = median(kvm.map(({ k, n }) => k[c] / n));
        v.kvmPerRequest = per as KvmCounters;
      }
    }
    for (const [key, ours, peer] of ratioPairs(variants)) {
      const b = f.variants[ours];
      const v = f.variants[peer];
      if (b && v && v.median > 0) f.ratios[key] = b.median / v.median;
      const perRound = roundRatios(runs, f.id, ours, peer);
      if (perRound.length > 0) f.pairedRatios[key] = { perRound, geomean: geomean(perRound), min: min(perRound), max: max(perRound) };
    }
  }
  return order.map((id) => byId.get(id) as FigureSummary);
}

/** ours / peer for figure `id` in every round where each ran it once with a positive figure. */
function roundRatios(runs: readonly VmmRun[], id: string, ours: string, peer: string): number[] {
  const value = (variant: string, round: number): number | undefined => {
    const hits = runs.filter((r) => r.variant === variant && r.round === round).flatMap((r) => r.guest.results.filter((x) => figureId(x) === id));
    return hits.length === 1 && hits[0] && valueOf(hits[0]) > 0 ? valueOf(hits[0]) : undefined;
  };
  const rounds = [...new Set(runs.map((r) => r.round))].sort((a, b) => a - b);
  return rounds.flatMap((round) => {
    const a = value(ours, round);
    const b = value(peer, round);
    return a !== undefined && b !== undefined ? [a / b] : [];
  });
}

/** Exits to user space that tsvmm took per block request, from the baseline-subtracted --stats. */
export interface ExitsPerRequest {
  /** Requests the scratch disk served during the tests (median over rounds). */
  requests: number;
  /** All exits to user space per request (every vCPU, every device). */
  allExits: number;
  /** Exits to the scratch disk's virtio-mmio registers per request. */
  diskMmioExits: number;
  /** Interrupts tsvmm raised for the scratch disk per request. */
  interrupts: number;
  /** Buffer descriptors per request on the scratch disk (NaN where tsvmm did not count them). */
  descriptors: number;
  /** The other devices' exits per request, keyed as in --stats. */
  otherDevices: Record<string, number>;
}

export function exitsPerRequest(runs: readonly VmmRun[], disk = 'disk1'): ExitsPerRequest | undefined {
  const deltas = runs.flatMap((r) => (r.tsvmmDelta ? [r.tsvmmDelta] : []));
  const per = (f: (s: TsvmmStats) => number): number => median(deltas.map((s) => f(s) / (s.disks[disk]?.requests ?? NaN)));
  if (deltas.length === 0 || deltas.some((s) => !((s.disks[disk]?.requests ?? 0) > 0))) return undefined;
  const diskKey = (s: TsvmmStats): string | undefined => Object.keys(s.devices).find((k) => k.startsWith('mmio ') && k.endsWith(` ${disk}`));
  const others = new Set(deltas.flatMap((s) => Object.keys(s.devices).filter((k) => k !== diskKey(s))));
  const otherDevices: Record<string, number> = {};
  for (const k of others) otherDevices[k] = per((s) => s.devices[k] ?? 0);
  return {
    requests: median(deltas.map((s) => s.disks[disk]?.requests ?? 0)),
    allExits: per((s) => s.vcpuExits),
    diskMmioExits: per((s) => {
      const k = diskKey(s);
      return k ? (s.devices[k] ?? 0) : 0;
    }),
    interrupts: per((s) => s.disks[disk]?.interrupts ?? 0),
    // Older builds did not count descriptors: NaN there.
    descriptors: per((s) => s.disks[disk]?.descriptors ?? NaN),
    otherDevices,
  };
}

/** A Markdown table whose first `leftColumns` columns are left-aligned labels and the rest right-aligned figures. */
function markdownTable(head: readonly string[], rows: readonly string[][], leftColumns: number): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < leftColumns ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** The table: one row per figure, each variant (median [min-max]), the ratios (ratioPairs). */
export function formatTable(figures: readonly FigureSummary[], variants: readonly string[]): string {
  const pairs = ratioPairs(variants).map(([key]) => key);
  const head = ['figure', 'unit', ...variants.map((v) => `${v} median [min-max]`), ...pairs, ...variants.map((v) => `irq/req ${v}`)];
  const rows = figures.map((f) => {
    const cell = (v: string): string => {
      const s = f.variants[v];
      return s ? `${fmt(s.median)} [${fmt(s.min)}-${fmt(s.max)}]` : '-';
    };
    const ratio = (v: string): string => (f.ratios[v] === undefined ? '-' : `${(f.ratios[v] as number).toFixed(2)}x`);
    const irq = (v: string): string => {
      const x = f.variants[v]?.interruptsPerRequest;
      return x === null || x === undefined ? '-' : x.toFixed(2);
    };
    const label = `${f.test.startsWith('seq') ? 'seq' : 'rand'} ${f.test.endsWith('read') ? 'read' : 'write'} ${f.bs >= 1 << 20 ? `${f.bs >> 20} MiB` : `${f.bs >> 10} KiB`} QD${f.qd}`;
    return [label, f.unit, ...variants.map(cell), ...pairs.map(ratio), ...variants.map(irq)];
  });
  return markdownTable(head, rows, 2);
}

/** The paired ratios: per figure and pair, geometric mean [min-max] of the rounds' ratios, and each round's. */
export function formatPairedTable(figures: readonly FigureSummary[], variants: readonly string[]): string {
  const pairs = ratioPairs(variants).map(([key]) => key);
  const head = ['figure', ...pairs.map((k) => `${k} geomean [min-max]: per round`)];
  const rows = figures.map((f) => [
    `${f.test} QD${f.qd}`,
    ...pairs.map((k) => {
      const p = f.pairedRatios[k];
      return p ? `${p.geomean.toFixed(2)}x [${p.min.toFixed(2)}-${p.max.toFixed(2)}]: ${p.perRound.map((x) => x.toFixed(2)).join(' ')}` : '-';
    }),
  ]);
  return markdownTable(head, rows, 1);
}

/** Host CPU per request: main thread / vCPU thread / other threads = total, µs (medians). */
export function formatCpuTable(figures: readonly FigureSummary[], variants: readonly string[]): string {
  const head = ['figure', ...variants.map((v) => `${v}: main + vCPU + other = total`)];
  const rows = figures.map((f) => [
    `${f.test} QD${f.qd}`,
    ...variants.map((v) => {
      const c = f.variants[v]?.cpuUsPerRequest;
      return c ? `${c.main.toFixed(0)} + ${c.vcpu.toFixed(0)} + ${c.other.toFixed(0)} = ${c.total.toFixed(0)}` : '-';
    }),
  ]);
  return markdownTable(head, rows, 1);
}

/** KVM's exits per request: all / to user space (MMIO + PIO) / HLT / interrupts injected / µs of halt polling. */
export function formatKvmTable(figures: readonly FigureSummary[], variants: readonly string[]): string {
  const head = ['figure', ...variants.map((v) => `${v}: all / user (mmio+pio) / hlt / irq / poll µs`)];
  const rows = figures.map((f) => [
    `${f.test} QD${f.qd}`,
    ...variants.map((v) => {
      const k = f.variants[v]?.kvmPerRequest;
      return k
        ? `${k.exits.toFixed(1)} / ${(k.mmio_exits + k.io_exits).toFixed(2)} (${k.mmio_exits.toFixed(2)}+${k.io_exits.toFixed(2)}) / ${k.halt_exits.toFixed(2)} / ${k.irq_injections.toFixed(2)} / ${((k.halt_poll_success_ns + k.halt_poll_fail_ns) / 1000).toFixed(0)}`
        : '-';
    }),
  ]);
  return markdownTable(head, rows, 1);
}
