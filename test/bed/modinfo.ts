// Pure kernel-module metadata: the .modinfo section of a .ko (ELF64) and the load order of a
// set of modules with their dependencies. The Debian package carries no modules.dep (depmod
// writes it at install time, and the host may have no kmod), so the order is worked out here.
import { elfSection } from './elf.js';
import { ModuleResolveError } from './errors.js';

/** Canonical module name: the kernel treats '-' and '_' alike (kvm-amd.ko is module kvm_amd). */
export function moduleName(fileOrName: string): string {
  const base = fileOrName.slice(fileOrName.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** The key=value pairs of a module's .modinfo (keys may repeat, e.g. alias). */
export function readModinfo(ko: Uint8Array): Map<string, string[]> {
  const section = elfSection(ko, '.modinfo');
  const info = new Map<string, string[]>();
  if (section === undefined) return info;
  for (const entry of new TextDecoder().decode(section).split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
  }
  return info;
}

/** The modules a .ko needs loaded before it (`depends=kvm,ccp`). */
export function moduleDepends(ko: Uint8Array): string[] {
  const deps = readModinfo(ko).get('depends')?.[0] ?? '';
  return deps.split(',').filter((d) => d !== '').map(moduleName);
}

/**
 * Load order for `roots` and everything they depend on: each module after its dependencies,
 * each once. `dependsOf(name)` returns a module's direct dependencies, or undefined when the
 * module does not exist (an error naming who wanted it). Modules in `builtin` (the package's
 * modules.builtin) are part of the kernel image already and are left out.
 */
export function resolveLoadOrder(
  roots: readonly string[],
  dependsOf: (name: string) => readonly string[] | undefined,
  builtin: ReadonlySet<string> = new Set(),
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, wantedBy: string): void => {
    const s = state.get(name);
    if (s === 'done' || builtin.has(name)) return;
    if (s === 'visiting') throw new ModuleResolveError(`kernel module ${name} depends on itself through ${wantedBy}; the module tree is corrupt`);
    const deps = dependsOf(name);
    if (deps === undefined) {
      throw new ModuleResolveError(
        `kernel module ${name} (needed by ${wantedBy}) is not in the kernel package; ` +
          'the test bed needs a kernel built with it as a module (Debian linux-image-amd64 is)',
      );
    }
    state.set(name, 'visiting');
    for (const d of deps) visit(moduleName(d), name);
    state.set(name, 'done');
    order.push(name);
  };
  for (const r of roots) visit(moduleName(r), 'the test bed');
  return order;
}
