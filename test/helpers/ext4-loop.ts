// An ext4 file system on a loop device over a file, mounted: where a test or benchmark needs
// O_DIRECT and the temp directory cannot give it (the test bed's tmpfs on Linux 6.1), or needs a
// disk with another sector size. Needs root (losetup, mount).
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants as fsConstants, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_TOOL_ENV } from './host-env.js';

/** losetup could not give a loop device (none in this container, no loop module, not root). */
export class LoopDeviceUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopDeviceUnavailable';
  }
}

export interface Ext4Loop {
  /** Where the file system is mounted. */
  path: string;
  /** Unmounts it and detaches the loop device (the backing file stays in `dir`). */
  unmount(): void;
}

const env = HOST_TOOL_ENV;
/** Each host tool gets this long (mkfs of a few hundred MiB in the test bed takes seconds). */
const timeout = 120_000;

/**
 * Makes `dir`/ext4.img of `mib` MiB, attaches it to a loop device (with `sectorSize`-byte logical
 * sectors, default 512), makes ext4 on it and mounts it at `dir`/ext4.
 * Throws LoopDeviceUnavailable when losetup fails, and whatever else fails as it is.
 */
export function mountExt4Loop(dir: string, mib: number, sectorSize = 512): Ext4Loop {
  const image = join(dir, 'ext4.img');
  const mnt = join(dir, 'ext4');
  writeFileSync(image, '');
  truncateSync(image, mib << 20);
  const loop = spawnSync('losetup', ['--find', '--show', '--sector-size', String(sectorSize), image], { encoding: 'utf8', env, timeout });
  if (loop.status !== 0) throw new LoopDeviceUnavailable(`losetup: ${(loop.stderr || loop.error?.message || `exit ${loop.status}`).trim()}`);
  const dev = loop.stdout.trim();
  const detach = (): void => void spawnSync('losetup', ['-d', dev], { env, timeout });
  try {
    execFileSync('mkfs.ext4', ['-q', '-F', dev], { env, timeout });
    mkdirSync(mnt);
    execFileSync('mount', [dev, mnt], { env, timeout });
  } catch (e) {
    detach();
    throw e;
  }
  return {
    path: mnt,
    unmount: () => {
      execFileSync('umount', [mnt], { env, timeout });
      detach();
    },
  };
}

/** Whether the file system holding `path` (an existing file) takes O_DIRECT (tmpfs before Linux 6.6 does not). */
export function supportsODirect(path: string): boolean {
  try {
    closeSync(openSync(path, fsConstants.O_RDONLY | fsConstants.O_DIRECT));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EINVAL') return false;
    throw e;
  }
}

/**
 * A fresh directory whose file system takes O_DIRECT: one in the temp directory where it does
 * (ext4), else (the test bed's tmpfs, Linux 6.1) an ext4 file system of `mib` MiB on a loop
 * device made there (needs root). cleanup() unmounts it where it mounted one, and removes it.
 */
export function directDir(mib = 64): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-direct-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  const probe = join(dir, 'probe');
  writeFileSync(probe, '');
  if (supportsODirect(probe)) return { dir, cleanup: remove };
  const fs = mountExt4Loop(dir, mib);
  return {
    dir: fs.path,
    cleanup: () => {
      fs.unmount();
      remove();
    },
  };
}
