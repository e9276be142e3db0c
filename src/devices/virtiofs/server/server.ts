// The confined FUSE passthrough server behind virtio-fs (virtio 1.2 §5.11): it serves one host
// directory to a Linux guest, in-process, touching the host only through vmm/confined-fs.ts (every
// call relative to an O_PATH handle the server holds; names are single components; nothing
// resolves above the share). One request in, one reply out (fuse-handler.ts); ops live in
// *-ops.ts by area, node IDs in inode-table.ts, file handles in handle-table.ts.
//
// Credentials. The server acts as the VMM's own uid/gid; it never switches identity per request.
// The guest kernel checks permissions itself (virtio_fs mounts with default_permissions), so the
// server trusts the guest kernel's checks for what happens inside the share and guards what the
// HOST would see:
// - A privileged VMM (uid 0, Kata's case) gives each inode it creates to the request's uid and gid
//   (fchownat on the new handle; the gid stays the parent's in a set-group-ID directory), so the
//   guest sees its own ownership; chown in SETATTR is carried out as asked.
// - An unprivileged VMM leaves new inodes as its own and passes on the EPERM the host kernel gives
//   a chown it may not do.
// - A caller other than guest root never leaves S_ISUID on a file whose host owner is not that
//   caller, nor S_ISGID on a non-directory whose host group is not the caller's (CREATE, MKNOD,
//   MKDIR, SETATTR mode): the guest can never plant a program that runs on the host as someone
//   else. The server does not offer FUSE_HANDLE_KILLPRIV(_V2), so the guest kernel itself clears
//   set-ID bits after writes and truncates (file_remove_privs() turns into a SETATTR mode).
// - Extended attributes outside user.* cannot be set (xattr-ops.ts).
//
// Decisions, with virtiofsd's behaviour where it has one:
// - Unknown or forgotten node IDs and file handles: EBADF (virtiofsd's answer).
// - Inodes held are bounded (inode-table.ts): a new one beyond the bound gets ENFILE.
// - ACCESS: ENOSYS, so the guest kernel checks access itself (virtiofsd without its own checks).
// - POSIX locks: FUSE_POSIX_LOCKS is not offered, so the guest kernel keeps locks locally (as
//   virtiofsd by default); GETLK/SETLK/SETLKW answer ENOSYS should a guest send them anyway.
// - SYNCFS, TMPFILE, BMAP, IOCTL, POLL and unknown opcodes: ENOSYS (the guest stops sending SYNCFS).
// - SETUPMAPPING/REMOVEMAPPING: ENOSYS while DAX is off (no FUSE_MAP_ALIGNMENT offered).
// - Requests before INIT (and after DESTROY) answer EIO, a second INIT EIO (libfuse's rules).
// - A malformed request whose header was readable gets EINVAL with its unique; one without a
//   readable header is dropped (handle() resolves 0) and counted.
// - A reply larger than the reply descriptors (the guest sized them, so only a hostile guest does
//   this) is not written: handle() resolves 0 and counts it.
import * as cfs from '../../../vmm/confined-fs.js';
import type { DeviceMetrics } from '../../virtio/device.js';
import type { FuseChain, FuseRequestHandler } from '../fuse-handler.js';
import {
  decodeRequest, FuseDecodeError, FUSE_ASYNC_READ, FUSE_BATCH_FORGET, FUSE_BIG_WRITES, FUSE_DO_READDIRPLUS,
  FUSE_FORGET, FUSE_INIT_EXT, FUSE_INIT_OUT, FUSE_INTERRUPT, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION,
  FUSE_MAX_PAGES, FUSE_MIN_MINOR_VERSION, FUSE_PARALLEL_DIROPS, FUSE_READDIRPLUS_AUTO,
  type FuseRequest, type FuseRequestBody,
} from '../fuse/index.js';
import * as attrOps from './attr-ops.js';
import { OK, struct, type Body, type OpContext, type Reply } from './context.js';
import * as dirOps from './dir-ops.js';
import * as entryOps from './entry-ops.js';
import { Errno, errnoOf } from './errors.js';
import * as fileOps from './file-ops.js';
import { HandleTable } from './handle-table.js';
import { defaultMaxInodes, InodeTable } from './inode-table.js';
import { ServerMetrics } from './metrics.js';
import { ReplyTooSmall, ReplyViews } from './reply-views.js';
import * as xattrOps from './xattr-ops.js';

export interface PassthroughServerOptions {
  /** The host directory to serve (the one absolute path the server opens). */
  readonly sharedDir: string;
  /** Every mutating op answers EROFS. */
  readonly readOnly?: boolean;
  /** DAX mappings; only false for now. */
  readonly dax?: false;
  /** The most inodes held besides the root (default: from RLIMIT_NOFILE, see defaultMaxInodes). */
  readonly maxInodes?: number;
  /** Give new inodes to the caller (chown); default: the VMM runs as root. */
  readonly privileged?: boolean;
  /** Entry and attribute validity in seconds (virtiofsd's cache=auto: 1). */
  readonly timeoutSec?: number;
  /** Told about server bugs (exceptions answered EIO). */
  readonly log?: (message: string) => void;
}

const EPROTO = 71;
/** fuse_init_out.max_pages: 256 pages, so WRITE and READ move up to 1 MiB per request. */
export const MAX_PAGES = 256;
export const MAX_WRITE = MAX_PAGES * 4096;
/** INIT flags the server accepts when the guest offers them. */
export const OFFERED_INIT_FLAGS =
  FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_MAX_PAGES | FUSE_INIT_EXT;

/** Requests the guest expects no reply to. */
const NO_REPLY = new Set([FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT]);

export class PassthroughServer implements FuseRequestHandler {
  private readonly inodes: InodeTable;
  private readonly handles = new HandleTable();
  private readonly stats = new ServerMetrics();
  private readonly readOnly: boolean;
  private readonly privileged: boolean;
  private readonly timeoutSec: number;
  private readonly log: (message: string) => void;
  private initialized = false;
  private disposed = false;
  /** The minor version agreed in INIT (0 before). */
  minor = 0;

  constructor(options: PassthroughServerOptions) {
    this.readOnly = options.readOnly ?? false;
    this.privileged = options.privileged ?? process.getuid?.() === 0;
    this.timeoutSec = options.timeoutSec ?? 1;
    this.log = options.log ?? (() => undefined);
    const rootFd = cfs.openRoot(options.sharedDir);
    try {
      this.inodes = new InodeTable(rootFd, cfs.statAt(rootFd), options.maxInodes ?? defaultMaxInodes());
    } catch (e) {
      new cfs.FdHandle(rootFd).dispose();
      throw e;
    }
  }

  async handle(chain: FuseChain, _queue: number): Promise<number> {
    const out = new ReplyViews(chain.reply);
    if (this.disposed) {
      this.stats.dropped++;
      return 0;
    }
    let request: FuseRequest;
    try {
      request = decodeRequest(chain.request);
    } catch (e) {
      this.stats.malformed++;
      if (e instanceof FuseDecodeError && e.unique !== undefined && e.opcode !== undefined && !NO_REPLY.has(e.opcode)) {
        return this.send(out, e.unique, { errno: Errno.EINVAL });
      }
      this.stats.dropped++;
      return 0;
    }
    const { header } = request;
    this.stats.request(header.opcode);
    let reply: Reply;
    try {
      reply = await this.dispatch({ inodes: this.inodes, handles: this.handles, readOnly: this.readOnly, privileged: this.privileged, timeoutSec: this.timeoutSec, io: this.stats, out, header }, request.body);
    } catch (e) {
      if (e instanceof ReplyTooSmall) return this.tooSmall();
      const { errno, bug } = errnoOf(e);
      if (bug) {
        this.stats.internalErrors++;
        this.log(`virtio-fs: ${String(e)} serving opcode ${header.opcode}`);
      }
      reply = { errno };
    }
    return this.send(out, header.unique, reply);
  }

  private tooSmall(): number {
    this.stats.replyTooSmall++;
    return 0;
  }

  private send(out: ReplyViews, unique: bigint, reply: Reply): number {
    if (reply === 'none') return 0;
    try {
      if ('errno' in reply) {
        this.stats.error(reply.errno);
        return out.error(unique, reply.errno);
      }
      if ('filled' in reply) return out.header(unique, reply.filled);
      return out.reply(unique, reply.body);
    } catch (e) {
      if (e instanceof ReplyTooSmall) return this.tooSmall();
      throw e;
    }
  }

  private dispatch(ctx: OpContext, body: FuseRequestBody): Reply | Promise<Reply> {
    if (body.kind === 'init') return this.init(body);
    if (!this.initialized) return body.kind === 'forget' || body.kind === 'batchForget' || body.kind === 'interrupt' ? 'none' : { errno: Errno.EIO };
    switch (body.kind) {
      case 'destroy':
        this.reset();
        return OK;
      case 'lookup': return entryOps.lookup(ctx, body);
      case 'forget': return entryOps.forget(ctx, body);
      case 'batchForget': return entryOps.batchForget(ctx, body);
      case 'mknod': return entryOps.mknod(ctx, body);
      case 'mkdir': return entryOps.mkdir(ctx, body);
      case 'symlink': return entryOps.symlink(ctx, body);
      case 'link': return entryOps.link(ctx, body);
      case 'unlink': return entryOps.unlink(ctx, body);
      case 'rmdir': return entryOps.rmdir(ctx, body);
      case 'rename':
      case 'rename2': return entryOps.rename(ctx, body);
      case 'readlink': return entryOps.readlink(ctx);
      case 'getattr': return attrOps.getattr(ctx);
      case 'setattr': return attrOps.setattr(ctx, body);
      case 'statfs': return attrOps.statfs(ctx);
      case 'access': return attrOps.access();
      case 'open': return fileOps.open(ctx, body);
      case 'create': return fileOps.create(ctx, body);
      case 'read': return fileOps.read(ctx, body);
      case 'write': return fileOps.write(ctx, body);
      case 'flush': return fileOps.flush(ctx, body);
      case 'release':
      case 'releasedir': return fileOps.release(ctx, body);
      case 'fsync':
      case 'fsyncdir': return fileOps.fsync(ctx, body);
      case 'fallocate': return fileOps.fallocate(ctx, body);
      case 'lseek': return fileOps.lseek(ctx, body);
      case 'copyFileRange': return fileOps.copyFileRange(ctx, body);
      case 'opendir': return dirOps.opendir(ctx);
      case 'readdir': return dirOps.readdir(ctx, body);
      case 'readdirplus': return dirOps.readdirplus(ctx, body);
      case 'getxattr': return xattrOps.getxattr(ctx, body);
      case 'listxattr': return xattrOps.listxattr(ctx, body);
      case 'setxattr': return xattrOps.setxattr(ctx, body);
      case 'removexattr': return xattrOps.removexattr(ctx, body);
      case 'interrupt':
        // Nothing in flight can be cancelled (each op is one host call); the op's own reply stands.
        return 'none';
      case 'getlk':
      case 'setlk':
      case 'setlkw':
      case 'setupmapping':
      case 'removemapping':
      case 'syncfs':
      case 'tmpfile':
      case 'unknown':
        return { errno: Errno.ENOSYS };
    }
  }

  /**
   * INIT (fuse.h "Version negotiation"): a guest with a newer major gets ours and sends INIT
   * again; an older major, or a minor below 7.31 (the oldest whose structs the codec knows),
   * gets EPROTO. The minor answered is min(guest's, 38).
   */
  private init(b: Body<'init'>): Reply {
    if (this.initialized) return { errno: Errno.EIO };
    const base = { maxReadahead: 0, flags: 0, maxBackground: 0, congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0, mapAlignment: 0, flags2: 0 };
    if (b.major > FUSE_KERNEL_VERSION) return struct(FUSE_INIT_OUT, { ...base, major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION });
    if (b.major < FUSE_KERNEL_VERSION || b.minor < FUSE_MIN_MINOR_VERSION) return { errno: EPROTO };
    this.initialized = true;
    this.minor = Math.min(b.minor, FUSE_KERNEL_MINOR_VERSION);
    return struct(FUSE_INIT_OUT, {
      major: FUSE_KERNEL_VERSION,
      minor: this.minor,
      maxReadahead: b.maxReadahead,
      flags: b.flags & OFFERED_INIT_FLAGS,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: MAX_WRITE,
      timeGran: 1,
      maxPages: MAX_PAGES,
      mapAlignment: 0,
      flags2: 0,
    });
  }

  reset(): void {
    this.handles.clear();
    this.inodes.clear();
    this.initialized = false;
    this.minor = 0;
  }

  metrics(): DeviceMetrics {
    return this.stats.snapshot({ inodes: this.inodes.size, open_handles: this.handles.size, draining_handles: this.handles.draining });
  }

  dispose(): Promise<void> {
    if (!this.disposed) {
      this.disposed = true;
      this.handles.clear();
      this.inodes.dispose();
    }
    return Promise.resolve();
  }
}

