/**
 * Result model of `tsvmm bench exits`.
 *
 * A guest loops on one instruction that causes a VM exit; each row is one
 * (exit kind, handler) pair, measured `repeat` times, each repetition giving
 * the mean ns per exit over `iterations` exits. The rows form a ladder of who
 * handles the exit:
 *
 *   no-exit-to-user  ioeventfd: KVM signals an eventfd, KVM_RUN never returns
 *   in-kernel        cpuid: KVM emulates the instruction, never returns
 *   c++              KVM_RUN returns to the native addon, which handles it (the floor)
 *   typescript       KVM_RUN returns and a TypeScript handler runs (three designs)
 */

export type ExitKind = 'pio' | 'mmio' | 'cpuid' | 'ioeventfd-pio' | 'ioeventfd-mmio';
export type Handler = 'kernel' | 'cxx' | 'js-hop' | 'js-worker' | 'koffi';
export type Rung = 'no-exit-to-user' | 'in-kernel' | 'c++' | 'typescript';

export interface BenchRow {
  /** `${exit}/${handler}` */
  id: string;
  exit: ExitKind;
  handler: Handler;
  rung: Rung;
  description: string;
  /** Exits per repetition. */
  iterations: number;
  /** One value per repetition: ns per exit. Empty when skipped. */
  samplesNsPerExit: number[];
  /** Why the row was not measured; samples are then empty. */
  skipped?: string;
}

export interface HostInfo {
  hostname: string;
  kernel: string;
  cpuModel: string;
  kvmKind: 'hardware' | 'kvm-pvm' | 'testbed' | 'absent' | 'unknown';
  kvmDetail: string;
  node: string;
}

export interface BenchReport {
  tool: 'tsvmm bench exits';
  version: 1;
  /** ISO 8601 timestamp. */
  startedAt: string;
  host: HostInfo;
  iterations: number;
  repeat: number;
  rows: BenchRow[];
}

export type KvmKind = HostInfo['kvmKind'];

/** Display order of exit kinds: cheapest rung first. */
export const EXIT_KINDS: readonly ExitKind[] = ['ioeventfd-pio', 'ioeventfd-mmio', 'cpuid', 'pio', 'mmio'];
/** Display order of handlers: down the ladder. */
export const HANDLERS: readonly Handler[] = ['kernel', 'cxx', 'js-hop', 'js-worker', 'koffi'];
/** Rungs, cheapest first. */
export const RUNGS: readonly Rung[] = ['no-exit-to-user', 'in-kernel', 'c++', 'typescript'];
export const KVM_KINDS: readonly KvmKind[] = ['hardware', 'kvm-pvm', 'testbed', 'absent', 'unknown'];

export const EXIT_LABELS: Readonly<Record<ExitKind, string>> = {
  'ioeventfd-pio': 'ioeventfd pio',
  'ioeventfd-mmio': 'ioeventfd mmio',
  cpuid: 'cpuid',
  pio: 'pio',
  mmio: 'mmio',
};

export const EXIT_DESCRIPTIONS: Readonly<Record<ExitKind, string>> = {
  'ioeventfd-pio': 'OUT to a port bound to an ioeventfd: KVM signals the eventfd, no exit to user space',
  'ioeventfd-mmio': 'store to an address bound to an ioeventfd: KVM signals the eventfd, no exit to user space',
  cpuid: 'CPUID: exits to KVM, which emulates it in the kernel',
  pio: 'OUT to a port: KVM_RUN returns KVM_EXIT_IO to user space',
  mmio: 'store to unbacked guest memory: KVM_RUN returns KVM_EXIT_MMIO to user space',
};

export const HANDLER_LABELS: Readonly<Record<Handler, string>> = {
  kernel: 'kernel',
  cxx: 'C++',
  'js-hop': 'TS main-thread hop',
  'js-worker': 'TS worker sync run',
  koffi: 'TS koffi FFI',
};

export const RUNG_LABELS: Readonly<Record<Rung, string>> = {
  'no-exit-to-user': 'no exit to user space',
  'in-kernel': 'handled in the kernel',
  'c++': 'handled in C++',
  typescript: 'handled in TypeScript',
};

export function isExitKind(x: unknown): x is ExitKind {
  return typeof x === 'string' && (EXIT_KINDS as readonly string[]).includes(x);
}
export function isHandler(x: unknown): x is Handler {
  return typeof x === 'string' && (HANDLERS as readonly string[]).includes(x);
}
export function isRung(x: unknown): x is Rung {
  return typeof x === 'string' && (RUNGS as readonly string[]).includes(x);
}
export function isKvmKind(x: unknown): x is KvmKind {
  return typeof x === 'string' && (KVM_KINDS as readonly string[]).includes(x);
}

export function isIoeventfd(exit: ExitKind): boolean {
  return exit === 'ioeventfd-pio' || exit === 'ioeventfd-mmio';
}

export class ModelError extends Error {
  override readonly name = 'ModelError';
}

/**
 * The rung of a handler. The 'kernel' handler sits on two rungs, so it needs
 * the exit kind: with an ioeventfd exit the vCPU never leaves KVM_RUN
 * ('no-exit-to-user'); with cpuid KVM emulates the exit ('in-kernel').
 * The overloads make the exit kind mandatory whenever the handler may be
 * 'kernel'.
 */
export function rungOf(handler: Exclude<Handler, 'kernel'>): Rung;
export function rungOf(handler: Handler, exit: ExitKind): Rung;
export function rungOf(handler: Handler, exit?: ExitKind): Rung {
  switch (handler) {
    case 'kernel':
      if (exit === undefined) {
        throw new ModelError("rungOf('kernel') needs the exit kind: ioeventfd is 'no-exit-to-user', cpuid is 'in-kernel'");
      }
      return isIoeventfd(exit) ? 'no-exit-to-user' : 'in-kernel';
    case 'cxx':
      return 'c++';
    case 'js-hop':
    case 'js-worker':
    case 'koffi':
      return 'typescript';
  }
}

export function rowId(exit: ExitKind, handler: Handler): string {
  return `${exit}/${handler}`;
}

/**
 * The fixed display order of rows: grouped by exit kind in the order of
 * {@link EXIT_KINDS}, handlers within a group in the order of
 * {@link HANDLERS}. These are the pairs the benchmark measures.
 */
export const ROW_ORDER: readonly string[] = [
  'ioeventfd-pio/kernel',
  'ioeventfd-mmio/kernel',
  'cpuid/kernel',
  'pio/cxx',
  'pio/js-hop',
  'pio/js-worker',
  'pio/koffi',
  'mmio/cxx',
  'mmio/js-hop',
  'mmio/js-worker',
  'mmio/koffi',
];

/** Sort key: exit kind, then handler, then id (pairs outside ROW_ORDER still sort sensibly). */
export function compareRows(a: Pick<BenchRow, 'exit' | 'handler' | 'id'>, b: Pick<BenchRow, 'exit' | 'handler' | 'id'>): number {
  const e = EXIT_KINDS.indexOf(a.exit) - EXIT_KINDS.indexOf(b.exit);
  if (e !== 0) return e;
  const h = HANDLERS.indexOf(a.handler) - HANDLERS.indexOf(b.handler);
  if (h !== 0) return h;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Rows in display order (a sorted copy). */
export function sortRows<T extends Pick<BenchRow, 'exit' | 'handler' | 'id'>>(rows: readonly T[]): T[] {
  return [...rows].sort(compareRows);
}

/** True when the row has samples to show. */
export function isMeasured(row: BenchRow): boolean {
  return row.skipped === undefined && row.samplesNsPerExit.length > 0;
}
