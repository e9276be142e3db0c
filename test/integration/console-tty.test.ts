// `tsvmm boot` on a terminal: stdin in raw mode (Ctrl-C arrives as a byte, not a signal) stops
// the VM with status 130 and leaves the terminal as it found it. A pty from script(1) stands in
// for the user's terminal; the guest is a kernel that spins (`jmp $`), so no Linux is needed.
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

test('Ctrl-C on the console stops the VM (status 130) and restores the terminal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-tty-'));
  const kernel = join(dir, 'spin');
  writeFileSync(kernel, elfKernel([0xeb, 0xfe]));
  const tsvmm = join(packageRoot(), 'bin', 'tsvmm.js');
  const inner = `stty -a | grep -o -- '-\\?icanon' | sed 's/^/before=/'; ${JSON.stringify(process.execPath)} ${tsvmm} boot ${kernel} --memory 64; echo "rc=$?"; stty -a | grep -o -- '-\\?icanon' | sed 's/^/after=/'`;
  const child = spawn('script', ['-qfec', inner, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // Give tsvmm time to start the VM and put the terminal in raw mode, then type Ctrl-C.
  await new Promise((r) => setTimeout(r, 3000));
  child.stdin.write('\x03');
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  assert.match(out, /VM ended: signal \(SIGINT\); exit status 130/, out);
  assert.match(out, /rc=130/, out);
  assert.match(out, /before=icanon/, out);
  assert.match(out, /after=icanon/, 'canonical mode is back after tsvmm exits');
  assert.is(code, 0);
});

test.run();
