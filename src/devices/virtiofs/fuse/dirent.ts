// Packing of READDIR and READDIRPLUS reply bodies: back-to-back struct fuse_dirent (or struct
// fuse_direntplus = fuse_entry_out + fuse_dirent) records, each followed by its name and zero
// padding to 8 bytes (fuse.h FUSE_DIRENT_ALIGN). The kernel's buffer is the request's
// fuse_read_in.size; it parses whole records only and fails the whole reply with EIO on a name
// that is empty, longer than FUSE_NAME_MAX or contains '/' (fs/fuse/readdir.c parse_dirfile), so
// the packer refuses such names and never starts a record it cannot finish.

import { FUSE_NAME_MAX } from './constants.js';
import { FuseEncodeError } from './errors.js';
import { writeStruct } from './layout.js';
import { FUSE_DIRENT, FUSE_DIRENTPLUS, type FuseEntryOut } from './structs.js';

/** One READDIR entry. `off` is the cookie the kernel sends back as fuse_read_in.offset to continue after it. */
export interface Dirent {
  readonly ino: bigint;
  readonly off: bigint;
  /** DT_* type: (st_mode & S_IFMT) >> 12. */
  readonly type: number;
  readonly name: Uint8Array;
}

/** One READDIRPLUS entry: the dirent and the LOOKUP reply for it (the kernel takes a lookup count). */
export interface DirentPlus extends Dirent {
  readonly entry: FuseEntryOut;
}

const SLASH = 0x2f;

/** FUSE_DIRENT_ALIGN: records are padded to 8 bytes. */
function align8(n: number): number {
  return (n + 7) & ~7;
}

/** FUSE_DIRENT_SIZE: the bytes a fuse_dirent record with a name of `nameLength` bytes takes. */
export function direntSize(nameLength: number): number {
  return align8(FUSE_DIRENT.size + nameLength);
}

/** FUSE_DIRENTPLUS_SIZE: the bytes a fuse_direntplus record with a name of `nameLength` bytes takes. */
export function direntplusSize(nameLength: number): number {
  return align8(FUSE_DIRENTPLUS.size + nameLength);
}

/** The DT_* type of a dirent from an st_mode (S_IFMT bits shifted down, as the kernel's IFTODT). */
export function direntType(mode: number): number {
  return (mode >>> 12) & 0xf;
}

type WriteRecord<E> = (into: Uint8Array, at: number, entry: E) => void;

/**
 * Fills `into` with records up to a limit; add() says whether the entry fit. A server stops at
 * the first false and replies with body(): the kernel asks again from the last `off` it saw.
 * A false on the first entry means the buffer cannot hold even it (an empty body would tell the
 * kernel the directory has ended).
 */
export class DirentPacker<E extends Dirent> {
  private used = 0;
  private entries = 0;
  /** The most bytes the body may take: min(maxSize, into.byteLength). */
  readonly limit: number;

  private constructor(
    private readonly into: Uint8Array,
    maxSize: number,
    private readonly fixedSize: number,
    private readonly writeRecord: WriteRecord<E>,
  ) {
    if (!Number.isInteger(maxSize) || maxSize < 0) throw new FuseEncodeError('out-of-range', `dirent buffer size ${maxSize} is not a byte count`);
    this.limit = Math.min(maxSize, into.byteLength);
  }

  /** A READDIR packer; `maxSize` is the request's fuse_read_in.size. */
  static readdir(into: Uint8Array, maxSize: number = into.byteLength): DirentPacker<Dirent> {
    return new DirentPacker<Dirent>(into, maxSize, FUSE_DIRENT.size, (buf, at, e) => {
      writeStruct(FUSE_DIRENT, buf, at, { ino: e.ino, off: e.off, namelen: e.name.byteLength, type: e.type });
    });
  }

  /** A READDIRPLUS packer; `maxSize` is the request's fuse_read_in.size. */
  static readdirplus(into: Uint8Array, maxSize: number = into.byteLength): DirentPacker<DirentPlus> {
    return new DirentPacker<DirentPlus>(into, maxSize, FUSE_DIRENTPLUS.size, (buf, at, e) => {
      const dirent = { ino: e.ino, off: e.off, namelen: e.name.byteLength, type: e.type };
      writeStruct(FUSE_DIRENTPLUS, buf, at, { entryOut: e.entry, dirent });
    });
  }

  /** Bytes packed so far (the reply body's length). */
  get size(): number {
    return this.used;
  }

  /** Entries packed so far. */
  get count(): number {
    return this.entries;
  }

  /** The packed records: the reply body (a view of the buffer given). */
  body(): Uint8Array {
    return this.into.subarray(0, this.used);
  }

  /** Appends `entry` when its whole record fits; returns false (writing nothing) when it does not. */
  add(entry: E): boolean {
    const name = entry.name;
    if (name.byteLength === 0 || name.byteLength > FUSE_NAME_MAX || name.includes(SLASH)) {
      throw new FuseEncodeError('bad-name', `dirent name of ${name.byteLength} bytes: the kernel takes 1..${FUSE_NAME_MAX} bytes without '/'`);
    }
    const record = align8(this.fixedSize + name.byteLength);
    if (this.used + record > this.limit) return false;
    const at = this.used;
    this.writeRecord(this.into, at, entry);
    this.into.set(name, at + this.fixedSize);
    this.into.fill(0, at + this.fixedSize + name.byteLength, at + record);
    this.used += record;
    this.entries++;
    return true;
  }
}
