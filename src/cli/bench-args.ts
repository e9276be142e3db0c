// Arguments of `tsvmm bench exits`, parsed with node:util parseArgs and validated.
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

export interface BenchExitsArgs {
  iterations: number;
  repeat: number;
  /** Where the JSON goes; the SVG chart goes beside it with the extension .svg. */
  json: string;
  help: boolean;
}

export const BENCH_EXITS_USAGE = `usage: tsvmm bench exits [--iterations N] [--repeat K] [--json FILE]

Measures what one VM exit costs depending on who handles it: no exit to user space (ioeventfd),
an exit KVM handles in the kernel (cpuid), an exit handled in C++ (the floor) and in TypeScript
(thread hop to the main thread, a worker_thread running the vCPU, koffi FFI). The variants run
interleaved, K repetitions of N exits each.

  --iterations N   exits per timed run (default 50000, 1000..100000000)
  --repeat K       repetitions of every variant (default 5, 1..1000)
  --json FILE      write the results here (default results/exits.json); FILE.svg gets the chart`;

function positiveInt(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} needs a whole number, got '${raw}'`, BENCH_EXITS_USAGE);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`, BENCH_EXITS_USAGE);
  return n;
}

export function parseBenchExitsArgs(argv: string[]): BenchExitsArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        iterations: { type: 'string' },
        repeat: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e), BENCH_EXITS_USAGE);
  }
  return {
    iterations: positiveInt('iterations', values.iterations, 50_000, 1000, 100_000_000),
    repeat: positiveInt('repeat', values.repeat, 5, 1, 1000),
    json: values.json ?? 'results/exits.json',
    help: values.help ?? false,
  };
}

/** The SVG path that goes with a JSON path. */
export function svgPathFor(json: string): string {
  return json.endsWith('.json') ? `${json.slice(0, -5)}.svg` : `${json}.svg`;
}
