// FUSE file handles (fuse_open_out.fh): one fd opened for I/O per OPEN, OPENDIR or CREATE. An op
// that awaits I/O on a handle holds it (acquire/done), so a RELEASE or a reset() arriving while a
// READ is on the threadpool closes the fd only after the READ is done: the fd number can never be
// reused under an I/O still in flight. Handles are never reused within a server's life; an
// unknown or released fh, or a file fh given to a directory op (and back), answers EBADF.
import { FdHandle } from '../../../vmm/confined-fs.js';
import { Errno, FsError } from './errors.js';

export interface OpenHandle {
  readonly fh: bigint;
  readonly fd: number;
  readonly nodeid: bigint;
  readonly dir: boolean;
}

interface Slot extends OpenHandle {
  readonly owner: FdHandle;
  users: number;
  released: boolean;
}

export class HandleTable {
  private readonly slots = new Map<bigint, Slot>();
  private next = 1n;
  private closing = 0;

  /** Open handles (released ones still in use are not counted). */
  get size(): number {
    return this.slots.size;
  }

  /** Handles released but still busy with I/O. */
  get draining(): number {
    return this.closing;
  }

  /** Takes ownership of `fd` and returns its fh. */
  open(fd: number, nodeid: bigint, dir: boolean): bigint {
    const fh = this.next++;
    this.slots.set(fh, { fh, fd, nodeid, dir, owner: new FdHandle(fd), users: 0, released: false });
    return fh;
  }

  /** The handle `fh`, held until done() (at most once per acquire). */
  acquire(fh: bigint, dir: boolean): OpenHandle {
    const slot = this.slots.get(fh);
    if (!slot || slot.dir !== dir) throw new FsError(Errno.EBADF, `${dir ? 'directory' : 'file'} handle ${fh} is not open`);
    slot.users++;
    return slot;
  }

  /** Ends a use begun by acquire(); closes a released handle once nothing uses it. */
  done(h: OpenHandle): void {
    const slot = h as Slot;
    slot.users--;
    if (slot.released && slot.users === 0) this.close(slot);
  }

  /** RELEASE / RELEASEDIR: forgets `fh`; its fd closes now or when the last use ends. */
  release(fh: bigint, dir: boolean): void {
    const slot = this.slots.get(fh);
    if (!slot || slot.dir !== dir) throw new FsError(Errno.EBADF, `${dir ? 'directory' : 'file'} handle ${fh} is not open`);
    this.retire(slot);
  }

  private retire(slot: Slot): void {
    this.slots.delete(slot.fh);
    slot.released = true;
    if (slot.users === 0) slot.owner.dispose();
    else this.closing++;
  }

  private close(slot: Slot): void {
    slot.owner.dispose();
    this.closing--;
  }

  /** Releases every handle. */
  clear(): void {
    for (const slot of [...this.slots.values()]) this.retire(slot);
  }
}
