// `tsvmm boot`: build a Machine from the command line, run it, report how it ended.
import { performance } from 'node:perf_hooks';
import { BootError } from '../boot/index.js';
import { ConfigError } from '../machine/vm-description.js';
import { Machine, type MachineExit } from '../machine/machine.js';
import { DeviceOpenError } from '../machine/device-factories.js';
import { ResourceExhaustedError } from '../machine/resources.js';
import type { BusStats } from '../vmm/bus.js';
import { BOOT_USAGE, parseBootArgs } from './boot-args.js';
import { describePriority } from '../machine/thread-priority.js';
import { UsageError } from './errors.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Per-device and unknown-port counts summed over the vCPU threads, for --stats. */
export function formatStats(exit: MachineExit): string {
  const lines: string[] = [];
  if (exit.priority) lines.push(describePriority(exit.priority));
  for (const v of exit.vcpus) lines.push(`vCPU ${v.index}: ${v.exits} exits to user space${v.stop ? ` (ended: ${v.stop.kind})` : ''}${v.error ? ` (failed: ${v.error})` : ''}`);
  const merge = (all: BusStats[], kind: string): void => {
    const dev = new Map<string, { base: number; reads: number; writes: number }>();
    const unk = new Map<number, { reads: number; writes: number }>();
    for (const s of all) {
      for (const d of s.devices) {
        const m = dev.get(d.name) ?? { base: d.base, reads: 0, writes: 0 };
        m.reads += d.reads;
        m.writes += d.writes;
        dev.set(d.name, m);
      }
      for (const u of s.unknown) {
        const m = unk.get(u.address) ?? { reads: 0, writes: 0 };
        m.reads += u.reads;
        m.writes += u.writes;
        unk.set(u.address, m);
      }
    }
    for (const [name, d] of dev) if (d.reads + d.writes > 0) lines.push(`${kind} ${hex(d.base)} ${name}: ${d.reads} reads, ${d.writes} writes`);
    for (const [addr, u] of [...unk].sort((a, b) => a[0] - b[0])) lines.push(`${kind} ${hex(addr)} (no device): ${u.reads} reads, ${u.writes} writes`);
  };
  merge(exit.pio, 'pio');
  merge(exit.mmio, 'mmio');
  return lines.join('\n');
}

/** Where start-up time goes, for --stats: each figure is ms since the tsvmm process started. */
export function formatStartup(exit: MachineExit, cliStartMs: number): string {
  const at = (label: string, ms: number | undefined): string => `${label} ${ms === undefined ? '-' : ms.toFixed(0)}`;
  return `startup (ms since tsvmm started): ${[
    at('node and modules loaded', cliStartMs),
    at('VM built', exit.builtMs),
    at('first vCPU in KVM_RUN', exit.firstRunMs),
    at('guest init (boot timer)', exit.bootCompleteMs),
  ].join(', ')}`;
}

/**
 * The terminal side of a running VM: stdin feeds the guest console (raw mode on a terminal, where
 * Ctrl-C stops the VM), SIGINT/SIGTERM stop it, SIGUSR2 asks it for a report. Returns the undo.
 */
function attachTerminal(machine: Machine): () => void {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const onData = (chunk: Buffer): void => {
    if (raw && chunk.includes(0x03)) {
      machine.stop('signal', 'SIGINT');
      return;
    }
    machine.console.push(chunk);
  };
  const onSignal = (sig: NodeJS.Signals): void => machine.stop('signal', sig);
  const onReport = (): void => machine.report();
  stdin.on('data', onData);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGUSR2', onReport);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGUSR2', onReport);
    stdin.off('data', onData);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  };
}

export async function bootCommand(argv: string[]): Promise<number> {
  const args = parseBootArgs(argv);
  if (args.help) {
    console.log(BOOT_USAGE);
    return 0;
  }
  const cliStartMs = performance.now();
  for (const w of args.cmdlineWarnings) console.error(`[tsvmm] warning: ${w}`);
  let machine: Machine;
  try {
    machine = await Machine.create(args.description, { consoleFd: 1 });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof BootError || e instanceof DeviceOpenError || e instanceof ResourceExhaustedError) throw new UsageError(e.message, BOOT_USAGE);
    throw e;
  }
  try {
    for (const w of machine.cmdlineWarnings) console.error(`[tsvmm] warning: ${w}`);
    const detach = attachTerminal(machine);
    let exit: MachineExit;
    try {
      exit = await machine.run();
    } finally {
      detach();
    }
    if (exit.bootCompleteMs !== undefined) console.error(`[tsvmm] boot timer: the guest reached init ${exit.bootCompleteMs.toFixed(1)} ms after tsvmm started`);
    console.error(`[tsvmm] VM ended: ${exit.reason} (${exit.detail}); exit status ${exit.code}`);
    if (args.stats) {
      console.error(formatStartup(exit, cliStartMs));
      console.error(formatStats(exit));
      for (const d of machine.devices) console.error(`${d.id}: ${JSON.stringify(d.device.metrics())}`);
    }
    return exit.code;
  } finally {
    await machine.dispose();
  }
}
