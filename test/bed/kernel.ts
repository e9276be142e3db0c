// Obtains the L1 guest kernel without installing it on the host: resolves the image package
// Debian's linux-image-amd64 points at, downloads that .deb and unpacks it into a work dir.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { kernelReleaseOf, parseControlField, parseKernelDependency } from './apt-parse.js';
import { runCommand } from './exec.js';
import { KernelPackageError } from './errors.js';
import { progress } from './log.js';

/** The metapackage that tracks Debian's current kernel for amd64. */
export const KERNEL_METAPACKAGE = 'linux-image-amd64';

export interface KernelPackage {
  name: string; // linux-image-6.1.0-56-amd64
  version: string; // 6.1.192-2
  release: string; // 6.1.0-56-amd64 (lib/modules/<release>)
}

const APT_HINT = 'run `apt-get update` (as root) so apt knows the current Debian kernel, then retry';

/** Asks apt (local package lists only, no network) which kernel image package is current. */
export async function resolveKernelPackage(): Promise<KernelPackage> {
  const show = (await runCommand(['apt-cache', 'show', '--no-all-versions', KERNEL_METAPACKAGE], { hint: APT_HINT })).toString('utf8');
  const dep = parseKernelDependency(show);
  const release = dep === undefined ? undefined : kernelReleaseOf(dep.name);
  if (dep === undefined || release === undefined) {
    throw new KernelPackageError(`${KERNEL_METAPACKAGE} depends on no linux-image-<release> package (its Depends: ${JSON.stringify(parseControlField(show, 'Depends') ?? '')}); ${APT_HINT}`);
  }
  let version = dep.version;
  if (version === undefined) {
    const image = (await runCommand(['apt-cache', 'show', '--no-all-versions', dep.name], { hint: APT_HINT })).toString('utf8');
    version = parseControlField(image, 'Version');
    if (version === undefined) throw new KernelPackageError(`\`apt-cache show ${dep.name}\` gives no Version field; ${APT_HINT}`);
  }
  return { name: dep.name, version, release };
}

/** Downloads `pkg` (as a .deb, not installed) into workDir and unpacks it to workDir/root. */
export async function unpackKernelPackage(pkg: KernelPackage, workDir: string): Promise<string> {
  progress(`downloading ${pkg.name} ${pkg.version} (apt-get download, not installed) ...`);
  await runCommand(['apt-get', 'download', `${pkg.name}=${pkg.version}`], {
    cwd: workDir,
    hint: `check that the Debian mirror is reachable and that ${pkg.name} ${pkg.version} is in it (apt-get update)`,
  });
  const debs = (await readdir(workDir)).filter((f) => f.startsWith(`${pkg.name}_`) && f.endsWith('.deb'));
  const deb = debs[0];
  if (deb === undefined || debs.length !== 1) {
    throw new KernelPackageError(`apt-get download left ${debs.length} ${pkg.name}_*.deb files in ${workDir}, expected 1; remove ${workDir} and retry`);
  }
  progress(`unpacking ${deb} (dpkg-deb -x) ...`);
  const root = join(workDir, 'root');
  await runCommand(['dpkg-deb', '-x', join(workDir, deb), root], { hint: `${deb} may be truncated; remove ${workDir} and retry` });
  return root;
}
