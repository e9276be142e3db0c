#!/usr/bin/env node
// `npm start`: the main job on any machine. Builds what is missing (the TypeScript is built by
// npm ci; the guest kernel and initramfs here, cached in ~/.cache/tsvmm) and boots the guest:
// natively where the Linux probe says this host's /dev/kvm can boot it, otherwise inside the
// nested-KVM test bed (kvm-pvm or no /dev/kvm). Extra arguments go to `tsvmm boot`.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (line) => process.stderr.write(`[tsvmm start] ${line}\n`);

say('guest kernel and initramfs: kernels/build.sh (builds what is missing; the first build takes minutes)');
const build = spawnSync('bash', [join(root, 'kernels', 'build.sh')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
const [kernel, initrd] = build.stdout.trim().split('\n').slice(-2);
if (build.status !== 0 || !kernel?.startsWith('/') || !initrd?.startsWith('/')) {
  say(`the guest kernel build failed (exit ${build.status})`);
  process.exit(1);
}
say(`kernel ${kernel}`);
say(`initramfs ${initrd}`);

const bootArgs = ['boot', kernel, '--initrd', initrd, ...process.argv.slice(2)];
const probe = spawnSync(process.execPath, [join(root, 'dist', 'test', 'probe', 'linux.js')], {
  cwd: root,
  encoding: 'utf8',
  env: { ...process.env, TSVMM_KERNEL: kernel, TSVMM_INITRD: initrd },
});
say(probe.stdout.trim());
let r;
if (probe.status === 0) {
  say(`booting natively: tsvmm ${bootArgs.join(' ')}`);
  r = spawnSync(process.execPath, [join(root, 'bin', 'tsvmm.js'), ...bootArgs], { cwd: root, stdio: 'inherit' });
} else {
  say('booting inside the nested-KVM test bed (QEMU TCG): slower, but a real KVM');
  const quoted = [process.execPath, 'bin/tsvmm.js', ...bootArgs].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  r = spawnSync(process.execPath, [join(root, 'dist', 'test', 'bed', 'cli.js'), '--timeout', '600', '--', `${quoted} </dev/null`], { cwd: root, stdio: 'inherit' });
}
process.exit(r.status ?? 1);
