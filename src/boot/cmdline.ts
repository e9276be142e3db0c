// The kernel command line as a builder (the idea of rust-vmm linux-loader's Cmdline): kernel
// parameters and init arguments kept apart, so that what the VMM adds (root=, ro/rw, console=,
// virtio_mmio.device=, ...) always goes before the `--` that hands the rest of the line to init.
//
// Words are split exactly as the kernel splits them: lib/cmdline.c next_arg() (double quotes
// group spaces, `param="a b"` and `"param=a b"`, no escape for a quote; isspace() from
// lib/ctype.c, which also counts byte 0xa0), and kernel/params.c parse_args(), which stops at the
// first bare `--`; init/main.c passes the words after it to init as argv (set_init_arg), and a
// second `--` ends those too (Documentation/admin-guide/kernel-parameters.rst, "--").
//
// Guarantees: a parsed line is kept word for word (each user word is written back as it was
// given, quotes included); parameters are added after the user's and before `--`; an identical
// parameter is never added twice; addDefault leaves a parameter the user set alone and says so
// when the user's value differs; every word added is checked to split back to the same name and
// value; encode() enforces the kernel's length limit (setup_header.cmdline_size, boot.rst).

import { DEFAULT_CMDLINE_LIMIT, encodeCmdline } from './bootparams.js';
import { BootError } from './errors.js';

/** One word of the kernel parameters, as next_arg() splits it. */
export interface CmdlineParam {
  /** The word as it is written on the line, quotes included. */
  readonly raw: string;
  /** The parameter name: the text before the first `=`, its quotes removed. */
  readonly name: string;
  /** The text after the first `=`, its quotes removed; undefined for a word without `=`. */
  readonly value: string | undefined;
  /** 'user' for a word parsed from the given line, 'vmm' for one added by add()/addDefault(). */
  readonly origin: 'user' | 'vmm';
}

/** A parameter the VMM adds only when the user did not set it (see Cmdline.addDefault). */
export interface CmdlineDefault {
  name: string;
  value?: string;
  /** Other parameter names that set the same thing (`ro` for `rw`): the user's use of any of them wins. */
  alternatives?: readonly string[];
  /**
   * Whether the user's words for this setting say what the default says (no warning then).
   * Default: the last of them (the kernel takes the last) has the default's name and value.
   */
  agrees?: (userWords: readonly CmdlineParam[]) => boolean;
  /** Why tsvmm wanted it, for the warning: "ROOTFS is /dev/vda". */
  why: string;
}

const QUOTE = 0x22;
const EQUALS = 0x3d;

/** lib/ctype.c isspace(): \t \n \v \f \r, space, and 0xa0 (Latin-1 no-break space). */
function isKernelSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d) || b === 0xa0;
}

interface Word {
  /** Byte span of the word on the line, quotes included. */
  start: number;
  end: number;
  param: Uint8Array;
  value: Uint8Array | undefined;
  /** The line ended inside double quotes: the kernel took everything up to the end into this word. */
  open: boolean;
}

/** The C-string at `at` in `bytes` (up to the first NUL or the end). */
function cString(bytes: Uint8Array, at: number): Uint8Array {
  const nul = bytes.indexOf(0, at);
  return bytes.subarray(at, nul < 0 ? bytes.byteLength : nul);
}

/** next_arg() on the word that starts at `at`: the same scan, the same NULs written into a copy. */
function nextWord(line: Uint8Array, at: number): { word: Word; next: number } {
  let args = at;
  let inQuote = false;
  let quoted = false;
  if (line[args] === QUOTE) {
    args++;
    inQuote = true;
    quoted = true;
  }
  let i = 0;
  let equals = 0;
  for (; args + i < line.byteLength; i++) {
    const c = line[args + i] as number;
    if (isKernelSpace(c) && !inQuote) break;
    if (equals === 0 && c === EQUALS) equals = i;
    if (c === QUOTE) inQuote = !inQuote;
  }
  // The word's bytes plus the terminator next_arg() overwrites with a NUL.
  const w = new Uint8Array(i + 1);
  w.set(line.subarray(args, args + i));
  let valueAt: number | undefined;
  if (equals !== 0) {
    w[equals] = 0;
    valueAt = equals + 1;
    if (w[valueAt] === QUOTE) {
      valueAt++;
      if (w[i - 1] === QUOTE) w[i - 1] = 0;
    }
  }
  if (quoted && i > 0 && w[i - 1] === QUOTE) w[i - 1] = 0;
  let next = args + i < line.byteLength ? args + i + 1 : args + i;
  while (next < line.byteLength && isKernelSpace(line[next] as number)) next++;
  return {
    word: { start: at, end: args + i, param: cString(w, 0), value: valueAt === undefined ? undefined : cString(w, valueAt), open: inQuote },
    next,
  };
}

/** Every word of `line` as parse_args() meets it (leading spaces skipped). */
function splitWords(line: Uint8Array): Word[] {
  const words: Word[] = [];
  let at = 0;
  while (at < line.byteLength && isKernelSpace(line[at] as number)) at++;
  while (at < line.byteLength) {
    const { word, next } = nextWord(line, at);
    words.push(word);
    at = next;
  }
  return words;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

function decode(bytes: Uint8Array, line: Uint8Array, word: Word): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const split = line.subarray(word.start, word.end + 1).indexOf(0xa0);
    throw new BootError(
      'bad-cmdline',
      `the kernel command line has a character whose UTF-8 bytes include 0xa0 near byte ${word.start + Math.max(split, 0)}; the kernel's parser takes 0xa0 for a space (lib/ctype.c) and cuts the character in two: put that word in double quotes or leave the character out`,
    );
  }
}

function isSeparator(w: Word): boolean {
  return w.value === undefined && w.param.byteLength === 2 && w.param[0] === 0x2d && w.param[1] === 0x2d;
}

/** Kernel parameter names treat `-` and `_` alike (kernel/params.c parameq()). */
function sameName(a: string, b: string): boolean {
  return a.replaceAll('-', '_') === b.replaceAll('-', '_');
}

function wordText(name: string, value: string | undefined): string {
  return value === undefined ? name : `${name}=${value}`;
}

/** What init's argv gets for a word after `--` (init/main.c repair_env_string puts the `=` back). */
function initArgOf(p: { name: string; value: string | undefined }): string {
  return wordText(p.name, p.value);
}

export class Cmdline {
  private readonly params: CmdlineParam[] = [];
  private readonly init: CmdlineParam[] = [];

  /**
   * Splits `text` as the kernel does: kernel parameters up to the first bare `--`, init arguments
   * after it. Throws BootError('bad-cmdline') for what the kernel would read differently from
   * what it says: a NUL byte (the line ends there), a double quote left open (the kernel takes
   * the rest of the line into that word, so nothing could be added after it), a second `--`
   * (the kernel drops the words after it), or a character cut in two by byte 0xa0.
   */
  static parse(text: string): Cmdline {
    const line = encoder.encode(text);
    const nul = line.indexOf(0);
    if (nul >= 0) throw new BootError('bad-cmdline', `the kernel command line holds a NUL byte at offset ${nul}; remove it`);
    const c = new Cmdline();
    let afterDashes = false;
    for (const w of splitWords(line)) {
      const raw = decode(line.subarray(w.start, w.end), line, w);
      if (isSeparator(w)) {
        if (afterDashes) {
          throw new BootError(
            'bad-cmdline',
            `the kernel command line has a second "--"${c.init.length > 0 ? ` (after the init arguments ${c.init.map((p) => p.raw).join(' ')})` : ''}; the kernel stops passing words to init there and drops the rest (init/main.c): remove it`,
          );
        }
        afterDashes = true;
        continue;
      }
      if (w.open) {
        throw new BootError('bad-cmdline', `the kernel command line opens a double quote it does not close (in ${raw}); the kernel would take the rest of the line into that word: close the quote`);
      }
      const word: CmdlineParam = { raw, name: decode(w.param, line, w), value: w.value === undefined ? undefined : decode(w.value, line, w), origin: 'user' };
      (afterDashes ? c.init : c.params).push(word);
    }
    return c;
  }

  /** The kernel parameters (before `--`), in order. */
  get kernelParams(): readonly CmdlineParam[] {
    return this.params;
  }

  /** init's arguments after its name, as the kernel passes them (quotes removed). */
  get initArgs(): string[] {
    return this.init.map(initArgOf);
  }

  /** The kernel parameters named `name` (`-` and `_` alike), in order; init arguments do not count. */
  find(name: string): CmdlineParam[] {
    return this.params.filter((p) => sameName(p.name, name));
  }

  has(name: string): boolean {
    return this.find(name).length > 0;
  }

  /**
   * Adds a kernel parameter before `--`, double-quoted when the value holds a space, unless the
   * identical parameter is already there. For what describes the machine (virtio_mmio.device=):
   * it is added whatever else the user wrote. Throws BootError('bad-cmdline') for a word the
   * kernel cannot read back as given (a double quote in it, an empty name, `--`).
   */
  add(name: string, value?: string): this {
    if (this.params.some((p) => sameName(p.name, name) && p.value === value)) return this;
    this.params.push(checkedWord(name, value, 'parameter'));
    return this;
  }

  /**
   * Adds `d` unless the user's line already sets it (by its name or an alternative): the user's
   * explicit choice wins (root=, ro/rw, console=). Returns a warning when the user's setting
   * differs from what tsvmm would have added, undefined otherwise.
   */
  addDefault(d: CmdlineDefault): string | undefined {
    const names = [d.name, ...(d.alternatives ?? [])];
    const set = this.params.filter((p) => names.some((n) => sameName(p.name, n)));
    if (set.length === 0) {
      this.add(d.name, d.value);
      return undefined;
    }
    const last = set[set.length - 1] as CmdlineParam;
    const agrees = d.agrees ? d.agrees(set) : sameName(last.name, d.name) && last.value === d.value;
    if (agrees) return undefined;
    const given = set.map((p) => p.raw).join(' ');
    return `the command line's ${given} ${set.length > 1 ? 'are' : 'is'} kept; tsvmm does not add ${wordText(d.name, d.value)} (${d.why})`;
  }

  /** Adds an argument for init after `--`, double-quoted when it holds a space. */
  addInitArg(arg: string): this {
    this.init.push(checkedWord(arg, undefined, 'init argument'));
    return this;
  }

  /** The line: kernel parameters, then `--` and the init arguments when there are any. */
  toString(): string {
    const words = this.params.map((p) => p.raw);
    if (this.init.length > 0) words.push('--', ...this.init.map((p) => p.raw));
    return words.join(' ');
  }

  /**
   * The line's bytes, checked against the kernel's limit (setup_header.cmdline_size, NUL
   * excluded: ParsedKernel.cmdlineLimit) and the cmdline area; the error names the length, the
   * limit and how many bytes tsvmm's own parameters take.
   */
  encode(limit = DEFAULT_CMDLINE_LIMIT): Uint8Array {
    const added = this.params.filter((p) => p.origin === 'vmm');
    const addedBytes = added.reduce((n, p) => n + encoder.encode(p.raw).byteLength + 1, 0);
    const note = added.length === 0 ? undefined : `${addedBytes} of them tsvmm's own (${[...new Set(added.map((p) => `${p.name}=`))].join(', ')})`;
    return encodeCmdline(this.toString(), limit, note);
  }
}

/**
 * The word for `name[=value]` as it goes on the line: double-quoted when it holds a space
 * (`name="a b"`, or `"name=a b"` when the name has one), after checking that the kernel splits it
 * back to exactly that name and value (an init argument: to that text, init/main.c
 * repair_env_string() joining what next_arg() split at the first `=`).
 */
function checkedWord(name: string, value: string | undefined, what: 'parameter' | 'init argument'): CmdlineParam {
  const text = wordText(name, value);
  const fail = (why: string): BootError => new BootError('bad-cmdline', `the ${what} ${JSON.stringify(text)} cannot go on the kernel command line: ${why}`);
  if (text.includes('"')) throw fail("the kernel's parser has no escape for a double quote (lib/cmdline.c next_arg()); leave it out");
  if (text.includes('\0')) throw fail("it holds a NUL byte, where the kernel's line would end; leave it out");
  if (what === 'parameter' && name === '') throw fail('a parameter needs a name');
  if (text === '--') throw fail('"--" is where the kernel parameters end and init\'s arguments begin');
  const spaced = (s: string): boolean => encoder.encode(s).some(isKernelSpace);
  const raw = spaced(name) || text === '' ? `"${text}"` : value !== undefined && spaced(value) ? `${name}="${value}"` : text;
  const words = splitWords(encoder.encode(raw));
  const w = words[0];
  const read = w === undefined ? undefined : { name: strictUtf8.decode(w.param), value: w.value === undefined ? undefined : strictUtf8.decode(w.value) };
  const same =
    words.length === 1 &&
    read !== undefined &&
    (what === 'init argument' ? initArgOf(read) === text : read.name === name && read.value === value);
  if (!same) {
    const as = words.length !== 1 || !read ? `${words.length} words` : `name ${JSON.stringify(read.name)}${read.value === undefined ? ' without a value' : ` and value ${JSON.stringify(read.value)}`}`;
    throw fail(`the kernel would not read it back as given but as ${as} (a parameter's name may not hold "=")`);
  }
  return what === 'init argument' && read ? { raw, name: read.name, value: read.value, origin: 'vmm' } : { raw, name, value, origin: 'vmm' };
}
