// Pure parsers for the apt-cache output the kernel resolver reads.

/**
 * Debian's versioned kernel image packages: linux-image-<release>, the release starting with
 * the kernel version (bookworm: linux-image-6.1.0-56-amd64, trixie: linux-image-6.12.38+deb13-amd64).
 */
const KERNEL_IMAGE_PACKAGE = /^linux-image-(\d+\.\d+[\w.+~-]*)$/;

/** The first `Field: value` of a deb822 stanza (`apt-cache show --no-all-versions PKG`). */
export function parseControlField(stanza: string, field: string): string | undefined {
  const prefix = `${field}:`;
  for (const line of stanza.split('\n')) {
    if (line.startsWith(prefix)) return line.slice(prefix.length).trim();
  }
  return undefined;
}

export interface KernelDependency {
  name: string; // linux-image-6.1.0-56-amd64
  /** The exact version the metapackage pins (`(= 6.1.192-2)`), when it pins one. */
  version: string | undefined;
}

/**
 * From the stanza of `apt-cache show --no-all-versions linux-image-amd64`, the versioned image
 * package its Depends field names (`Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)`).
 * One apt-cache call instead of `apt-cache depends` + `show`: each costs ~0.7 s here because
 * apt rebuilds its cache in memory on every call.
 */
export function parseKernelDependency(stanza: string): KernelDependency | undefined {
  const depends = parseControlField(stanza, 'Depends') ?? parseControlField(stanza, 'Pre-Depends') ?? '';
  for (const alternative of depends.split(/[,|]/)) {
    const m = /^\s*(\S+)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?/.exec(alternative);
    const name = m?.[1]?.replace(/:any$/, '');
    if (name !== undefined && KERNEL_IMAGE_PACKAGE.test(name)) return { name, version: m?.[2] };
  }
  return undefined;
}

/** The kernel release (`uname -r`, the lib/modules directory name) a package name carries. */
export function kernelReleaseOf(imagePackage: string): string | undefined {
  return KERNEL_IMAGE_PACKAGE.exec(imagePackage)?.[1];
}
