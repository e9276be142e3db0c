// The passthrough server's resources and its answers to a hostile guest: lookup counts and the fds
// behind them (counted in /proc/self/fd), the inode bound, reset() and dispose(), every
// FuseDecodeError case (an EINVAL reply with the request's unique, or dropped when no reply is
// possible), random bytes, and replies larger than the guest's buffers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import {
  FUSE_BATCH_FORGET, FUSE_BATCH_FORGET_IN, FUSE_FORGET_ONE, FUSE_GETATTR, FUSE_LOOKUP, FUSE_WRITE, FUSE_WRITE_IN,
  FUSE_OUT_HEADER_SIZE,
} from '../../src/devices/virtiofs/fuse/index.js';
import { openRoot } from '../../src/vmm/confined-fs.js';
import { buildRequest, cstr, structBytes, utf8 } from '../helpers/fuse-requests.js';
import { parseDirentsPlus } from '../helpers/fuse-replies.js';
import { openFds, ServerRig } from '../helpers/fuse-server-rig.js';

const EINVAL = 22;
const ENFILE = 23;

// The one /proc/self/fd fd confined-fs keeps for the process, opened before any count is taken.
closeSync(openRoot(tmpdir()));

async function counted(body: (r: ServerRig) => Promise<void>, options: Parameters<typeof ServerRig.create>[0] = {}): Promise<void> {
  const before = openFds();
  const r = ServerRig.create(options, (share) => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) writeFileSync(`${share}/${n}`, n);
  });
  try {
    await r.init();
    await body(r);
  } finally {
    await r.dispose();
  }
  assert.is(openFds(), before, 'no fd left open');
}

test('lookup counts: one fd per inode, closed when FORGET and BATCH_FORGET bring the count to 0; handles closed at RELEASE', () =>
  counted(async (r) => {
    const base = openFds();
    const a = await r.lookup(1n, 'a');
    assert.is(openFds(), base + 1);
    await r.lookup(1n, 'a');
    assert.is(openFds(), base + 1, 'the same inode, the same fd');
    assert.is((await r.forget(a.nodeid)).used, 0);
    assert.is(openFds(), base + 1, 'one lookup left');
    await r.forget(a.nodeid);
    assert.is(openFds(), base);
    assert.is(await r.errno({ kind: 'getattr', getattrFlags: 0, fh: 0n }, a.nodeid), 9, 'EBADF once forgotten');
    const b = await r.lookup(1n, 'b');
    const c = await r.lookup(1n, 'c');
    await r.lookup(1n, 'c');
    assert.ok(b.nodeid !== a.nodeid, 'node IDs are not reused');
    const fh = await r.open(b.nodeid);
    assert.is(openFds(), base + 3);
    const forgets = [{ nodeid: b.nodeid, nlookup: 1n }, { nodeid: c.nodeid, nlookup: 2n }, { nodeid: 999n, nlookup: 1n }];
    assert.is((await r.call({ kind: 'batchForget', forgets })).used, 0);
    assert.is(openFds(), base + 1, 'the open file stays');
    assert.is(r.server.metrics().inodes, 0);
    await r.release(b.nodeid, fh);
    assert.is(openFds(), base);
    assert.is(r.server.metrics().open_handles, 0);
  }));

test('reset() closes every inode and handle but the root; the guest must INIT again; dispose() closes the root', () =>
  counted(async (r) => {
    const base = openFds();
    const a = await r.lookup(1n, 'a');
    await r.open(a.nodeid);
    await r.opendir(1n);
    await r.mkdir(1n, 'dir');
    assert.is(openFds(), base + 4);
    r.server.reset();
    assert.is(openFds(), base);
    assert.is(await r.errno({ kind: 'getattr', getattrFlags: 0, fh: 0n }), 5, 'EIO before INIT');
    await r.init();
    assert.is(await r.errno({ kind: 'getattr', getattrFlags: 0, fh: 0n }, a.nodeid), 9);
    assert.is((await r.lookup(1n, 'a')).attr.size, 1n);
  }));

test('a RELEASE while a READ is in flight closes the fd only after the READ', () =>
  counted(async (r) => {
    const base = openFds();
    const a = await r.lookup(1n, 'a');
    const fh = await r.open(a.nodeid);
    const reading = r.read(a.nodeid, fh, 0n, 10);
    assert.is(await r.release(a.nodeid, fh), 0);
    assert.is(r.server.metrics().draining_handles, 1);
    assert.is(new TextDecoder().decode((await reading).body), 'a');
    assert.is(r.server.metrics().draining_handles, 0);
    assert.is(openFds(), base + 1);
  }));

test('the inode bound: ENFILE for a new inode (nothing created), held ones still served; FORGET makes room; READDIRPLUS gives names without entries', () =>
  counted(
    async (r) => {
      const held = [await r.lookup(1n, 'a'), await r.lookup(1n, 'b'), await r.lookup(1n, 'c')];
      assert.is(await r.errno({ kind: 'lookup', name: utf8('d') }), ENFILE);
      assert.is((await r.lookup(1n, 'a')).nodeid, held[0].nodeid);
      assert.is(await r.errno({ kind: 'mkdir', mode: 0o755, umask: 0, name: utf8('new') }), ENFILE);
      assert.is(await r.errno({ kind: 'create', flags: 2, mode: 0o644, umask: 0, openFlags: 0, name: utf8('new') }), ENFILE);
      assert.not.ok(existsSync(r.path('new')));
      const fh = await r.opendir(1n);
      const plus = parseDirentsPlus((await r.call({ kind: 'readdirplus', fh, offset: 0n, size: 65536, readFlags: 0, lockOwner: 0n, flags: 0 })).body);
      assert.is(plus.length, 7);
      assert.is(plus.filter((e) => e.entry.nodeid !== 0n).length, 3, 'entries only for the inodes already held');
      assert.is(r.server.metrics().inodes, 3);
      await r.forget(held[0].nodeid, 3n); // LOOKUP twice, READDIRPLUS once
      assert.ok((await r.lookup(1n, 'd')).nodeid > 1n);
      await r.release(1n, fh, true);
    },
    { maxInodes: 3 },
  ));

test('malformed requests: an EINVAL reply with the unique when the header was readable; dropped otherwise; never a throw', () =>
  counted(async (r) => {
    const u = { unique: 77n };
    const cases: [string, Uint8Array, boolean][] = [
      ['short-header', new Uint8Array(10), false],
      ['length-mismatch', buildRequest(FUSE_LOOKUP, [cstr('a')], { ...u, len: 100 }), true],
      ['bad-extension-length', buildRequest(FUSE_LOOKUP, [cstr('a')], { ...u, totalExtlen: 9 }), true],
      ['short-body', buildRequest(FUSE_GETATTR, [new Uint8Array(8)], u), true],
      ['trailing-bytes', buildRequest(FUSE_GETATTR, [new Uint8Array(20)], u), true],
      ['missing-nul', buildRequest(FUSE_LOOKUP, [utf8('abc')], u), true],
      ['empty-name', buildRequest(FUSE_LOOKUP, [cstr('')], u), true],
      ['size-mismatch', buildRequest(FUSE_WRITE, [structBytes(FUSE_WRITE_IN, { fh: 1n, offset: 0n, size: 10, writeFlags: 0, lockOwner: 0n, flags: 0 }), new Uint8Array(5)], u), true],
      ['count-mismatch (BATCH_FORGET takes no reply)', buildRequest(FUSE_BATCH_FORGET, [structBytes(FUSE_BATCH_FORGET_IN, { count: 3 }), structBytes(FUSE_FORGET_ONE, { nodeid: 2n, nlookup: 1n })], u), false],
    ];
    let malformed = 0;
    for (const [name, bytes, answered] of cases) {
      const rep = await r.raw(bytes, { splitAt: [16, 40] });
      malformed++;
      if (answered) {
        assert.is(rep.errno, EINVAL, name);
        assert.is(rep.header.unique, 77n, name);
        assert.is(rep.used, FUSE_OUT_HEADER_SIZE, name);
      } else assert.is(rep.used, 0, name);
    }
    const m = r.server.metrics();
    assert.is(m.malformed_requests, malformed);
    assert.is(m.dropped_requests, 2);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(200), { maxLength: 3 }), async (bytes, cuts) => {
        const rep = await r.raw(bytes, { splitAt: [...cuts].sort((x, y) => x - y) });
        assert.ok(rep.used === 0 || rep.used >= FUSE_OUT_HEADER_SIZE);
      }),
      { numRuns: 300 },
    );
  }));

test('a reply larger than the reply descriptors is not written: handle() resolves 0 and counts it', () =>
  counted(async (r) => {
    const a = await r.lookup(1n, 'a');
    const tiny = await r.call({ kind: 'getattr', getattrFlags: 0, fh: 0n }, a.nodeid, {}, { replySize: 40 });
    assert.is(tiny.used, 0);
    const fh = await r.open(a.nodeid);
    assert.is((await r.read(a.nodeid, fh, 0n, 4096, { replySize: 1024 })).used, 0);
    assert.is((await r.call({ kind: 'statfs' }, 1n, {}, { replySize: 8 })).used, 0);
    assert.is(r.server.metrics().replies_too_small, 3);
    assert.is((await r.read(a.nodeid, fh, 0n, 1000, { replySize: 1016 })).used, 17, 'exactly fitting is fine');
  }));

test('metrics: requests by op, errors by errno, bytes, gauges', () =>
  counted(async (r) => {
    const c = await r.create(1n, 'new');
    await r.write(c.entry.nodeid, c.open.fh, 0n, utf8('12345'));
    await r.read(c.entry.nodeid, c.open.fh, 0n, 100);
    await r.errno({ kind: 'lookup', name: utf8('missing') });
    const m = r.server.metrics();
    assert.is(m.requests_INIT, 1);
    assert.is(m.requests_CREATE, 1);
    assert.is(m.requests_LOOKUP, 1);
    assert.is(m.errors_ENOENT, 1);
    assert.is(m.bytes_written, 5);
    assert.is(m.bytes_read, 5);
    assert.is(m.inodes, 1);
    assert.is(m.open_handles, 1);
  }));

test.run();
