// Boot-time benchmark: the kernels/ guest to its init marker, tsvmm next to QEMU's microvm on the
// same kernel and initramfs, interleaved (tsvmm, qemu, tsvmm, ...), N rounds each. Times are
// from spawning the VMM to the marker line on its console (the same clock for both); tsvmm's own
// boot-timer figure (process start to the guest's write to port 0x440) is reported beside it.
// Runs where this host boots Linux, or inside the test bed:
//   node dist/test/bed/cli.js -- node dist/bench/boot.js --rounds 10
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { median, min, max } from '../src/bench/stats.js';
import { findGuestKernel } from '../src/check/guest-kernel.js';

const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0';
const MARKER = /TSVMM-INIT-OK/;

interface Run {
  markerMs: number;
  exitMs: number;
  bootTimerMs?: number;
  stderr: string;
}

function timeVmm(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let markerMs = -1;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (markerMs < 0 && MARKER.test(out)) markerMs = ms();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', () => {
      clearTimeout(timer);
      if (markerMs < 0) return reject(new Error(`${cmd} never printed the marker:\n${out.slice(-1500)}\n${stderr.slice(-1500)}`));
      const bt = /reached init ([\d.]+) ms/.exec(stderr)?.[1];
      resolve({ markerMs, exitMs: ms(), stderr, ...(bt ? { bootTimerMs: Number(bt) } : {}) });
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, cpus: { type: 'string' } } });
  const rounds = Number(values.rounds ?? 10);
  const cpus = values.cpus ?? '1';
  const k = findGuestKernel();
  if (!k) throw new Error('the guest kernel is not built: npm run kernel (or set TSVMM_KERNEL and TSVMM_INITRD)');
  const tsvmm = [join(packageRoot(), 'bin', 'tsvmm.js'), 'boot', k.bzImage, '--initrd', k.initramfs, '--cpus', cpus, '--cmdline', CMDLINE];
  // Both VMMs give the guest ACPI (tsvmm's hardware-reduced tables, microvm's default), so the
  // kernel does the same work under each; the i8042 serves a guest that ends with a reset.
  const qemu = ['-enable-kvm', '-M', 'microvm', '-cpu', 'host', '-m', '256', '-smp', cpus, '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot', '-device', 'i8042', '-kernel', k.bzImage, '-initrd', k.initramfs, '-append', CMDLINE];
  const t: Run[] = [];
  const q: Run[] = [];
  for (let i = 0; i < rounds; i++) {
    t.push(await timeVmm(process.execPath, tsvmm));
    q.push(await timeVmm('qemu-system-x86_64', qemu));
    process.stderr.write(`\r[${i + 1}/${rounds}] tsvmm ${t[i]?.markerMs.toFixed(0)} ms, qemu ${q[i]?.markerMs.toFixed(0)} ms   `);
  }
  process.stderr.write('\n');
  const stats = await timeVmm(process.execPath, [...tsvmm.slice(0, 2), '--stats', ...tsvmm.slice(2)]);
  const row = (name: string, xs: number[]): string => `${name.padEnd(44)} ${median(xs).toFixed(0).padStart(7)} ${min(xs).toFixed(0).padStart(7)} ${max(xs).toFixed(0).padStart(7)}`;
  console.log(`boot to init marker, ${cpus} vCPU(s), ${rounds} rounds interleaved; ms (median, min, max)`);
  console.log(row('tsvmm: spawn -> marker on console', t.map((r) => r.markerMs)));
  console.log(row('qemu -M microvm: spawn -> marker on console', q.map((r) => r.markerMs)));
  console.log(row('tsvmm: process start -> boot timer (0x440)', t.flatMap((r) => (r.bootTimerMs === undefined ? [] : [r.bootTimerMs]))));
  console.log(row('tsvmm: spawn -> exit', t.map((r) => r.exitMs)));
  console.log(row('qemu: spawn -> exit', q.map((r) => r.exitMs)));
  console.log(`ratio tsvmm / qemu (marker medians): ${(median(t.map((r) => r.markerMs)) / median(q.map((r) => r.markerMs))).toFixed(2)}x`);
  console.log('\nexits to user space in one tsvmm boot (--stats):');
  console.log(stats.stderr.split('\n').filter((l) => /^(vCPU|pio|mmio)/.test(l)).join('\n'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
