#!/usr/bin/env node
// The project's test driver (npm test / npm run test:unit / npm run test:kvm).
//
//   node scripts/test.mjs unit   unit tests (no KVM needed), everywhere
//   node scripts/test.mjs kvm    KVM integration tests: natively where a probe shows this host's
//                                /dev/kvm can run them, otherwise inside the nested-KVM test bed
//   node scripts/test.mjs all    both; the last line is "N passed, N failed, N skipped"
//   node scripts/test.mjs kvm-linux-file:F   one file of test/integration/linux (what the test bed
//                                runs, one machine per file)
//
// Which way the KVM tests go is decided by probes that run a guest, never by the existence of
// /dev/kvm: kvm-pvm provides a /dev/kvm that runs real-mode toy guests but not Linux.
// Tests that boot Linux live in test/integration/linux/ (none yet); the rest need a toy guest.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const node = process.execPath;
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const inBed = process.env.TSVMM_WHERE === 'testbed';
const PROBE_TIMEOUT_MS = 20_000;
/** Per uvu process (one suite directory); the test bed also has an overall limit outside. The
 * Linux suite in the test bed takes about 5 minutes, most of it the 20-kill durability test. */
const SUITE_TIMEOUT_MS = Number(process.env.TSVMM_SUITE_TIMEOUT_S ?? 1200) * 1000;
const BED_TIMEOUT_S = Number(process.env.TSVMM_TESTBED_TIMEOUT_S ?? 1500);
/** A suite that fails in the test bed runs again in a fresh one, at most this many times in all,
 * and no new attempt starts once BED_RETRY_WINDOW_S have passed since the first began. A frozen
 * machine (see inTestBed) now costs its run so far plus the watchdog's 60 s, often 2-5 minutes,
 * so several attempts fit; the window keeps the worst case (a last attempt that hangs until the
 * bed's 1500 s timeout) inside CI's 90 minutes. */
const BED_ATTEMPTS = 8;
const BED_RETRY_WINDOW_S = Number(process.env.TSVMM_TESTBED_RETRY_WINDOW_S ?? 2700);
/** When this run's first test-bed attempt began (the retry window counts from it). */
let bedFirstStarted;

const totals = { passed: 0, failed: 0, skipped: 0 };
let usedTestBed = false;
const bedRetries = [];
/** Silences of a bed machine's heartbeat that the bed's watchdog revived (test/bed/watchdog.ts). */
const bedRevives = [];

function log(line) {
  process.stdout.write(`[tsvmm-test] ${line}\n`);
}

/** Runs a command, streaming its output; resolves with { code, output } (code 124 on timeout). */
function run(cmd, args, { timeoutMs, env = {}, quiet = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      if (!quiet) process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let timedOut = false;
    const timer = timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs)
      : undefined;
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? 124 : (code ?? 128), signal, output, timedOut });
    });
  });
}

// uvu prints "Total: N / Passed: N / Skipped: N" with colours; count failures from them.
function uvuCounts(output) {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => {
    const m = new RegExp(`${label}:\\s+(\\d+)`).exec(plain);
    return m ? Number(m[1]) : undefined;
  };
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped') ?? 0;
  if (total === undefined || passed === undefined) return undefined;
  return { passed, skipped, failed: total - passed - skipped };
}

/** Test files directly in dist/test/<dir> (not in its subfolders: integration/linux is its own suite). */
function testFiles(dir) {
  const abs = join(root, 'dist', 'test', dir);
  return existsSync(abs) ? readdirSync(abs).filter((f) => f.endsWith('.test.js')) : [];
}

async function uvuSuite(dir, label, env = {}, only = undefined) {
  const files = testFiles(dir).filter((f) => only === undefined || f === only);
  if (files.length === 0) {
    log(`${label}: no test files in dist/test/${dir}${only === undefined ? '' : ` named ${only}`}`);
    if (only !== undefined) totals.failed += 1;
    return;
  }
  log(`${label}: ${files.length} files (dist/test/${dir})`);
  // The pattern keeps uvu (which walks folders recursively) to this folder's own files.
  const pattern = only === undefined ? '^[^/]+\\.test\\.js$' : `^${only.replace(/[.]/g, '\\.')}$`;
  const r = await run(node, [uvu, join('dist', 'test', dir), pattern], { timeoutMs: SUITE_TIMEOUT_MS, env });
  const c = uvuCounts(r.output);
  if (r.timedOut) {
    log(`${label}: FAILED: timed out after ${SUITE_TIMEOUT_MS / 1000} s`);
    totals.failed += 1;
    if (c) totals.passed += c.passed;
    return;
  }
  if (!c) {
    log(`${label}: FAILED: the test runner crashed (exit ${r.code}) before reporting totals`);
    totals.failed += 1;
    return;
  }
  if (r.code !== 0 && c.failed === 0) c.failed = 1; // uvu failed outside any test
  totals.passed += c.passed;
  totals.failed += c.failed;
  totals.skipped += c.skipped;
}

function skipFiles(dir, reason) {
  for (const f of testFiles(dir)) {
    log(`SKIP ${dir}/${f}: ${reason}`);
    totals.skipped += 1;
  }
}

async function probe(name, env = {}) {
  const script = join('dist', 'test', 'probe', `${name}.js`);
  const r = await run(node, [script], { timeoutMs: PROBE_TIMEOUT_MS * (name === 'linux' ? 4 : 1), quiet: true, env });
  const line = r.output.trim().split('\n').pop() ?? '';
  return { ok: r.code === 0, line: r.timedOut ? `${name} probe: no (timed out after ${PROBE_TIMEOUT_MS / 1000} s)` : line };
}

/** Builds (or finds) the kernels/ guest; progress streams through. */
async function buildGuestKernel() {
  log('guest kernel: npm run kernel (builds what is missing; the first build takes minutes)');
  const r = await run('bash', [join('kernels', 'build.sh')], { timeoutMs: 45 * 60_000 });
  const lines = r.output.trim().split('\n');
  const [bzImage, initramfs] = lines.slice(-2);
  if (r.code !== 0 || !bzImage?.startsWith('/') || !initramfs?.startsWith('/')) {
    log(`guest kernel: build failed (exit ${r.code})`);
    return undefined;
  }
  const root = await run('bash', [join('kernels', 'build-rootfs.sh')], { timeoutMs: 10 * 60_000 });
  const rootfs = root.output.trim().split('\n').pop();
  if (root.code !== 0 || !rootfs?.startsWith('/')) {
    log(`guest root file system: build failed (exit ${root.code})`);
    return undefined;
  }
  log(`guest kernel: ${bzImage}, ${initramfs}, ${rootfs}`);
  return { bzImage, initramfs, rootfs };
}

/** One run of `node scripts/test.mjs <mode>` inside the test bed: its totals, or undefined. */
async function bedAttempt(mode, env) {
  const cli = join('dist', 'test', 'bed', 'cli.js');
  log(`starting the nested-KVM test bed for: ${mode} (overall timeout ${BED_TIMEOUT_S} s)`);
  usedTestBed = true;
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)} `).join('');
  // The Linux suite moves 256 MiB files through the bed's tmpfs (/tmp) next to its nested guests:
  // 4 GiB keeps that clear of memory pressure (the default is 2 GiB).
  const memory = mode.startsWith('kvm-linux') ? ['--memory', '4096'] : [];
  const r = await run(node, [cli, '--timeout', String(BED_TIMEOUT_S), ...memory, '--', `${assignments}${JSON.stringify(node)} scripts/test.mjs ${mode}`]);
  const revives = r.output.match(/^\[tsvmm-bed\] heartbeat back after .*$/gm) ?? [];
  if (revives.length > 0) bedRevives.push(`${mode}: ${revives.length}`);
  const m = /^\[tsvmm-test\] totals: (\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(r.output);
  if (!m) {
    log(`test bed: no totals came back (exit ${r.code}${r.timedOut ? ', timed out' : ''})`);
    return undefined;
  }
  const t = { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) };
  if (r.code !== 0 && t.failed === 0) {
    log(`test bed: exit ${r.code} although no test failed`);
    t.failed = 1;
  }
  return t;
}

/**
 * Runs a suite inside the test bed and adds its totals. The emulated machine is known to stall
 * now and then (a nested guest whose timer interrupts stop coming: "rcu_sched kthread timer
 * wakeup didn't happen"; once it happens, every later nested guest in the same emulated machine
 * stalls too, QEMU's included). A failed attempt therefore runs again in a fresh emulated machine,
 * up to BED_ATTEMPTS in all; earlier attempts' failures stay in the log above, and the retries
 * are reported on their own line. After a stall the rest of the attempt fails at once
 * (test/helpers/tsvmm-process.ts), so a retry costs little. A real regression fails every time.
 * The whole emulated machine could also freeze (a lost wake-up in QEMU 7.2's nested SVM, see
 * test/bed/watchdog.ts): the bed runs L1 with a periodic tick, which heals that, and its heartbeat
 * watchdog revives a silent machine with a key press; one that stays silent for 60 s is killed,
 * and that counts as a failed attempt.
 */
async function inTestBed(mode, env = {}) {
  bedFirstStarted ??= Date.now();
  let t = await bedAttempt(mode, env);
  for (let attempt = 2; attempt <= BED_ATTEMPTS && (!t || t.failed > 0); attempt++) {
    if ((Date.now() - bedFirstStarted) / 1000 > BED_RETRY_WINDOW_S) {
      log(`no further attempt: ${BED_RETRY_WINDOW_S} s have passed since the first test-bed attempt began`);
      break;
    }
    const before = t ? `${t.failed} failed, ${t.passed} passed` : 'no totals';
    log(`RETRY: ${mode} in the test bed failed (${before}); attempt ${attempt} of ${BED_ATTEMPTS} in a fresh emulated machine`);
    bedRetries.push(`${mode}: attempt ${attempt - 1}: ${before}`);
    t = await bedAttempt(mode, env);
  }
  if (!t) {
    totals.failed += 1;
    return;
  }
  totals.passed += t.passed;
  totals.failed += t.failed;
  totals.skipped += t.skipped;
}

async function kvmTests() {
  if (inBed) {
    await uvuSuite('integration', 'KVM integration tests (test bed)');
    await uvuSuite('integration/linux', 'Linux-booting tests (test bed)');
    return;
  }
  const toy = await probe('realmode');
  log(toy.line);
  if (toy.ok) {
    await uvuSuite('integration', 'KVM integration tests (native)');
  } else {
    await inTestBed('kvm-toy');
  }
  const linuxFiles = testFiles('integration/linux');
  if (linuxFiles.length > 0) {
    const kernel = await buildGuestKernel();
    if (!kernel) {
      skipFiles('integration/linux', 'the guest kernel could not be built (see kernels/build.sh output above)');
      totals.failed += 1;
    } else {
      const env = { TSVMM_KERNEL: kernel.bzImage, TSVMM_INITRD: kernel.initramfs, TSVMM_ROOTFS: kernel.rootfs };
      const linux = await probe('linux', env);
      log(linux.line);
      if (linux.ok) await uvuSuite('integration/linux', 'Linux-booting tests (native)', env);
      // One machine per file: a machine that freezes (see inTestBed) costs only that file's run,
      // and a retry repeats only that file.
      else for (const f of linuxFiles) await inTestBed(`kvm-linux-file:${f}`, env);
    }
  } else {
    log('Linux-booting tests: none');
  }
  // The test bed's own end-to-end check where nothing above needed it (hardware KVM): the toy-guest
  // suite again, inside the bed, so every run proves the bed still works.
  if (!usedTestBed && process.env.TSVMM_SKIP_TESTBED_SELFTEST !== '1') {
    log('test bed self-test: the KVM integration tests inside the nested-KVM test bed');
    await inTestBed('kvm-toy');
  }
}

async function main() {
  const mode = process.argv[2] ?? 'all';
  const linuxFile = /^kvm-linux-file:(.+)$/.exec(mode)?.[1];
  if (linuxFile !== undefined) {
    // One file of integration/linux (the test bed runs each in its own machine).
    await uvuSuite('integration/linux', `Linux-booting tests (${inBed ? 'test bed' : 'native'}): ${linuxFile}`, {}, linuxFile);
  } else switch (mode) {
    case 'unit':
      await uvuSuite('unit', 'unit tests');
      break;
    case 'kvm':
      await kvmTests();
      break;
    case 'kvm-toy':
      await uvuSuite('integration', `KVM integration tests (${inBed ? 'test bed' : 'native'})`);
      break;
    case 'kvm-linux':
      await uvuSuite('integration/linux', `Linux-booting tests (${inBed ? 'test bed' : 'native'})`);
      break;
    case 'all':
      await uvuSuite('unit', 'unit tests');
      await kvmTests();
      break;
    default:
      process.stderr.write(`usage: node scripts/test.mjs [unit|kvm|all]\n`);
      process.exit(2);
  }
  const { passed, failed, skipped } = totals;
  if (bedRetries.length > 0) log(`test bed retries: ${bedRetries.length} (${bedRetries.join('; ')})`);
  if (bedRevives.length > 0) log(`test bed machines revived after a silent heartbeat (a lost wake-up in QEMU 7.2, test/bed/watchdog.ts): ${bedRevives.join('; ')}`);
  log(`totals: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
