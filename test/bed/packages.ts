// Makes sure the host has the Debian packages the test bed runs on: installs them when we are
// root, otherwise says exactly what to install. Nothing else on the host is changed.
import { runCommand } from './exec.js';
import { CommandFailedError, MissingPackagesError } from './errors.js';
import { progress } from './log.js';

/** Host packages: QEMU (TCG + 9p), a static busybox for the initramfs, xz for the kernel payload. */
export const HOST_PACKAGES = ['qemu-system-x86', 'busybox-static', 'xz-utils'] as const;

/** True when dpkg's status abbreviation says "installed" (`ii`, or `hi` when held). */
export function isInstalledStatus(statusAbbrev: string): boolean {
  return /^[uih]i/.test(statusAbbrev);
}

async function isInstalled(pkg: string): Promise<boolean> {
  try {
    const out = await runCommand(['dpkg-query', '-W', '-f=${db:Status-Abbrev}', pkg], {
      hint: 'the test bed needs a Debian-based host (dpkg and apt)',
    });
    return isInstalledStatus(out.toString('utf8'));
  } catch (e) {
    // dpkg-query exits 1 for a package it has never heard of; a missing dpkg-query is fatal.
    if (e instanceof CommandFailedError && e.exitCode === 1) return false;
    throw e;
  }
}

export async function ensureHostPackages(packages: readonly string[] = HOST_PACKAGES): Promise<void> {
  const missing: string[] = [];
  for (const pkg of packages) if (!(await isInstalled(pkg))) missing.push(pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new MissingPackagesError(missing);
  progress(`installing ${missing.join(' ')} (apt-get) ...`);
  // --no-install-recommends: QEMU's recommends pull in GUI and firmware the test bed never uses.
  await runCommand(['apt-get', 'install', '-y', '--no-install-recommends', ...missing], {
    hint: `install them by hand (apt-get update && apt-get install -y ${missing.join(' ')}) and retry`,
    showStderr: true,
  });
}
