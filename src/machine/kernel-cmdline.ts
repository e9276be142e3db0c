// The kernel command line a VM boots with: the description's boot_args plus what its hardware
// implies, added before the line's `--` (src/boot/cmdline.ts): root= and ro|rw for the root
// drive (as Firecracker does for is_root_device), and one virtio_mmio.device= per device.
import { BootError, Cmdline } from '../boot/index.js';
import { ConfigError, type DriveDescription } from './vm-description.js';

/** The boot_args parsed, with root=/dev/vda and ro|rw for `root` (the first drive) added. */
export function kernelCmdline(bootArgs: string, root: DriveDescription | undefined): { cmdline: Cmdline; warnings: string[] } {
  let line: Cmdline;
  try {
    line = Cmdline.parse(bootArgs);
  } catch (e) {
    if (e instanceof BootError) throw new ConfigError(`boot args: ${e.message}`);
    throw e;
  }
  const warnings: string[] = [];
  const warn = (w: string | undefined): void => {
    if (w !== undefined) warnings.push(w);
  };
  if (root) {
    const what = `the root drive ${root.driveId}`;
    warn(line.addDefault({ name: 'root', value: '/dev/vda', why: `${what} is /dev/vda` }));
    // ro and rw are one setting (the root mount's mode); the kernel takes the last one given.
    warn(line.addDefault({ name: root.isReadOnly ? 'ro' : 'rw', alternatives: ['ro', 'rw'], why: root.isReadOnly ? `${what} is read-only` : `${what} is writable` }));
  }
  return { cmdline: line, warnings };
}
