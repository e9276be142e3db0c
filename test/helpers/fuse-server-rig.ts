// A passthrough server over a temporary share, driven the way the virtio-fs device drives it:
// requests built like the kernel's (fuse-requests.ts) go in as driver-readable views, replies come
// back in device-writable views split like Linux's virtio_fs splits them (the out header in its
// own descriptor). Each rig has base/share (served) and base/outside (a secret beside it).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FUSE_ATTR_OUT, FUSE_CREATE_OUT, FUSE_ENTRY_OUT, FUSE_INIT_EXT, FUSE_KERNEL_MINOR_VERSION, FUSE_OPEN_OUT,
  FUSE_OUT_HEADER_SIZE, FUSE_WRITE_OUT, readStruct, type FuseOutHeader, type FuseRequestBody, type Layout,
} from '../../src/devices/virtiofs/fuse/index.js';
import { PassthroughServer, type PassthroughServerOptions } from '../../src/devices/virtiofs/server/index.js';
import { encodeRequest, utf8, type HeaderFields } from './fuse-requests.js';
import { parseOutHeader } from './fuse-replies.js';

export const openFds = (): number => readdirSync('/proc/self/fd').length;
export const SECRET = 'the secret outside the share';
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;

export interface Reply {
  /** The used length handle() resolved with. */
  readonly used: number;
  readonly header: FuseOutHeader;
  /** Bytes after the out header, up to `used`. */
  readonly body: Uint8Array;
  /** -header.error: 0 on success. */
  readonly errno: number;
}

export interface CallOptions {
  /** Total reply bytes (default: header + 1 MiB + 4 KiB). */
  readonly replySize?: number;
  /** Split the request into descriptors at these offsets. */
  readonly splitAt?: readonly number[];
}

function split(bytes: Uint8Array, at: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...at, bytes.byteLength]) {
    if (cut > from) out.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return out;
}

export class ServerRig {
  readonly server: PassthroughServer;
  private unique = 100n;

  private constructor(
    readonly base: string,
    readonly share: string,
    readonly outside: string,
    options: Omit<PassthroughServerOptions, 'sharedDir'>,
  ) {
    this.server = new PassthroughServer({ sharedDir: share, ...options });
  }

  static create(options: Omit<PassthroughServerOptions, 'sharedDir'> = {}, prepare?: (share: string) => void): ServerRig {
    const base = mkdtempSync(join(tmpdir(), 'tsvmm-fsserver-'));
    const share = join(base, 'share');
    const outside = join(base, 'outside');
    mkdirSync(share);
    mkdirSync(join(outside, 'dir'), { recursive: true });
    writeFileSync(join(outside, 'secret'), SECRET);
    prepare?.(share);
    return new ServerRig(base, share, outside, options);
  }

  async dispose(): Promise<void> {
    await this.server.dispose();
    rmSync(this.base, { recursive: true, force: true });
  }

  path(rel: string): string {
    return join(this.share, rel);
  }

  /** Sends raw request bytes; returns what came back. */
  async raw(request: Uint8Array | Uint8Array[], options: CallOptions = {}): Promise<Reply> {
    const size = options.replySize ?? FUSE_OUT_HEADER_SIZE + (1 << 20) + 4096;
    const reply = new Uint8Array(size);
    const views = size > FUSE_OUT_HEADER_SIZE ? [reply.subarray(0, FUSE_OUT_HEADER_SIZE), reply.subarray(FUSE_OUT_HEADER_SIZE)] : [reply];
    const parts = Array.isArray(request) ? request : split(request as Uint8Array, options.splitAt ?? []);
    const used = await this.server.handle({ request: parts, reply: views }, 1);
    if (used === 0) return { used, header: { len: 0, error: 0, unique: 0n }, body: new Uint8Array(0), errno: 0 };
    const header = parseOutHeader(reply);
    return { used, header, body: reply.slice(FUSE_OUT_HEADER_SIZE, used), errno: -header.error };
  }

  /** Sends `body` for `nodeid` with a fresh unique; checks the reply's unique and length. */
  async call(body: FuseRequestBody, nodeid = 1n, h: HeaderFields = {}, options: CallOptions = {}): Promise<Reply> {
    const unique = this.unique++;
    const r = await this.raw(encodeRequest(body, { unique, nodeid, uid: 0, gid: 0, ...h }), options);
    if (r.used !== 0 && (r.header.unique !== unique || r.header.len !== r.used)) throw new Error(`reply header ${JSON.stringify(r.header, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))} for unique ${unique}, used ${r.used}`);
    return r;
  }

  /** A successful reply's body as `layout`; throws with the errno otherwise. */
  async ok<T extends object>(layout: Layout<T>, body: FuseRequestBody, nodeid = 1n, h: HeaderFields = {}): Promise<T> {
    const r = await this.call(body, nodeid, h);
    if (r.errno !== 0) throw new Error(`${body.kind} failed with errno ${r.errno}`);
    return readStruct(layout, r.body);
  }

  /** The errno of a request (0 on success). */
  async errno(body: FuseRequestBody, nodeid = 1n, h: HeaderFields = {}): Promise<number> {
    return (await this.call(body, nodeid, h)).errno;
  }

  async init(minor = FUSE_KERNEL_MINOR_VERSION, flags = 0x7fffffff | 0): Promise<Reply> {
    return this.call({ kind: 'init', major: 7, minor, maxReadahead: 131072, flags: flags | FUSE_INIT_EXT, flags2: 0 });
  }

  lookup(parent: bigint, name: string, h: HeaderFields = {}) {
    return this.ok(FUSE_ENTRY_OUT, { kind: 'lookup', name: utf8(name) }, parent, h);
  }

  getattr(nodeid: bigint) {
    return this.ok(FUSE_ATTR_OUT, { kind: 'getattr', getattrFlags: 0, fh: 0n }, nodeid);
  }

  mkdir(parent: bigint, name: string, mode = 0o755, h: HeaderFields = {}) {
    return this.ok(FUSE_ENTRY_OUT, { kind: 'mkdir', mode, umask: 0o022, name: utf8(name) }, parent, h);
  }

  create(parent: bigint, name: string, flags = O_RDWR, mode = 0o644, h: HeaderFields = {}) {
    return this.ok(FUSE_CREATE_OUT, { kind: 'create', flags, mode, umask: 0o022, openFlags: 0, name: utf8(name) }, parent, h);
  }

  async open(nodeid: bigint, flags = O_RDWR): Promise<bigint> {
    return (await this.ok(FUSE_OPEN_OUT, { kind: 'open', flags, openFlags: 0 }, nodeid)).fh;
  }

  async opendir(nodeid: bigint): Promise<bigint> {
    return (await this.ok(FUSE_OPEN_OUT, { kind: 'opendir', flags: 0, openFlags: 0 }, nodeid)).fh;
  }

  read(nodeid: bigint, fh: bigint, offset: bigint, size: number, options: CallOptions = {}) {
    return this.call({ kind: 'read', fh, offset, size, readFlags: 0, lockOwner: 0n, flags: 0 }, nodeid, {}, options);
  }

  async write(nodeid: bigint, fh: bigint, offset: bigint, data: Uint8Array): Promise<number> {
    return (await this.ok(FUSE_WRITE_OUT, { kind: 'write', fh, offset, size: data.byteLength, writeFlags: 0, lockOwner: 0n, flags: 0, data: [data] }, nodeid)).size;
  }

  release(nodeid: bigint, fh: bigint, dir = false) {
    return this.errno({ kind: dir ? 'releasedir' : 'release', fh, flags: 0, releaseFlags: 0, lockOwner: 0n }, nodeid);
  }

  forget(nodeid: bigint, nlookup = 1n) {
    return this.call({ kind: 'forget', nlookup }, nodeid);
  }
}
