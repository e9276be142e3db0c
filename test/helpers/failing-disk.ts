// A disk whose writeback fails: ext4 on a loop device whose backing file lives on a tmpfs smaller
// than the ext4. Buffered writes to a file on that ext4 succeed (page cache, delayed allocation);
// writing them back runs the tmpfs out of space, so fdatasync fails (ENOSPC or EIO). Needs root.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_TOOL_ENV } from './host-env.js';

/** mkfs.ext4, losetup and mount live in /usr/sbin, which a non-login PATH may lack. */
const env = HOST_TOOL_ENV;
/** Every host command gets this long; a hung mount or losetup then fails the test instead of hanging it. */
const HOST_TIMEOUT_MS = 60_000;

/** Runs a host command; ok is false on a non-zero exit, a signal or a timeout, and out says why. */
function tryHost(cmd: string, args: readonly string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: HOST_TIMEOUT_MS });
  if (r.error) return { ok: false, out: `${cmd}: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, out: `${cmd} ${args.join(' ')}: ${r.signal ?? `exit ${r.status}`}: ${`${r.stderr}${r.stdout}`.trim()}` };
  return { ok: true, out: r.stdout.trim() };
}

function host(cmd: string, args: readonly string[]): string {
  const r = tryHost(cmd, args);
  if (!r.ok) throw new Error(r.out);
  return r.out;
}

/**
 * Why no failing disk can be made here (not root, a tool missing, no free loop device, mount
 * refused), or undefined when it can. Synchronous, for deciding at test registration.
 */
export function failingDiskUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (needs mount and losetup)';
  for (const [cmd, args] of [['losetup', ['--version']], ['mkfs.ext4', ['-V']], ['mount', ['--version']]] as const) {
    const r = tryHost(cmd, args);
    if (!r.ok) return `no usable ${cmd}: ${r.out}`;
  }
  const loop = tryHost('losetup', ['--find']);
  if (!loop.ok) return `no free loop device: ${loop.out}`;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-mount-probe-'));
  try {
    const m = tryHost('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    if (!m.ok) return `cannot mount a tmpfs: ${m.out}`;
    host('umount', [dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return undefined;
}

export interface FailingDiskOptions {
  /** Size of the tmpfs holding the loop device's backing file. Default 16. */
  tmpfsMiB?: number;
  /** Size of the ext4 file system (sparse, so larger than the tmpfs). Default 64. */
  ext4MiB?: number;
  /** Size of the sparse image file made on it. Default 48. */
  imageMiB?: number;
}

export interface FailingDisk {
  /** A sparse image file on the ext4 file system. */
  readonly image: string;
  /** Where the tmpfs is mounted (statfs shows how much room writeback has left). */
  readonly backing: string;
  /** Unmounts the ext4, detaches the loop device, unmounts the tmpfs and removes the directory.
   * Tries every step and rejects afterwards if one failed. Close files on the disk first. */
  dispose(): Promise<void>;
}

/** How long an unmount waits for a busy file system (a flush still finishing) before going lazy. */
const BUSY_WAIT_MS = 10_000;

/**
 * Unmounts `path`, again while it is busy, for up to BUSY_WAIT_MS; then detaches it lazily (so
 * that nothing stays mounted) and throws, since something still held it.
 */
async function unmount(path: string): Promise<void> {
  const deadline = Date.now() + BUSY_WAIT_MS;
  for (;;) {
    const r = tryHost('umount', [path]);
    if (r.ok) return;
    if (Date.now() > deadline) {
      const lazy = tryHost('umount', ['--lazy', path]);
      throw new Error(`${r.out}${lazy.ok ? ' (unmounted lazily)' : `; ${lazy.out}`}`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

/**
 * Makes the disk. mkfs writes all its metadata now (no lazy init), so that later the only writes
 * that need new room on the tmpfs are those of file data. Throws when a step fails.
 */
export async function makeFailingDisk(options: FailingDiskOptions = {}): Promise<FailingDisk> {
  const { tmpfsMiB = 16, ext4MiB = 64, imageMiB = 48 } = options;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-failing-disk-'));
  const backing = join(dir, 'backing');
  const mnt = join(dir, 'ext4');
  let tmpfsMounted = false;
  let loopDevice: string | undefined;
  let ext4Mounted = false;
  const dispose = async (): Promise<void> => {
    const failures: string[] = [];
    const step = async (what: string, run: () => unknown): Promise<void> => {
      try {
        await run();
      } catch (e) {
        failures.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    };
    if (ext4Mounted) await step('umount ext4', () => unmount(mnt));
    ext4Mounted = false;
    // On a device still in use this only sets autoclear: it goes when the lazy unmount lets go.
    if (loopDevice !== undefined) await step(`losetup -d ${loopDevice}`, () => host('losetup', ['-d', loopDevice as string]));
    loopDevice = undefined;
    if (tmpfsMounted) await step('umount tmpfs', () => unmount(backing));
    tmpfsMounted = false;
    // After the unmounts (lazy ones included) nothing is mounted in dir any more.
    await step('remove', () => rmSync(dir, { recursive: true, force: true }));
    if (failures.length) throw new Error(`failing disk teardown in ${dir}: ${failures.join('; ')}`);
  };
  try {
    mkdirSync(backing);
    mkdirSync(mnt);
    host('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsMiB}m`, 'tmpfs', backing]);
    tmpfsMounted = true;
    const file = join(backing, 'ext4.img');
    writeFileSync(file, '');
    truncateSync(file, ext4MiB << 20);
    loopDevice = host('losetup', ['--find', '--show', file]);
    host('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', loopDevice]);
    host('mount', ['-o', 'noinit_itable', loopDevice, mnt]);
    ext4Mounted = true;
    const image = join(mnt, 'disk.img');
    writeFileSync(image, '');
    truncateSync(image, imageMiB << 20);
    return { image, backing, dispose };
  } catch (e) {
    try {
      await dispose();
    } catch (teardown) {
      throw new Error(`${e instanceof Error ? e.message : String(e)} (and ${teardown instanceof Error ? teardown.message : String(teardown)})`, { cause: e });
    }
    throw e;
  }
}
