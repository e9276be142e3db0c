// `tsvmm boot` on a terminal: stdin in raw mode (Ctrl-C arrives as a byte, not a signal) stops
// the VM with status 130 and leaves the terminal as it found it. A pty from script(1) stands in
// for the user's terminal; the guest is a kernel that writes a marker to the serial port and
// spins (`jmp $`), so no Linux is needed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';
import { elfKernel } from '../helpers/elf-kernel.js';
import { whereLabel } from '../helpers/where.js';

const test = suite(`console on a terminal [${whereLabel()}]`);

/** What the guest writes to COM1 once running: tsvmm made stdin raw before starting the vCPUs. */
const READY = 'guest-ready';
/** Waits that only a hang outlasts: an emulated test machine is many times slower, never stuck. */
const HANG_MS = 60_000;

/** 64-bit code: READY out of COM1's data port, then `jmp $`. */
function readyThenSpin(): number[] {
  const code = [0x66, 0xba, 0xf8, 0x03]; // mov dx, 0x3f8
  for (const c of READY) code.push(0xb0, c.charCodeAt(0), 0xee); // mov al, c; out dx, al
  code.push(0xeb, 0xfe); // jmp $
  return code;
}

test('Ctrl-C on the console stops the VM (status 130) and restores the terminal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-tty-'));
  const kernel = join(dir, 'spin');
  writeFileSync(kernel, elfKernel(readyThenSpin()));
  const tsvmm = join(packageRoot(), 'bin', 'tsvmm.js');
  const inner = `stty -a | grep -o -- '-\\?icanon' | sed 's/^/before=/'; ${JSON.stringify(process.execPath)} ${tsvmm} boot ${kernel} --memory 64; echo "rc=$?"; stty -a | grep -o -- '-\\?icanon' | sed 's/^/after=/'`;
  const child = spawn('script', ['-qfec', inner, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  const closed = new Promise<number | null>((resolve) =>
    child.on('close', (c) => {
      exited = true;
      resolve(c);
    }),
  );
  // Once the guest's marker is on the terminal, the terminal is raw: then type Ctrl-C.
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "${READY}" from the guest within ${HANG_MS / 1000} s; output so far:\n${out}`)), HANG_MS);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes(READY)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void closed.then((c) => {
      clearTimeout(t);
      reject(new Error(`exited (${c}) before the guest wrote "${READY}"; output:\n${out}`));
    });
  });
  try {
    await ready;
  } catch (e) {
    if (!exited) child.kill('SIGKILL');
    await closed;
    throw e;
  }
  child.stdin.write('\x03');
  const t = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
  const code = await closed;
  clearTimeout(t);
  assert.match(out, /VM ended: signal \(SIGINT\); exit status 130/, out);
  assert.match(out, /rc=130/, out);
  assert.match(out, /before=icanon/, out);
  assert.match(out, /after=icanon/, 'canonical mode is back after tsvmm exits');
  assert.is(code, 0);
});

test.run();
