// Property tests of the FUSE codec (src/devices/virtiofs/fuse):
// - every op round-trips: the kernel-style encoding of a random well-formed request decodes to
//   the same body, header and extensions, whether handed over as one buffer or split at random
//   into descriptors;
// - guest garbage never escapes as anything but FuseDecodeError: random bytes, and valid
//   requests truncated, extended, with bytes or 32-bit fields overwritten, or len rewritten;
// - reply structs read back as written, with header len = 16 + body;
// - dirent packing never exceeds its limit, packs whole records until the first that does not
//   fit, and parses back (as the kernel's parse_dirfile does) to exactly the entries added.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  DirentPacker, FUSE_ATTR_OUT, FUSE_CREATE_OUT, FUSE_ENTRY_OUT, FUSE_GETXATTR_OUT, FUSE_INIT_EXT,
  FUSE_INIT_OUT, FUSE_LK_OUT, FUSE_LSEEK_OUT, FUSE_OPEN_OUT, FUSE_STATFS_OUT, FUSE_WRITE_OUT,
  FUSE_ACCESS_IN, FUSE_COPY_FILE_RANGE_IN, FUSE_CREATE_IN, FUSE_FALLOCATE_IN, FUSE_FLUSH_IN,
  FUSE_FORGET_IN, FUSE_FORGET_ONE, FUSE_FSYNC_IN, FUSE_GETATTR_IN, FUSE_GETXATTR_IN, FUSE_INIT_IN,
  FUSE_INTERRUPT_IN, FUSE_LINK_IN, FUSE_LK_IN, FUSE_LSEEK_IN, FUSE_MKDIR_IN, FUSE_MKNOD_IN,
  FUSE_OPEN_IN, FUSE_READ_IN, FUSE_RELEASE_IN, FUSE_REMOVEMAPPING_ONE, FUSE_RENAME2_IN,
  FUSE_RENAME_IN, FUSE_SETATTR_IN, FUSE_SETUPMAPPING_IN, FUSE_WRITE_IN, FuseDecodeError,
  REQUEST_OPCODES, decodeRequest, encodeReply, readStruct,
  type Dirent, type DirentPlus, type FuseRequest, type FuseRequestBody, type Layout,
} from '../../src/devices/virtiofs/fuse/index.js';
import { concat, encodeRequest, type HeaderFields } from '../helpers/fuse-requests.js';
import { parseDirents, parseDirentsPlus, parseOutHeader } from '../helpers/fuse-replies.js';

/** Objects with Object's prototype, as the decoder's are (deep equality compares prototypes). */
const PLAIN = { noNullPrototype: true } as const;
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const i32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

/** Random values for every member of `layout`. */
function arbStruct<T extends object>(layout: Layout<T>): fc.Arbitrary<T> {
  const members: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of layout.fields) {
    const spec = f.spec;
    if (spec === 'u16') members[f.key] = u16;
    else if (spec === 'u32') members[f.key] = u32;
    else if (spec === 'i32') members[f.key] = i32;
    else if (spec === 'u64') members[f.key] = u64;
    else if (!('pad' in spec)) members[f.key] = arbStruct(spec);
  }
  // fc.record builds exactly the non-padding members, which is what T is.
  return fc.record(members, PLAIN) as fc.Arbitrary<T>;
}

/** A name as the kernel sends it: 1..40 bytes, any value but NUL. */
const name = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((a) => a.map((b) => (b === 0 ? 0x2f : b)));
const bytes = (maxLength: number) => fc.uint8Array({ maxLength });

// Each arbitrary builds one kind; the cast names the kind's member of the union, which the
// record's fields match (fc.record loses the literal type of `kind`).
const body = <T extends object>(kind: FuseRequestBody['kind'], fields: fc.Arbitrary<T>) => fields.map((v) => ({ kind, ...v }) as FuseRequestBody);
const fixed = <T extends object>(kind: FuseRequestBody['kind'], layout: Layout<T>) => body(kind, arbStruct(layout));
const named = <T extends object>(kind: FuseRequestBody['kind'], layout: Layout<T>, ...names: string[]) =>
  body(kind, fc.tuple(arbStruct(layout), fc.tuple(...names.map(() => name))).map(([v, ns]) => ({ ...v, ...Object.fromEntries(names.map((n, i) => [n, ns[i]])) })));
const empty = <T extends object>() => fc.constant({} as T);
const KNOWN = new Set<number>(Object.values(REQUEST_OPCODES));

const anyBody: fc.Arbitrary<FuseRequestBody> = fc.oneof(
  body('init', arbStruct(FUSE_INIT_IN).map((v) => ({ ...v, flags2: (v.flags & FUSE_INIT_EXT) !== 0 ? v.flags2 : 0 }))),
  ...(['destroy', 'readlink', 'statfs', 'syncfs'] as const).map((k) => body(k, empty())),
  ...(['lookup', 'unlink', 'rmdir', 'removexattr'] as const).map((k) => body(k, fc.record({ name }))),
  fixed('forget', FUSE_FORGET_IN),
  body('batchForget', fc.record({ forgets: fc.array(arbStruct(FUSE_FORGET_ONE), { maxLength: 5 }) })),
  fixed('getattr', FUSE_GETATTR_IN),
  fixed('setattr', FUSE_SETATTR_IN),
  body('symlink', fc.record({ name, target: name })),
  named('mknod', FUSE_MKNOD_IN, 'name'),
  named('mkdir', FUSE_MKDIR_IN, 'name'),
  named('rename', FUSE_RENAME_IN, 'oldname', 'newname'),
  named('rename2', FUSE_RENAME2_IN, 'oldname', 'newname'),
  named('link', FUSE_LINK_IN, 'newname'),
  ...(['open', 'opendir'] as const).map((k) => fixed(k, FUSE_OPEN_IN)),
  ...(['read', 'readdir', 'readdirplus'] as const).map((k) => fixed(k, FUSE_READ_IN)),
  body('write', fc.tuple(arbStruct(FUSE_WRITE_IN), bytes(300)).map(([v, d]) => ({ ...v, size: d.byteLength, data: d.byteLength > 0 ? [d] : [] }))),
  ...(['release', 'releasedir'] as const).map((k) => fixed(k, FUSE_RELEASE_IN)),
  ...(['fsync', 'fsyncdir'] as const).map((k) => fixed(k, FUSE_FSYNC_IN)),
  body('setxattr', fc.record({ flags: u32, setxattrFlags: u32, name, value: bytes(100) }).map((v) => ({ ...v, size: v.value.byteLength }))),
  named('getxattr', FUSE_GETXATTR_IN, 'name'),
  fixed('listxattr', FUSE_GETXATTR_IN),
  fixed('flush', FUSE_FLUSH_IN),
  ...(['getlk', 'setlk', 'setlkw'] as const).map((k) => fixed(k, FUSE_LK_IN)),
  fixed('access', FUSE_ACCESS_IN),
  ...(['create', 'tmpfile'] as const).map((k) => named(k, FUSE_CREATE_IN, 'name')),
  fixed('interrupt', FUSE_INTERRUPT_IN),
  fixed('fallocate', FUSE_FALLOCATE_IN),
  fixed('lseek', FUSE_LSEEK_IN),
  fixed('copyFileRange', FUSE_COPY_FILE_RANGE_IN),
  fixed('setupmapping', FUSE_SETUPMAPPING_IN),
  body('removemapping', fc.record({ mappings: fc.array(arbStruct(FUSE_REMOVEMAPPING_ONE), { maxLength: 5 }) })),
  body('unknown', fc.record({ opcode: u32.filter((op) => !KNOWN.has(op)) })),
);

const anyHeader: fc.Arbitrary<HeaderFields> = fc.record({
  unique: u64,
  nodeid: u64,
  uid: u32,
  gid: u32,
  pid: u32,
  extensions: fc.integer({ min: 0, max: 3 }).chain((n) => fc.uint8Array({ minLength: n * 8, maxLength: n * 8 })),
});

/** A request as the kernel would send it, with whether FUSE_SETXATTR_EXT was negotiated. */
const anyRequest = fc.record({ body: anyBody, header: anyHeader, setxattrExt: fc.boolean() }).map((r) => {
  // Without FUSE_SETXATTR_EXT, setxattr_flags is not on the wire: it decodes as 0.
  const b = r.body.kind === 'setxattr' && !r.setxattrExt ? { ...r.body, setxattrFlags: 0 } : r.body;
  return { ...r, body: b, bytes: encodeRequest(b, r.header, { setxattrExt: r.setxattrExt }) };
});

/** `bytes` cut at random points into descriptor-like views (empty ones included). */
const splitPoints = fc.array(fc.nat(), { maxLength: 6 });
function split(bytes: Uint8Array, points: readonly number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...cuts, bytes.byteLength]) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

/** The decoded request with WRITE's data views joined, to compare across splittings. */
function flat(r: FuseRequest): unknown {
  return r.body.kind === 'write' ? { ...r, body: { ...r.body, data: concat(r.body.data) } } : r;
}

test('every op round-trips through the kernel-style encoding, header and extensions included', () => {
  fc.assert(
    fc.property(anyRequest, ({ body: b, header: h, bytes: wire, setxattrExt }) => {
      const r = decodeRequest(wire, { setxattrExt });
      assert.equal(r.body, b);
      assert.equal(r.header, {
        len: wire.byteLength, opcode: b.kind === 'unknown' ? b.opcode : REQUEST_OPCODES[b.kind],
        unique: h.unique, nodeid: h.nodeid, uid: h.uid, gid: h.gid, pid: h.pid, totalExtlen: (h.extensions?.byteLength ?? 0) / 8,
      });
      assert.equal([...r.extensions], [...(h.extensions ?? [])]);
    }),
    { numRuns: 500 },
  );
});

test('decoding from descriptors split anywhere gives what decoding one buffer gives', () => {
  fc.assert(
    fc.property(anyRequest, splitPoints, ({ bytes: wire, setxattrExt }, points) => {
      assert.equal(flat(decodeRequest(split(wire, points), { setxattrExt })), flat(decodeRequest(wire, { setxattrExt })));
    }),
    { numRuns: 300 },
  );
});

/** Decodes, and lets only FuseDecodeError out. */
function decodeOrRefuse(input: Uint8Array | Uint8Array[], setxattrExt: boolean): void {
  try {
    decodeRequest(input, { setxattrExt });
  } catch (e) {
    if (!(e instanceof FuseDecodeError)) throw e;
  }
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), fixLen: fc.boolean() }),
  fc.record({ kind: fc.constant('append' as const), extra: bytes(20), fixLen: fc.boolean() }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(u32, fc.integer({ min: 0, max: 300 })) }),
  fc.record({ kind: fc.constant('len' as const), value: u32 }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(wire: Uint8Array, m: Mutation): Uint8Array {
  let out: Uint8Array = wire.slice();
  const setLen = (b: Uint8Array, len: number) => {
    if (b.byteLength >= 4) new DataView(b.buffer, b.byteOffset).setUint32(0, len, true);
  };
  if (m.kind === 'truncate') {
    out = out.slice(0, m.at % (out.byteLength + 1));
    if (m.fixLen) setLen(out, out.byteLength);
  } else if (m.kind === 'append') {
    out = concat([out, m.extra]);
    if (m.fixLen) setLen(out, out.byteLength);
  } else if (m.kind === 'byte') {
    if (out.byteLength > 0) out[m.at % out.byteLength] = m.value;
  } else if (m.kind === 'u32') {
    if (out.byteLength >= 4) new DataView(out.buffer, out.byteOffset).setUint32(m.at % (out.byteLength - 3), m.value, true);
  } else {
    setLen(out, m.value);
  }
  return out;
}

test('mutated requests decode or throw FuseDecodeError, never anything else', () => {
  fc.assert(
    fc.property(anyRequest, fc.array(mutation, { minLength: 1, maxLength: 3 }), splitPoints, ({ bytes: wire, setxattrExt }, ms, points) => {
      const bad = ms.reduce(mutate, wire);
      decodeOrRefuse(bad, setxattrExt);
      decodeOrRefuse(split(bad, points), setxattrExt);
    }),
    { numRuns: 1000 },
  );
});

test('random bytes, with or without a consistent len and a known opcode, decode or throw FuseDecodeError', () => {
  fc.assert(
    fc.property(bytes(200), fc.integer({ min: 0, max: 55 }), fc.boolean(), fc.boolean(), (raw, opcode, consistent, setxattrExt) => {
      if (consistent && raw.byteLength >= 40) {
        const v = new DataView(raw.buffer, raw.byteOffset);
        v.setUint32(0, raw.byteLength, true);
        v.setUint32(4, opcode, true);
        v.setUint16(36, v.getUint16(36, true) % 4, true);
      }
      decodeOrRefuse(raw, setxattrExt);
    }),
    { numRuns: 1000 },
  );
});

test('reply structs read back as written, behind a header with len = 16 + body', () => {
  const layouts: Layout<object>[] = [FUSE_ENTRY_OUT, FUSE_ATTR_OUT, FUSE_INIT_OUT, FUSE_OPEN_OUT, FUSE_WRITE_OUT, FUSE_STATFS_OUT, FUSE_GETXATTR_OUT, FUSE_LK_OUT, FUSE_LSEEK_OUT, FUSE_CREATE_OUT];
  for (const layout of layouts) {
    fc.assert(
      fc.property(arbStruct(layout), u64, (value, unique) => {
        const reply = encodeReply(unique, layout, value);
        assert.equal(parseOutHeader(reply), { len: 16 + layout.size, error: 0, unique });
        assert.equal(readStruct(layout, reply, 16), value);
      }),
      { numRuns: 50 },
    );
  }
});

const dirName = fc.uint8Array({ minLength: 1, maxLength: 60 }).map((a) => a.map((b) => (b === 0x2f ? 0x2e : b)));
const anyDirent: fc.Arbitrary<Dirent> = fc.record({ ino: u64, off: u64, type: u32, name: dirName }, PLAIN);
const anyDirentPlus: fc.Arbitrary<DirentPlus> = fc.record({ ino: u64, off: u64, type: u32, name: dirName, entry: arbStruct(FUSE_ENTRY_OUT) }, PLAIN);

function packUntilFull<E extends Dirent>(packer: DirentPacker<E>, entries: readonly E[]): E[] {
  const added: E[] = [];
  for (const e of entries) {
    if (!packer.add(e)) break;
    added.push(e);
  }
  return added;
}

test('READDIR packing stays within the limit, packs whole records and parses back to them', () => {
  fc.assert(
    fc.property(fc.array(anyDirent, { maxLength: 30 }), fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 2100 }), (entries, limit, bufferSize) => {
      const p = DirentPacker.readdir(new Uint8Array(bufferSize).fill(0xee), limit);
      const added = packUntilFull(p, entries);
      assert.ok(p.size <= Math.min(limit, bufferSize));
      assert.is(p.count, added.length);
      assert.equal(parseDirents(p.body()), added);
      if (added.length < entries.length) assert.ok(p.size + ((24 + entries[added.length].name.byteLength + 7) & ~7) > p.limit, 'stopped only when full');
    }),
    { numRuns: 300 },
  );
});

test('READDIRPLUS packing stays within the limit and parses back to the entries', () => {
  fc.assert(
    fc.property(fc.array(anyDirentPlus, { maxLength: 12 }), fc.integer({ min: 0, max: 2500 }), (entries, limit) => {
      const p = DirentPacker.readdirplus(new Uint8Array(limit + 8).fill(0xee), limit);
      const added = packUntilFull(p, entries);
      assert.ok(p.size <= limit);
      assert.equal(parseDirentsPlus(p.body()), added);
    }),
    { numRuns: 200 },
  );
});

test.run();
