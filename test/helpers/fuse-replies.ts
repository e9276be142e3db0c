// Readers of FUSE replies as the Linux kernel reads them: the out header, and READDIR /
// READDIRPLUS bodies walked like fs/fuse/readdir.c parse_dirfile() (whole records only,
// namelen 1..FUSE_NAME_MAX, no '/').
import {
  FUSE_DIRENT, FUSE_DIRENTPLUS, FUSE_NAME_MAX, FUSE_OUT_HEADER, readStruct,
  type Dirent, type DirentPlus, type FuseOutHeader,
} from '../../src/devices/virtiofs/fuse/index.js';

export function parseOutHeader(bytes: Uint8Array): FuseOutHeader {
  if (bytes.byteLength < FUSE_OUT_HEADER.size) throw new Error(`reply of ${bytes.byteLength} bytes has no header`);
  return readStruct(FUSE_OUT_HEADER, bytes);
}

function walk<E>(body: Uint8Array, fixed: number, read: (at: number, namelen: number) => E): E[] {
  const out: E[] = [];
  let at = 0;
  while (body.byteLength - at >= fixed) {
    const namelen = readStruct(FUSE_DIRENT, body, at + fixed - FUSE_DIRENT.size).namelen;
    if (namelen === 0 || namelen > FUSE_NAME_MAX) throw new Error(`dirent at ${at}: namelen ${namelen} (the kernel says EIO)`);
    const record = (fixed + namelen + 7) & ~7;
    if (record > body.byteLength - at) break;
    if (body.subarray(at + fixed, at + fixed + namelen).includes(0x2f)) throw new Error(`dirent at ${at}: '/' in name (EIO)`);
    out.push(read(at, namelen));
    at += record;
  }
  if (at !== body.byteLength) throw new Error(`${body.byteLength - at} bytes after the last whole record`);
  return out;
}

export function parseDirents(body: Uint8Array): Dirent[] {
  return walk(body, FUSE_DIRENT.size, (at, namelen) => {
    const d = readStruct(FUSE_DIRENT, body, at);
    return { ino: d.ino, off: d.off, type: d.type, name: body.slice(at + FUSE_DIRENT.size, at + FUSE_DIRENT.size + namelen) };
  });
}

export function parseDirentsPlus(body: Uint8Array): DirentPlus[] {
  return walk(body, FUSE_DIRENTPLUS.size, (at, namelen) => {
    const { entryOut, dirent: d } = readStruct(FUSE_DIRENTPLUS, body, at);
    const name = body.slice(at + FUSE_DIRENTPLUS.size, at + FUSE_DIRENTPLUS.size + namelen);
    return { ino: d.ino, off: d.off, type: d.type, name, entry: entryOut };
  });
}
