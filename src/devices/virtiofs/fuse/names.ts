// Names in FUSE requests are raw bytes (fuse.h sends them NUL-terminated, in no encoding): the
// server must open exactly the bytes the guest named, so the decoder hands out Uint8Arrays and
// these helpers answer the questions a confined server asks of them.

const SLASH = 0x2f;
const DOT = 0x2e;
const decoder = new TextDecoder('utf-8', { fatal: false });

/** The name as text, for messages and logs only: invalid UTF-8 becomes U+FFFD, so never open by it. */
export function nameToString(name: Uint8Array): string {
  return decoder.decode(name);
}

/**
 * Whether `name` is one path component that stays in its directory: not empty, no '/', not '.'
 * or '..'. The kernel only sends '.' and '..' in LOOKUP under FUSE_EXPORT_SUPPORT; a server that
 * resolves names itself must refuse them everywhere else.
 */
export function isSingleComponent(name: Uint8Array): boolean {
  if (name.byteLength === 0 || name.includes(SLASH)) return false;
  if (name[0] !== DOT) return true;
  return !(name.byteLength === 1 || (name.byteLength === 2 && name[1] === DOT));
}
