// Property: random sequences of mkdir/create/write/read/rename/unlink/rmdir/lookup against the
// passthrough server match an in-memory model of the directory tree, errno for errno and byte for
// byte. Paths are walked with LOOKUP from the root and every lookup is forgotten afterwards, so
// each run also ends with no inode held and no fd left open.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { FUSE_CREATE_OUT, FUSE_ENTRY_OUT, FUSE_OPEN_OUT, readStruct } from '../../src/devices/virtiofs/fuse/index.js';
import { openRoot } from '../../src/vmm/confined-fs.js';
import { utf8 } from '../helpers/fuse-requests.js';
import { openFds, O_RDONLY, O_RDWR, ServerRig } from '../helpers/fuse-server-rig.js';

const E = { ENOENT: 2, EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENOTEMPTY: 39 };

type Node = { kind: 'dir'; children: Map<string, Node> } | { kind: 'file'; data: Uint8Array };
type Path = readonly string[];
type Op =
  | { op: 'mkdir' | 'create' | 'unlink' | 'rmdir' | 'lookup' | 'read'; path: Path }
  | { op: 'write'; path: Path; offset: number; data: Uint8Array }
  | { op: 'rename'; path: Path; to: Path };

/** The model: answers an op with an errno (0) and, for read/lookup, what the server must return. */
class Model {
  readonly root: Node = { kind: 'dir', children: new Map() };

  /** The directory holding path's last component, or the errno of resolving it. */
  parent(path: Path): Map<string, Node> | number {
    let at: Node = this.root;
    for (const name of path.slice(0, -1)) {
      if (at.kind !== 'dir') return E.ENOTDIR;
      const next = at.children.get(name);
      if (!next) return E.ENOENT;
      at = next;
    }
    return at.kind === 'dir' ? at.children : E.ENOTDIR;
  }

  apply(o: Op): { errno: number; data?: Uint8Array; kind?: string } {
    const dir = this.parent(o.path);
    if (typeof dir === 'number') return { errno: dir };
    const name = o.path[o.path.length - 1];
    const node = dir.get(name);
    switch (o.op) {
      case 'lookup':
        return node ? { errno: 0, kind: node.kind } : { errno: E.ENOENT };
      case 'mkdir':
      case 'create':
        if (node) return { errno: E.EEXIST };
        dir.set(name, o.op === 'mkdir' ? { kind: 'dir', children: new Map() } : { kind: 'file', data: new Uint8Array(0) });
        return { errno: 0 };
      case 'unlink':
        if (!node) return { errno: E.ENOENT };
        if (node.kind === 'dir') return { errno: E.EISDIR };
        dir.delete(name);
        return { errno: 0 };
      case 'rmdir':
        if (!node) return { errno: E.ENOENT };
        if (node.kind !== 'dir') return { errno: E.ENOTDIR };
        if (node.children.size) return { errno: E.ENOTEMPTY };
        dir.delete(name);
        return { errno: 0 };
      case 'read':
        if (!node) return { errno: E.ENOENT };
        return node.kind === 'file' ? { errno: 0, data: node.data } : { errno: E.EISDIR };
      case 'write': {
        if (!node) return { errno: E.ENOENT };
        if (node.kind !== 'file') return { errno: E.EISDIR };
        const end = Math.max(node.data.byteLength, o.offset + o.data.byteLength);
        const data = new Uint8Array(end);
        data.set(node.data);
        data.set(o.data, o.offset);
        node.data = data;
        return { errno: 0 };
      }
      case 'rename': {
        // Linux walks both parents before it looks the old name up (do_renameat2): a target
        // parent that is missing or not a directory wins over a missing source.
        const to = this.parent(o.to);
        if (typeof to === 'number') return { errno: to };
        if (!node) return { errno: E.ENOENT };
        const toName = o.to[o.to.length - 1];
        const target = to.get(toName);
        if (target === node) return { errno: 0 };
        // Moving a directory beneath itself.
        if (node.kind === 'dir' && o.to.length > o.path.length && o.path.every((c, i) => o.to[i] === c)) return { errno: E.EINVAL };
        if (target) {
          if (node.kind === 'dir' && target.kind !== 'dir') return { errno: E.ENOTDIR };
          if (node.kind !== 'dir' && target.kind === 'dir') return { errno: E.EISDIR };
          if (target.kind === 'dir' && target.children.size) return { errno: E.ENOTEMPTY };
        }
        dir.delete(name);
        to.set(toName, node);
        return { errno: 0 };
      }
    }
  }
}

/**
 * Walks `names` with LOOKUP from the root: the node ID, or the errno; `held` collects lookups to
 * forget. As the guest's path walk does, a component walked through (`throughDirs`) that is not a
 * directory is ENOTDIR.
 */
async function walk(r: ServerRig, names: Path, held: bigint[], from = 1n, throughDirs = true): Promise<bigint | number> {
  let at = from;
  for (const name of names) {
    const rep = await r.call({ kind: 'lookup', name: utf8(name) }, at);
    if (rep.errno) return rep.errno;
    const entry = readStruct(FUSE_ENTRY_OUT, rep.body);
    at = entry.nodeid;
    held.push(at);
    if (throughDirs && (entry.attr.mode & 0o170000) !== 0o040000) return E.ENOTDIR;
  }
  return at;
}

async function serve(r: ServerRig, o: Op, held: bigint[]): Promise<{ errno: number; data?: Uint8Array; kind?: string }> {
  const parent = await walk(r, o.path.slice(0, -1), held);
  if (typeof parent === 'number') return { errno: parent };
  const name = utf8(o.path[o.path.length - 1]);
  const entry = (): Promise<bigint | number> => walk(r, o.path.slice(-1), held, parent, false);
  switch (o.op) {
    case 'mkdir':
    case 'create': {
      const body = o.op === 'mkdir' ? { kind: 'mkdir' as const, mode: 0o755, umask: 0, name } : { kind: 'create' as const, flags: O_RDWR | 0o200, mode: 0o644, umask: 0, openFlags: 0, name };
      const rep = await r.call(body, parent);
      if (rep.errno) return { errno: rep.errno };
      const made = readStruct(FUSE_ENTRY_OUT, rep.body);
      held.push(made.nodeid);
      if (o.op === 'create') assert.is(await r.release(made.nodeid, readStruct(FUSE_CREATE_OUT, rep.body).open.fh), 0);
      return { errno: 0 };
    }
    case 'unlink':
    case 'rmdir':
      return { errno: await r.errno({ kind: o.op, name }, parent) };
    case 'rename': {
      const to = await walk(r, o.to.slice(0, -1), held);
      // The kernel resolves both parents before it sends RENAME; a missing one never reaches the server.
      if (typeof to === 'number') return { errno: to };
      return { errno: await r.errno({ kind: 'rename', newdir: to, oldname: name, newname: utf8(o.to[o.to.length - 1]) }, parent) };
    }
    case 'lookup':
    case 'read':
    case 'write': {
      const node = await entry();
      if (typeof node === 'number') return { errno: node };
      if (o.op === 'lookup') {
        const attr = await r.getattr(node);
        return { errno: 0, kind: (attr.attr.mode & 0o170000) === 0o040000 ? 'dir' : 'file' };
      }
      const op = await r.call({ kind: 'open', flags: o.op === 'read' ? O_RDONLY : O_RDWR, openFlags: 0 }, node);
      if (op.errno) return { errno: op.errno };
      const fh = readStruct(FUSE_OPEN_OUT, op.body).fh;
      try {
        if (o.op === 'write') {
          assert.is(await r.write(node, fh, BigInt(o.offset), o.data), o.data.byteLength);
          return { errno: 0 };
        }
        const rd = await r.read(node, fh, 0n, 1 << 16);
        return { errno: rd.errno, data: rd.body };
      } finally {
        await r.release(node, fh);
      }
    }
  }
}

closeSync(openRoot(tmpdir()));

const name = fc.constantFrom('a', 'b', 'c');
const path = fc.array(name, { minLength: 1, maxLength: 3 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('mkdir', 'create', 'unlink', 'rmdir', 'lookup', 'read') as fc.Arbitrary<'mkdir'>, path }),
  fc.record({ op: fc.constant('write' as const), path, offset: fc.nat(64), data: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ op: fc.constant('rename' as const), path, to: path }),
);

test('random op sequences: the server answers as the model, leaves no inode held and no fd open', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      const before = openFds();
      const r = ServerRig.create();
      try {
        await r.init();
        const model = new Model();
        for (const o of ops) {
          const held: bigint[] = [];
          const got = await serve(r, o, held);
          const want = model.apply(o);
          assert.is(got.errno, want.errno, `${JSON.stringify(o)}`);
          if (want.data) assert.equal([...(got.data ?? [])], [...want.data], `${JSON.stringify(o)} data`);
          if (want.kind) assert.is(got.kind, want.kind);
          for (const id of held) await r.forget(id);
          assert.is(r.server.metrics().inodes, 0, 'every lookup forgotten');
        }
      } finally {
        await r.dispose();
      }
      assert.is(openFds(), before);
    }),
    { numRuns: 150 },
  );
});

test.run();
