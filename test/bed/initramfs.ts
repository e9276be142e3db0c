// Pure: the L1 guest's initramfs contents. A static busybox, the guest /init, the kernel
// modules and the order to load them in; everything else comes from the host over 9p.
import type { CpioEntry } from './cpio.js';

export interface InitramfsInputs {
  busybox: Uint8Array; // a statically linked busybox (Debian busybox-static)
  init: Uint8Array; // test/bed/guest-init.sh
  modules: ReadonlyArray<{ name: string; data: Uint8Array }>; // in load order
}

/** Where guest-init.sh finds the modules: <dir>/<name>.ko and <dir>/order (one name a line). */
export const GUEST_MODULE_DIR = 'lib/tsvmm';

export function initramfsEntries(inputs: InitramfsInputs): CpioEntry[] {
  const dirs = ['bin', 'dev', 'proc', 'sys', 'mnt', 'tmp', 'lib', GUEST_MODULE_DIR];
  return [
    ...dirs.map((path): CpioEntry => ({ kind: 'dir', path })),
    // The kernel opens /dev/console for init's stdio before init can mount devtmpfs.
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: inputs.busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: inputs.init, mode: 0o755 },
    ...inputs.modules.map((m): CpioEntry => ({ kind: 'file', path: `${GUEST_MODULE_DIR}/${m.name}.ko`, data: m.data })),
    { kind: 'file', path: `${GUEST_MODULE_DIR}/order`, data: new TextEncoder().encode(inputs.modules.map((m) => `${m.name}\n`).join('')) },
  ];
}
