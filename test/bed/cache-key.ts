// Pure: where the test bed's artefacts are cached and under which key. The key changes when
// the kernel package, the guest /init or the way the artefacts are built changes, and only then.
import { createHash } from 'node:crypto';
import { isAbsolute, join } from 'node:path';

/** Bump when the builder changes what it puts into the cache (layout, initramfs contents). */
export const BUILD_FORMAT = 1;

export interface CacheKeyInputs {
  kernelPackage: string; // linux-image-6.1.0-56-amd64
  kernelVersion: string; // 6.1.192-2 (Debian version; may carry an epoch "1:")
  initScript: Uint8Array; // the bytes of guest-init.sh
  modules: readonly string[]; // the root modules asked for
}

/** ${XDG_CACHE_HOME:-~/.cache}/tsvmm/testbed (XDG says to ignore a relative XDG_CACHE_HOME). */
export function cacheRoot(env: NodeJS.ProcessEnv, home: string): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg !== undefined && xdg !== '' && isAbsolute(xdg) ? xdg : join(home, '.cache'), 'tsvmm', 'testbed');
}

export function computeCacheKey(k: CacheKeyInputs): string {
  const hash = createHash('sha256')
    .update(`format=${BUILD_FORMAT}\0modules=${k.modules.join(',')}\0init=`)
    .update(k.initScript)
    .digest('hex')
    .slice(0, 12);
  // File-name safe and readable: linux-image-6.1.0-56-amd64_6.1.192-2-<hash>
  const version = k.kernelVersion.replace(/[^A-Za-z0-9.+~-]/g, '_');
  return `${k.kernelPackage}_${version}-${hash}`;
}
