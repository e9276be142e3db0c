// Pure: the job the guest runs. The host writes it as a shell script into a per-run directory
// that the guest reads over the read-only 9p share; nothing about the command travels on the
// kernel command line, so quotes, spaces, $ and newlines in it need no escaping there.
import { dirname, isAbsolute, normalize } from 'node:path';
import { TestBedConfigError } from './errors.js';

/** Directory the guest's tmpfs scratch covers (see guest-init.sh). */
export const SCRATCH_DIR = '/tmp';
const STANDARD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface JobSpec {
  command: string;
  cwd: string;
  /** Added to the job's environment after the defaults (and may override them). */
  env?: Record<string, string>;
  /** process.execPath: its directory goes first on PATH so `node` is the host's node. */
  nodePath: string;
}

/** POSIX single-quoting: the result is one shell word whose value is exactly `s`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function checkNoNul(what: string, value: string): void {
  if (value.includes('\0')) throw new TestBedConfigError(`${what} contains a NUL byte, which no shell or environment can carry; remove it`);
}

/** The environment the job runs with: a clean, predictable one, plus the caller's additions. */
export function jobEnvironment(spec: JobSpec): Array<[string, string]> {
  const env = new Map<string, string>([
    ['PATH', `${dirname(spec.nodePath)}:${STANDARD_PATH}`],
    ['HOME', `${SCRATCH_DIR}/.tsvmm-home`],
    ['TMPDIR', SCRATCH_DIR],
    ['LANG', 'C.UTF-8'],
    ['TSVMM_WHERE', 'testbed'],
  ]);
  for (const [name, value] of Object.entries(spec.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TestBedConfigError(`environment variable name ${JSON.stringify(name)} is not a valid shell name ([A-Za-z_][A-Za-z0-9_]*); rename it`);
    }
    checkNoNul(`environment variable ${name}`, value);
    env.set(name, value);
  }
  return [...env];
}

export function buildJobScript(spec: JobSpec): string {
  if (!isAbsolute(spec.cwd)) throw new TestBedConfigError(`cwd ${JSON.stringify(spec.cwd)} is not an absolute path; pass an absolute host path`);
  checkNoNul('cwd', spec.cwd);
  checkNoNul('command', spec.command);
  const env = jobEnvironment(spec);
  return [
    '# written by tsvmm test/bed/job.ts; run by guest-init.sh inside the host root (chroot)',
    ...env.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    'mkdir -p "$HOME"',
    `cd ${shellQuote(spec.cwd)} || { echo ${shellQuote(`[tsvmm-bed] cannot cd to ${spec.cwd} in the guest`)}; exit 126; }`,
    `exec /bin/sh -c ${shellQuote(spec.command)}`,
    '',
  ].join('\n');
}

/**
 * The guest's /tmp is a fresh tmpfs, so host directories under /tmp that the job needs (its
 * cwd, the node binary's directory) are bound back in: for each, its top directory under
 * /tmp (/tmp/ci-check/sub -> /tmp/ci-check). One per line in the job dir's `binds` file.
 */
export function scratchBinds(paths: readonly string[]): string[] {
  const binds = new Set<string>();
  for (const raw of paths) {
    const p = normalize(raw);
    if (p === SCRATCH_DIR || p === `${SCRATCH_DIR}/`) {
      throw new TestBedConfigError(`${p} is the guest's scratch directory and is not shared from the host; run from a directory below it or elsewhere`);
    }
    if (!p.startsWith(`${SCRATCH_DIR}/`)) continue;
    if (p.includes('\n')) throw new TestBedConfigError(`path ${JSON.stringify(p)} contains a newline; the test bed cannot share it`);
    const top = p.slice(SCRATCH_DIR.length + 1).split('/')[0];
    if (top !== undefined && top !== '') binds.add(`${SCRATCH_DIR}/${top}`);
  }
  return [...binds];
}
