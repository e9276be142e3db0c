// Pure writer of the "newc" cpio format the kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst). Written here so the host
// needs no `cpio` package; entries are emitted in the order given, with mtime 0 so the
// same inputs give the same bytes.

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const hex8 = (n: number): string => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field ${n} does not fit 32 bits`);
  return n.toString(16).padStart(8, '0');
};
const pad4 = (n: number): number => (4 - (n % 4)) % 4;

function header(ino: number, mode: number, nlink: number, size: number, rdevMajor: number, rdevMinor: number, nameSize: number): string {
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  return '070701' + [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, nameSize, 0].map(hex8).join('');
}

export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const encoder = new TextEncoder();
  const push = (ino: number, mode: number, nlink: number, name: string, data: Uint8Array, rdev: readonly [number, number] = [0, 0]): void => {
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    const head = Buffer.from(header(ino, mode, nlink, data.length, rdev[0], rdev[1], nameBytes.length), 'latin1');
    parts.push(head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length)), Buffer.from(data), Buffer.alloc(pad4(data.length)));
  };
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (name === '' || name.split('/').includes('..')) throw new RangeError(`cpio entry path ${JSON.stringify(e.path)} is not a relative path inside the archive`);
    switch (e.kind) {
      case 'dir':
        push(ino++, S_IFDIR | (e.mode ?? 0o755), 2, name, new Uint8Array());
        break;
      case 'file':
        push(ino++, S_IFREG | (e.mode ?? 0o644), 1, name, e.data);
        break;
      case 'symlink':
        push(ino++, S_IFLNK | 0o777, 1, name, encoder.encode(e.target));
        break;
      case 'chardev':
        push(ino++, S_IFCHR | (e.mode ?? 0o600), 1, name, new Uint8Array(), [e.major, e.minor]);
        break;
    }
  }
  push(0, 0, 1, 'TRAILER!!!', new Uint8Array());
  return Buffer.concat(parts);
}
