// Collects the kernel modules the L1 guest loads (with their dependencies, in load order)
// from an unpacked kernel package, decompressed, ready to go into the initramfs.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './exec.js';
import { ModuleResolveError } from './errors.js';
import { moduleDepends, moduleName, resolveLoadOrder } from './modinfo.js';

/**
 * What the guest needs: KVM for AMD (QEMU TCG's `-cpu max` has SVM+NPT but no VMX) and 9p
 * over virtio-pci to mount the host's root. Their dependencies are found from .modinfo. Also
 * loop and ext4 (with crc32c, ext4's soft dependency for metadata checksums), so that a job can
 * mount an ext4 image from the scratch tmpfs: the block benchmark keeps its scratch disk on one,
 * since tmpfs does neither O_DIRECT nor RWF_NOWAIT reads, unlike the file systems images live on.
 * And vhost_vsock, for QEMU's vhost-vsock-device: the peer of the vsock benchmark.
 */
export const ROOT_MODULES = ['kvm_amd', 'virtio_pci', '9pnet_virtio', '9p', 'loop', 'crc32c_generic', 'ext4', 'vhost_vsock'] as const;

export interface GuestModule {
  name: string;
  data: Uint8Array; // an uncompressed .ko, loadable by busybox insmod
}

async function indexModules(dir: string, index: Map<string, string>): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await indexModules(path, index);
    else if (/\.ko(\.xz|\.zst)?$/.test(entry.name)) index.set(moduleName(entry.name), path);
  }
}

async function readModule(path: string): Promise<Uint8Array> {
  const raw = await readFile(path);
  if (path.endsWith('.ko')) return raw;
  const tool = path.endsWith('.xz') ? 'xz' : 'zstd';
  return runCommand([tool, '-dc'], { input: raw, hint: `install ${tool === 'xz' ? 'xz-utils' : 'zstd'} to decompress ${path}` });
}

/** `modulesDir` is <unpacked package>/lib/modules/<release>. */
export async function collectModules(modulesDir: string, roots: readonly string[] = ROOT_MODULES): Promise<GuestModule[]> {
  const index = new Map<string, string>();
  try {
    await indexModules(join(modulesDir, 'kernel'), index);
  } catch (e) {
    throw new ModuleResolveError(`cannot list the kernel modules under ${modulesDir}/kernel: ${(e as Error).message}`, { cause: e });
  }
  let builtinText = '';
  try {
    builtinText = await readFile(join(modulesDir, 'modules.builtin'), 'utf8');
  } catch {
    // no modules.builtin: treat nothing as built in
  }
  const builtin = new Set(builtinText.split('\n').filter((l) => l !== '').map(moduleName));
  const data = new Map<string, Uint8Array>();
  for (const name of roots.map(moduleName)) {
    const path = index.get(name);
    if (path !== undefined) data.set(name, await readModule(path));
  }
  // resolveLoadOrder is synchronous, so read every module it may ask about first: a Map's
  // iteration also visits entries added during it, so this walks the dependency closure.
  for (const [, ko] of data) {
    for (const dep of moduleDepends(ko)) {
      const path = index.get(dep);
      if (!data.has(dep) && path !== undefined) data.set(dep, await readModule(path));
    }
  }
  const order = resolveLoadOrder(roots, (name) => {
    const ko = data.get(name);
    return ko === undefined ? undefined : moduleDepends(ko);
  }, builtin);
  return order.map((name) => {
    const ko = data.get(name);
    if (ko === undefined) throw new ModuleResolveError(`kernel module ${name} was resolved but not read`); // unreachable
    return { name, data: ko };
  });
}
