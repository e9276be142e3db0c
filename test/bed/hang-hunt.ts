// A loop of nested boots of the console-shell workload, to catch and diagnose the hang of
// issue 26 (a Linux guest halted with interrupts on that never wakes). Run it inside the bed:
//   node dist/test/bed/cli.js --memory 4096 --timeout 3500 -- node dist/test/bed/hang-hunt.js --boots 150 [--kill --seed N]
// Each boot types a long command line at the guest's shell (longer than the UART's FIFO, as the
// durability test does), writes and fsyncs files, and exits; with --kill it runs the durability
// test's own writer and SIGKILLs tsvmm at a seeded moment after its first acknowledged file. A boot with no end is reported by
// runTsvmm (test/helpers/tsvmm-process.ts): tsvmm's SIGUSR2 report (vCPU registers and LAPIC, the
// UART, console input still queued, virtqueues), whether a probe line is answered, and the bed's
// diagnosis (a QEMU control guest, L1's log, L1's KVM trace). A stalled machine ends the loop.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EmulatedMachineStall } from '../helpers/bed-diagnosis.js';
import { ACK_LINE, durabilityWriter, prng, VERIFY } from '../helpers/durability.js';
import { guestKernel } from '../helpers/guest-kernel.js';
import { runTsvmm } from '../helpers/tsvmm-process.js';

const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';
const WORK = 'rm -f /d/c*; i=0; while [ $i -lt 3 ]; do i=$((i+1)); yes "c-i$i" | head -c $((i*1500)) > /d/c-$i && sync /d/c-$i /d && echo "ACK c-$i"; done; echo WORK-DONE';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { boots: { type: 'string', default: '100' }, 'timeout-s': { type: 'string', default: '60' }, kill: { type: 'boolean', default: false }, seed: { type: 'string', default: '1' } } });
  // The kill moments of a run are replayable with --seed.
  const random = prng(Number(values.seed));
  const boots = Number(values.boots);
  const timeoutMs = Number(values['timeout-s']) * 1000;
  const k = guestKernel();
  if (!k?.rootfs) throw new Error('no kernels/ guest with a root file system (npm run kernel; bash kernels/build-rootfs.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-hunt-'));
  const root = join(dir, 'rootfs.ext4');
  copyFileSync(k.rootfs, root);
  let hangs = 0;
  const t0 = Date.now();
  try {
    for (let n = 1; n <= boots; n++) {
      let killTimer: NodeJS.Timeout | undefined;
      const killAfterMs = Math.floor(random() * 3000);
      const input = values.kill ? `${VERIFY}\n${durabilityWriter(n)}\n` : `${VERIFY}\n${WORK}\nexit\n`;
      const r = await runTsvmm(['boot', k.bzImage, root, '--cmdline', CMDLINE], [[/\/ # /, input]], timeoutMs, (stdout, child) => {
        if (values.kill && killTimer === undefined && ACK_LINE.test(stdout)) killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      });
      clearTimeout(killTimer);
      const done = values.kill ? r.signal === 'SIGKILL' && /VERIFY-END/.test(r.stdout.replace(/echo VERIFY-END/g, '')) : /WORK-DONE/.test(r.stdout.replace(/echo WORK-DONE/g, ''));
      if (!r.timedOut && (values.kill || r.code === 0) && done) {
        if (n % 10 === 0) process.stdout.write(`[hunt] ${n} boots, ${hangs} hangs, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
        continue;
      }
      hangs++;
      process.stdout.write(`[hunt] boot ${n}: ${r.timedOut ? 'HANG' : `ended badly (code ${String(r.code)}, work done ${done})`} after ${r.ms} ms\n--- console (last 2500 bytes) ---\n${r.stdout.slice(-2500)}\n--- tsvmm ---\n${r.stderr.slice(-4000)}\n--- runTsvmm ---\n${r.notes}--- end of boot ${n} ---\n`);
    }
  } catch (e) {
    if (!(e instanceof EmulatedMachineStall)) throw e;
    hangs++;
    process.stdout.write(`[hunt] the emulated machine stalled: ${e.message}\n`);
    return 3;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`[hunt] done: ${hangs} hangs or failures in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  return hangs === 0 ? 0 : 1;
}

process.exitCode = await main();
