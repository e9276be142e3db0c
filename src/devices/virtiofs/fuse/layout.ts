// A declarative description of fuse.h's C structs and the two loops that read and write them.
// Every fuse.h struct is packed without implicit padding (fuse.h: "Make sure all structures are
// padded to 64bit boundary"; explicit padding members do it), so a struct is its members laid
// end to end, little-endian (virtio 1.2 §5.11 carries FUSE in the guest's byte order, and the
// guests virtio-fs serves are little-endian). One description per struct (structs.ts) serves the
// request decoder, the reply encoder and the test that compares offsets with the C header.

import { FuseEncodeError } from './errors.js';

/** A member's C type. i32 is only fuse_out_header.error. */
export type Scalar = 'u16' | 'u32' | 'i32' | 'u64';
/** Padding or reserved members (padding, dummy, unused[N], spare[N]): skipped on read, zeroed on write. */
export interface Pad {
  readonly pad: number;
}
/** A member: a scalar, padding, or a nested struct (fuse_attr in fuse_entry_out, ...). */
export type FieldSpec = Scalar | Pad | Layout<object>;

/** One member with its byte offset inside the struct. */
export interface LaidOutField {
  /** The TypeScript key: the C member name in camelCase (lock_owner -> lockOwner); pads keep the C name. */
  readonly key: string;
  readonly offset: number;
  readonly spec: Scalar | Pad | Layout<object>;
}

/** A struct's layout. T is the object type its members read into (padding left out). */
export interface Layout<T> {
  /** The fuse.h struct name, e.g. 'fuse_entry_out'. */
  readonly name: string;
  /** sizeof(struct name). */
  readonly size: number;
  readonly fields: readonly LaidOutField[];
  /** True for a layout that is not a fuse.h struct (a compat prefix, a concatenation): no C check. */
  readonly synthetic: boolean;
  /** Never set: only carries T for the type checker. */
  readonly valueType?: T;
}

type ValueOf<F> = F extends 'u64' ? bigint : F extends 'u16' | 'u32' | 'i32' ? number : F extends Layout<infer T> ? T : never;
/** The object a struct with members D reads into: every non-padding member, readonly. */
export type StructOf<D> = { readonly [K in keyof D as D[K] extends Pad ? never : K]: ValueOf<D[K]> };
/** The value type of a layout. */
export type ValueOfLayout<L> = L extends Layout<infer T> ? T : never;

const SCALAR_SIZE: Readonly<Record<Scalar, number>> = { u16: 2, u32: 4, i32: 4, u64: 8 };
const U64_MAX = (1n << 64n) - 1n;

/** `pad(n)`: n bytes of padding or reserved members. */
export function pad(bytes: number): Pad {
  return { pad: bytes };
}

function sizeOf(spec: Scalar | Pad | Layout<object>): number {
  if (typeof spec === 'string') return SCALAR_SIZE[spec];
  return 'pad' in spec ? spec.pad : spec.size;
}

/** Describes struct `name` with members `fields`, in declaration order. */
export function defineStruct<const D extends Readonly<Record<string, FieldSpec>>>(
  name: string,
  fields: D,
  options: { readonly synthetic?: boolean } = {},
): Layout<StructOf<D>> {
  const laid: LaidOutField[] = [];
  let offset = 0;
  for (const [key, spec] of Object.entries(fields)) {
    laid.push({ key, offset, spec });
    offset += sizeOf(spec);
  }
  return { name, size: offset, fields: laid, synthetic: options.synthetic ?? false };
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function readInto(layout: Layout<object>, v: DataView, base: number): object {
  const out: Record<string, unknown> = {};
  for (const f of layout.fields) {
    const at = base + f.offset;
    const spec = f.spec;
    if (spec === 'u64') out[f.key] = v.getBigUint64(at, true);
    else if (spec === 'u32') out[f.key] = v.getUint32(at, true);
    else if (spec === 'i32') out[f.key] = v.getInt32(at, true);
    else if (spec === 'u16') out[f.key] = v.getUint16(at, true);
    else if (!('pad' in spec)) out[f.key] = readInto(spec, v, at);
  }
  return out;
}

/**
 * Reads `layout` from `bytes` at `offset`. The caller has checked that the struct fits: reading
 * past the end is a bug here, and DataView throws a RangeError rather than returning garbage.
 */
export function readStruct<T extends object>(layout: Layout<T>, bytes: Uint8Array, offset = 0): T {
  // readInto builds exactly the members StructOf<D> names, so the object is a T.
  return readInto(layout, dataView(bytes), offset) as T;
}

function outOfRange(layout: Layout<object>, key: string, value: unknown): never {
  throw new FuseEncodeError('out-of-range', `${layout.name}.${key}: ${String(value)} does not fit the member`);
}

function checkNumber(layout: Layout<object>, key: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) outOfRange(layout, key, value);
  return value;
}

function writeFrom(layout: Layout<object>, v: DataView, base: number, value: object): void {
  // `value` is the T of `layout` (writeStruct's signature); members are looked up by key.
  const fields = value as Readonly<Record<string, unknown>>;
  for (const f of layout.fields) {
    const at = base + f.offset;
    const spec = f.spec;
    if (typeof spec !== 'string') {
      if ('pad' in spec) for (let i = 0; i < spec.pad; i++) v.setUint8(at + i, 0);
      else writeFrom(spec, v, at, (fields[f.key] ?? outOfRange(layout, f.key, undefined)) as object);
      continue;
    }
    const x = fields[f.key];
    if (spec === 'u64') {
      if (typeof x !== 'bigint' || x < 0n || x > U64_MAX) outOfRange(layout, f.key, x);
      v.setBigUint64(at, x, true);
    } else if (spec === 'u32') v.setUint32(at, checkNumber(layout, f.key, x, 0, 0xffff_ffff), true);
    else if (spec === 'i32') v.setInt32(at, checkNumber(layout, f.key, x, -0x8000_0000, 0x7fff_ffff), true);
    else v.setUint16(at, checkNumber(layout, f.key, x, 0, 0xffff), true);
  }
}

/**
 * Writes `value` as `layout` into `into` at `offset` and returns the offset just past it.
 * Padding is zeroed (the buffer may be guest memory: nothing stale leaks). Throws
 * FuseEncodeError when the struct does not fit or a member's value does not fit its C type.
 */
export function writeStruct<T extends object>(layout: Layout<T>, into: Uint8Array, offset: number, value: T): number {
  if (!Number.isInteger(offset) || offset < 0 || offset + layout.size > into.byteLength) {
    throw new FuseEncodeError('buffer-too-small', `${layout.name}: ${layout.size} bytes at offset ${offset} do not fit a buffer of ${into.byteLength}`);
  }
  writeFrom(layout, dataView(into), offset, value);
  return offset + layout.size;
}
