#!/usr/bin/env node
// The project's test driver (npm test / npm run test:unit / npm run test:kvm).
//
//   node scripts/test.mjs unit   unit tests (no KVM needed), everywhere
//   node scripts/test.mjs kvm    KVM integration tests: natively where a probe shows this host's
//                                /dev/kvm can run them, otherwise inside the nested-KVM test bed
//   node scripts/test.mjs all    both; the last line is "N passed, N failed, N skipped"
//   node scripts/test.mjs kvm-toy | kvm-linux | kvm-linux-file:F   one suite, here (what the test
//                                bed runs: one machine per Linux test file)
//
// Which way the KVM tests go is decided by probes that run a guest, never by the existence of
// /dev/kvm: kvm-pvm provides a /dev/kvm that runs real-mode toy guests but not Linux.
// The counting, the bed's retry rule and the closing lines live in test/runner/ (unit-tested);
// this file only runs processes. Each run has one seed (TSVMM_TEST_SEED) for every randomised
// test, printed here, passed into the bed and reused by a retry.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const runner = await import(join(root, 'dist', 'test', 'runner', 'index.js'));
const node = process.execPath;
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const seedPreload = join(root, 'dist', 'test', 'helpers', 'fast-check-seed.js');
const inBed = process.env.TSVMM_WHERE === 'testbed';
const PROBE_TIMEOUT_MS = { realmode: 20_000, linux: 80_000 };
/** Per uvu process (one suite directory or one Linux test file); the bed has its own limit. */
const SUITE_TIMEOUT_MS = Number(process.env.TSVMM_SUITE_TIMEOUT_S ?? 1200) * 1000;
const BED_TIMEOUT_S = Number(process.env.TSVMM_TESTBED_TIMEOUT_S ?? 1500);
/** Host tools run by this script (the kernel build is the long one). */
const KERNEL_BUILD_TIMEOUT_MS = 45 * 60_000;
const ROOTFS_BUILD_TIMEOUT_MS = 10 * 60_000;

const { seed } = runner.runSeed(process.env);
const seedEnv = { [runner.SEED_VARIABLE]: String(seed) };
const bedBudget = new runner.BedRetryBudget(
  Number(process.env.TSVMM_TESTBED_MAX_RETRIES ?? runner.DEFAULT_MAX_BED_RETRIES),
  process.env.TSVMM_TESTBED_RETRY_WINDOW_S === undefined ? runner.DEFAULT_RETRY_WINDOW_MS : Number(process.env.TSVMM_TESTBED_RETRY_WINDOW_S) * 1000,
);
let totals = runner.EMPTY_REPORT;
let usedTestBed = false;
/** Process groups still running, killed if this runner is stopped (Ctrl-C, CI's own limit). */
const liveGroups = new Set();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    for (const pid of liveGroups) killGroup(pid);
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}

function log(line) {
  process.stdout.write(`[tsvmm-test] ${line}\n`);
}

function add(report) {
  totals = runner.addReports(totals, report);
}

/**
 * Runs a command in a process group of its own, streaming its output; resolves with
 * { code, output, timedOut }. On a time-out the whole group is killed, so VMMs that tests
 * started go with the runner that started them.
 */
function run(cmd, args, { timeoutMs, env = {}, quiet = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...seedEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      if (!quiet) process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let timedOut = false;
    liveGroups.add(child.pid);
    const timer = timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          killGroup(child.pid);
        }, timeoutMs)
      : undefined;
    child.on('close', (code) => {
      clearTimeout(timer);
      // Whatever the suite left behind (a VMM a crashed test did not stop) goes too.
      killGroup(child.pid);
      liveGroups.delete(child.pid);
      resolve({ code: timedOut ? 124 : code, output, timedOut });
    });
  });
}

/** Test files directly in dist/test/<dir> (not in its subfolders: integration/linux is its own suite). */
function testFiles(dir) {
  const abs = join(root, 'dist', 'test', dir);
  return existsSync(abs) ? readdirSync(abs).filter((f) => f.endsWith('.test.js')).sort() : [];
}

async function uvuSuite(dir, label, env = {}, only = undefined) {
  const files = testFiles(dir).filter((f) => only === undefined || f === only);
  if (files.length === 0) {
    log(`${label}: no test files in dist/test/${dir}${only === undefined ? '' : ` named ${only}`}`);
    return only === undefined ? runner.EMPTY_REPORT : runner.runnerFailure(`${label}: no test file dist/test/${dir}/${only}`);
  }
  log(`${label}: ${files.length} files (dist/test/${dir})`);
  // The pattern keeps uvu (which walks folders recursively) to this folder's own files.
  const pattern = only === undefined ? '^[^/]+\\.test\\.js$' : `^${only.replace(/[.]/g, '\\.')}$`;
  const r = await run(node, ['--import', seedPreload, uvu, join('dist', 'test', dir), pattern], { timeoutMs: SUITE_TIMEOUT_MS, env });
  const report = runner.suiteReportFromUvu(label, { output: r.output, code: r.code, timedOut: r.timedOut, timeoutMs: SUITE_TIMEOUT_MS });
  if (r.timedOut) log(`${label}: FAILED: timed out after ${SUITE_TIMEOUT_MS / 1000} s; its process group was killed`);
  return report;
}

function skipFiles(dir, reason) {
  const names = testFiles(dir).map((f) => `${dir}/${f}: ${reason}`);
  for (const n of names) log(`SKIP ${n}`);
  return { passed: 0, failed: 0, skipped: names.length, failures: [], skippedNames: names };
}

async function probe(name, env = {}) {
  const script = join('dist', 'test', 'probe', `${name}.js`);
  const timeoutMs = PROBE_TIMEOUT_MS[name];
  const r = await run(node, [script], { timeoutMs, quiet: true, env });
  const line = r.output.trim().split('\n').pop() ?? '';
  return { ok: r.code === 0, line: r.timedOut ? `${name} probe: no (timed out after ${timeoutMs / 1000} s)` : line };
}

/** Builds (or finds) the kernels/ guest; progress streams through. */
async function buildGuestKernel() {
  log('guest kernel: npm run kernel (builds what is missing; the first build takes minutes)');
  const r = await run('bash', [join('kernels', 'build.sh')], { timeoutMs: KERNEL_BUILD_TIMEOUT_MS });
  const lines = r.output.trim().split('\n');
  const [bzImage, initramfs] = lines.slice(-2);
  if (r.code !== 0 || !bzImage?.startsWith('/') || !initramfs?.startsWith('/')) {
    log(`guest kernel: build failed (exit ${r.code})`);
    return undefined;
  }
  const rootfsRun = await run('bash', [join('kernels', 'build-rootfs.sh')], { timeoutMs: ROOTFS_BUILD_TIMEOUT_MS });
  const rootfs = rootfsRun.output.trim().split('\n').pop();
  if (rootfsRun.code !== 0 || !rootfs?.startsWith('/')) {
    log(`guest root file system: build failed (exit ${rootfsRun.code})`);
    return undefined;
  }
  const toolsRun = await run('bash', [join('test', 'guest', 'build.sh')], { timeoutMs: ROOTFS_BUILD_TIMEOUT_MS });
  const tools = toolsRun.output.trim().split('\n').pop();
  if (toolsRun.code !== 0 || !tools?.endsWith('tools.ext4')) {
    log(`guest tools disk (test/guest/build.sh): build failed (exit ${toolsRun.code})`);
    return undefined;
  }
  log(`guest kernel: ${bzImage}, ${initramfs}, ${rootfs}; tools ${tools}`);
  return { bzImage, initramfs, rootfs, tools };
}

/** One run of `node scripts/test.mjs <mode>` inside the test bed. */
async function bedAttempt(mode, env) {
  const cli = join('dist', 'test', 'bed', 'cli.js');
  log(`starting the nested-KVM test bed for: ${mode} (overall timeout ${BED_TIMEOUT_S} s, seed ${seed})`);
  usedTestBed = true;
  // Knobs a developer set for the Linux tests go into the bed too.
  const knobs = Object.fromEntries(['TSVMM_VSOCK_CYCLES', 'TSVMM_VSOCK_STRESS_MIB', 'TSVMM_DURABILITY_CYCLES', 'TSVMM_TEST_GUEST_ARGS'].filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
  const assignments = Object.entries({ ...seedEnv, ...knobs, ...env }).map(([k, v]) => `${k}=${JSON.stringify(v)} `).join('');
  // The Linux suite moves 256 MiB files through the bed's tmpfs (/tmp) next to its nested guests:
  // 4 GiB keeps that clear of memory pressure (the default is 2 GiB).
  const memory = mode.startsWith('kvm-linux') ? ['--memory', '4096'] : [];
  const r = await run(node, [cli, '--timeout', String(BED_TIMEOUT_S), ...memory, '--', `${assignments}${JSON.stringify(node)} scripts/test.mjs ${mode}`]);
  return { output: r.output, exitCode: r.code ?? 128 };
}

function inTestBed(mode, env = {}) {
  return runner.runSuiteInBed(mode, () => bedAttempt(mode, env), bedBudget, log);
}

async function kvmTests() {
  if (inBed) {
    add(await uvuSuite('integration', 'KVM integration tests (test bed)'));
    add(await uvuSuite('integration/linux', 'Linux-booting tests (test bed)'));
    return;
  }
  const toy = await probe('realmode');
  log(toy.line);
  if (toy.ok) add(await uvuSuite('integration', 'KVM integration tests (native)'));
  else add(await inTestBed('kvm-toy'));
  // TSVMM_LINUX_FILES=a.test.js,b.test.js runs only those Linux test files (a developer's run).
  const chosen = process.env.TSVMM_LINUX_FILES?.split(',').filter((f) => f !== '');
  const linuxFiles = testFiles('integration/linux').filter((f) => chosen === undefined || chosen.includes(f));
  if (linuxFiles.length > 0) {
    const kernel = await buildGuestKernel();
    if (!kernel) {
      add(skipFiles('integration/linux', 'the guest kernel could not be built (see kernels/build.sh output above)'));
      add(runner.runnerFailure('the guest kernel could not be built'));
    } else {
      const env = { TSVMM_KERNEL: kernel.bzImage, TSVMM_INITRD: kernel.initramfs, TSVMM_ROOTFS: kernel.rootfs, TSVMM_GUEST_TOOLS: kernel.tools };
      const linux = await probe('linux', env);
      log(linux.line);
      if (linux.ok) for (const f of chosen === undefined ? [undefined] : linuxFiles) add(await uvuSuite('integration/linux', 'Linux-booting tests (native)', env, f));
      // One machine per file: a machine that faults costs only that file's run, and a retry
      // repeats only that file.
      else for (const f of linuxFiles) add(await inTestBed(`kvm-linux-file:${f}`, env));
    }
  } else {
    log('Linux-booting tests: none');
  }
  // The test bed's own end-to-end check where nothing above needed it (hardware KVM): the toy-guest
  // suite again, inside the bed, so every run proves the bed still works.
  if (!usedTestBed && process.env.TSVMM_SKIP_TESTBED_SELFTEST !== '1') {
    log('test bed self-test: the KVM integration tests inside the nested-KVM test bed');
    add(await inTestBed('kvm-toy'));
  }
}

async function main() {
  const mode = process.argv[2] ?? 'all';
  log(`seed ${seed} for every randomised test (replay: ${runner.SEED_VARIABLE}=${seed})`);
  const linuxFile = /^kvm-linux-file:(.+)$/.exec(mode)?.[1];
  const where = inBed ? 'test bed' : 'native';
  if (linuxFile !== undefined) {
    add(await uvuSuite('integration/linux', `Linux-booting tests (${where}): ${linuxFile}`, {}, linuxFile));
  } else {
    switch (mode) {
      case 'unit':
        add(await uvuSuite('unit', 'unit tests'));
        break;
      case 'kvm':
        await kvmTests();
        break;
      case 'kvm-toy':
        add(await uvuSuite('integration', `KVM integration tests (${where})`));
        break;
      case 'kvm-linux':
        add(await uvuSuite('integration/linux', `Linux-booting tests (${where})`));
        break;
      case 'all':
        add(await uvuSuite('unit', 'unit tests'));
        await kvmTests();
        break;
      default:
        process.stderr.write(`usage: node scripts/test.mjs [unit|kvm|all|kvm-toy|kvm-linux|kvm-linux-file:F]\n`);
        process.exit(2);
    }
  }
  // Inside the bed, the report goes back to the runner outside as one JSON line.
  if (inBed) process.stdout.write(`${runner.reportLine(totals)}\n`);
  for (const line of runner.closingLines(totals, bedBudget.retried)) process.stdout.write(`${line}\n`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
}

await main();
