// The `tsvmm` command: dispatches subcommands; each returns its exit status.
// Each command's modules are imported when it runs: start-up time is boot time for `tsvmm boot`
// (and ~10x dearer inside the test bed), so it should not load the benchmark and its renderers.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BENCH_EXITS_USAGE, parseBenchExitsArgs, svgPathFor } from './bench-args.js';
import { UsageError } from './errors.js';

export const USAGE = `usage: tsvmm <command> [options]

commands:
  boot KERNEL [...]     boot a Linux kernel with the console on this terminal (tsvmm boot --help)
  check                 can this host run tsvmm guests, and if not, what to do (exit 0 when Linux can boot)
  bench exits [...]     the VM-exit microbenchmark (tsvmm bench exits --help)
  help                  this text`;

async function benchExits(argv: string[]): Promise<number> {
  const args = parseBenchExitsArgs(argv);
  if (args.help) {
    console.log(BENCH_EXITS_USAGE);
    return 0;
  }
  const { detectKvm } = await import('../check/host.js');
  const { formatTable, toJson } = await import('../bench/exits/report.js');
  const { renderSvg } = await import('../bench/exits/svg.js');
  const { runExitBench, skippedReport } = await import('../bench/exits/run.js');
  const kvm = detectKvm();
  const report =
    kvm.kind === 'absent' || !kvm.accessible
      ? skippedReport(args, `no usable /dev/kvm (${kvm.detail})`)
      : await runExitBench({
          iterations: args.iterations,
          repeat: args.repeat,
          onProgress: (done, total, label) => {
            process.stderr.write(`\r[${done}/${total}] ${label}`.padEnd(40));
            if (done === total) process.stderr.write('\n');
          },
        });
  console.log(formatTable(report));
  mkdirSync(dirname(args.json), { recursive: true });
  writeFileSync(args.json, toJson(report));
  const svg = svgPathFor(args.json);
  writeFileSync(svg, renderSvg(report));
  console.log(`\nwrote ${args.json} and ${svg}`);
  return 0;
}

async function check(argv: string[]): Promise<number> {
  if (argv.length > 0) throw new UsageError(`tsvmm check takes no arguments, got '${argv.join(' ')}'`);
  const { checkHost } = await import('../check/check.js');
  const a = checkHost();
  for (const line of a.lines) console.log(line);
  return a.linuxBoots ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'check':
        return await check(rest);
      case 'boot':
        return await (await import('./boot.js')).bootCommand(rest);
      case 'bench':
        if (rest[0] === 'exits') return await benchExits(rest.slice(1));
        throw new UsageError(rest[0] ? `unknown benchmark '${rest[0]}' (known: exits)` : 'tsvmm bench needs a benchmark name (exits)');
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`tsvmm: ${e.message}\n\n${e.usage ?? USAGE}`);
      return 2;
    }
    console.error(`tsvmm: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
