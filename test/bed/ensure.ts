// ensureTestBed(): makes the test bed's host packages, kernel and initramfs ready, building them
// once per (kernel package version, guest-init.sh, builder format) and caching them under
// ${XDG_CACHE_HOME:-~/.cache}/tsvmm/testbed/<key>/. A cache hit costs two apt-cache calls.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot, computeCacheKey } from './cache-key.js';
import { writeCpio } from './cpio.js';
import { isStaticElf } from './elf.js';
import { KernelPackageError, TestBedError } from './errors.js';
import { initramfsEntries } from './initramfs.js';
import { resolveKernelPackage, unpackKernelPackage, type KernelPackage } from './kernel.js';
import { progress } from './log.js';
import { collectModules, ROOT_MODULES } from './modules.js';
import { ensureHostPackages } from './packages.js';
import { extractVmlinux, hasPvhEntry } from './vmlinux.js';

export interface TestBed {
  key: string;
  dir: string;
  /** What QEMU's -kernel gets: the ELF vmlinux (PVH entry) or, failing that, the bzImage. */
  kernel: string;
  initramfs: string;
  kernelPackage: KernelPackage;
  /** Modules the guest loads, in load order. */
  modules: string[];
}

interface Manifest {
  key: string;
  kernelPackage: KernelPackage;
  kernelFile: string;
  modules: string[];
  builtAt: string;
}

const MANIFEST = 'manifest.json';
/** Debian's busybox-static puts its static binary here. */
const BUSYBOX = '/bin/busybox';

/** guest-init.sh sits in test/bed/ of the source tree; this module runs from dist/test/bed/. */
export function findGuestInit(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'guest-init.sh'), join(here, '..', '..', '..', 'test', 'bed', 'guest-init.sh')];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new TestBedError(`guest-init.sh not found (looked in ${candidates.join(', ')}); is the checkout complete?`);
  return found;
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
    return existsSync(join(dir, m.kernelFile)) && existsSync(join(dir, 'initramfs.cpio')) ? m : undefined;
  } catch {
    return undefined;
  }
}

function toTestBed(dir: string, m: Manifest): TestBed {
  return { key: m.key, dir, kernel: join(dir, m.kernelFile), initramfs: join(dir, 'initramfs.cpio'), kernelPackage: m.kernelPackage, modules: m.modules };
}

async function build(root: string, key: string, pkg: KernelPackage, init: Uint8Array): Promise<Manifest> {
  const work = await mkdtemp(join(root, '.build-'));
  try {
    const t0 = Date.now();
    progress(`building test bed ${key} (once per kernel package and guest-init.sh) ...`);
    const unpacked = await unpackKernelPackage(pkg, work);
    const out = join(work, 'out');
    await mkdir(out);
    const bzImage = join(unpacked, 'boot', `vmlinuz-${pkg.release}`);
    if (!existsSync(bzImage)) throw new KernelPackageError(`${pkg.name} ${pkg.version} has no boot/vmlinuz-${pkg.release}; is it a kernel image package?`);
    const config = await readFile(join(unpacked, 'boot', `config-${pkg.release}`), 'utf8').catch(() => '');
    let kernelFile = 'vmlinux';
    if (hasPvhEntry(config)) await extractVmlinux(bzImage, join(out, kernelFile));
    else {
      progress(`${pkg.name} has no PVH entry (CONFIG_PVH); booting its bzImage (slower: decompresses in the guest)`);
      kernelFile = 'bzImage';
      await copyFile(bzImage, join(out, kernelFile));
    }
    progress('collecting kernel modules and writing the initramfs ...');
    const modules = await collectModules(join(unpacked, 'lib', 'modules', pkg.release));
    const busybox = await readFile(BUSYBOX);
    if (!isStaticElf(busybox)) {
      throw new TestBedError(`${BUSYBOX} is not a statically linked ELF64 executable; the initramfs has no libc: apt-get install -y busybox-static`);
    }
    await writeFile(join(out, 'initramfs.cpio'), writeCpio(initramfsEntries({ busybox, init, modules })));
    const manifest: Manifest = { key, kernelPackage: pkg, kernelFile, modules: modules.map((m) => m.name), builtAt: new Date().toISOString() };
    await writeFile(join(out, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    try {
      await rename(out, join(root, key)); // atomic: a reader never sees a half-built entry
    } catch (e) {
      // Another process finished the same key first; its entry is as good as ours.
      if (await readManifest(join(root, key))) return manifest;
      throw e;
    }
    progress(`test bed built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${join(root, key)}`);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Entries kept besides the current one: two checkouts at different commits do not thrash. */
const KEEP_OTHER_ENTRIES = 1;
/** A .build-* directory this old belongs to a builder that died. */
const STALE_BUILD_MS = 60 * 60 * 1000;

/** Bounds the cache (~70 MB an entry): drops all but the newest other entries and dead builds. */
async function prune(root: string, keep: string): Promise<void> {
  const others: Array<{ path: string; mtimeMs: number }> = [];
  for (const name of await readdir(root)) {
    const path = join(root, name);
    const st = await stat(path).catch(() => undefined);
    if (name === keep || st === undefined || !st.isDirectory()) continue;
    if (name.startsWith('.build-')) {
      if (Date.now() - st.mtimeMs > STALE_BUILD_MS) await rm(path, { recursive: true, force: true });
    } else if (existsSync(join(path, MANIFEST))) others.push({ path, mtimeMs: st.mtimeMs });
  }
  others.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const o of others.slice(KEEP_OTHER_ENTRIES)) await rm(o.path, { recursive: true, force: true });
}

let pending: Promise<TestBed> | undefined;

/** Installs/obtains/builds what the test bed needs (see file comment). Memoized per process. */
export function ensureTestBed(): Promise<TestBed> {
  pending ??= (async () => {
    await ensureHostPackages();
    const pkg = await resolveKernelPackage();
    const init = await readFile(findGuestInit());
    const key = computeCacheKey({ kernelPackage: pkg.name, kernelVersion: pkg.version, initScript: init, modules: ROOT_MODULES });
    const root = cacheRoot(process.env, homedir());
    const dir = join(root, key);
    const cached = await readManifest(dir);
    if (cached !== undefined) return toTestBed(dir, cached);
    await mkdir(root, { recursive: true });
    await rm(dir, { recursive: true, force: true }); // an incomplete entry (no manifest) is rebuilt
    const bed = toTestBed(dir, await build(root, key, pkg, init));
    await prune(root, key);
    return bed;
  })();
  pending.catch(() => {
    pending = undefined; // a failed attempt may be retried
  });
  return pending;
}
