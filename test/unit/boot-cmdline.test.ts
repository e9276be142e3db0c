import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { BootError, Cmdline, MiB, setupBoot } from '../../src/boot/index.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { elfKernel } from '../helpers/elf-kernel.js';

// The kernel's own splitting, transcribed from C as an oracle independent of src/boot/cmdline.ts:
// lib/cmdline.c next_arg() and skip_spaces(), kernel/params.c parse_args() (stops at a bare
// `--`), init/main.c set_init_arg()/repair_env_string() (init's argv). A char* is an index into
// `mem`, a NUL-terminated copy of the line that next_arg() writes NULs into, as the kernel does.
const Q = 0x22;

function isspace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0; // lib/ctype.c: _S
}

function cstr(mem: Uint8Array, p: number): string {
  let e = p;
  while (mem[e] !== 0) e++;
  return Buffer.from(mem.subarray(p, e)).toString('latin1');
}

function skipSpaces(mem: Uint8Array, p: number): number {
  while (isspace(mem[p] as number)) p++;
  return p;
}

interface Arg {
  param: number;
  val: number | null;
  next: number;
  /** Observed, not in C: where the scan stopped (args + i), and whether it was inside quotes. */
  end: number;
  open: boolean;
}

function nextArg(mem: Uint8Array, args: number): Arg {
  let i: number;
  let equals = 0;
  let inQuote = false;
  let quoted = false;
  if (mem[args] === Q) {
    args++;
    inQuote = true;
    quoted = true;
  }
  for (i = 0; mem[args + i] !== 0; i++) {
    if (isspace(mem[args + i] as number) && !inQuote) break;
    if (equals === 0) {
      if (mem[args + i] === 0x3d) equals = i;
    }
    if (mem[args + i] === Q) inQuote = !inQuote;
  }
  const param = args;
  const end = args + i;
  let val: number | null;
  if (!equals) val = null;
  else {
    mem[args + equals] = 0;
    val = args + equals + 1;
    if (mem[val] === Q) {
      val++;
      if (mem[args + i - 1] === Q) mem[args + i - 1] = 0;
    }
  }
  if (quoted && i > 0 && mem[args + i - 1] === Q) mem[args + i - 1] = 0;
  if (mem[args + i] !== 0) {
    mem[args + i] = 0;
    args += i + 1;
  } else args += i;
  return { param, val, next: skipSpaces(mem, args), end, open: inQuote };
}

/** parse_args(): calls `each` per word; returns where the words after `--` start, or null. */
function parseArgs(mem: Uint8Array, args: number, each: (a: Arg) => void): number | null {
  args = skipSpaces(mem, args);
  while (mem[args] !== 0) {
    const a = nextArg(mem, args);
    args = a.next;
    if (a.val === null && cstr(mem, a.param) === '--') return args;
    each(a);
  }
  return null;
}

interface KernelView {
  params: { name: string; value: string | undefined }[];
  init: string[];
  /** The init arguments ended at a second `--` (the kernel dropped what followed). */
  secondDashes: boolean;
  openQuote: boolean;
}

/** What the kernel makes of `text`: parameters, init's argv (after its name); strings are UTF-8 decoded. */
function kernelView(text: string): KernelView {
  const bytes = Buffer.from(text, 'utf8');
  const mem = new Uint8Array(bytes.byteLength + 1);
  mem.set(bytes);
  const utf8 = (s: string): string => Buffer.from(s, 'latin1').toString('utf8');
  const view: KernelView = { params: [], init: [], secondDashes: false, openQuote: false };
  const after = parseArgs(mem, 0, (a) => {
    view.openQuote ||= a.open;
    view.params.push({ name: utf8(cstr(mem, a.param)), value: a.val === null ? undefined : utf8(cstr(mem, a.val)) });
  });
  if (after !== null) {
    const rest = parseArgs(mem, after, (a) => {
      view.openQuote ||= a.open;
      // repair_env_string(): param=val and param="val" become one "param=val" again.
      if (a.val !== null) {
        const len = cstr(mem, a.param).length;
        if (a.val === a.param + len + 1) mem[a.val - 1] = 0x3d;
        else if (a.val === a.param + len + 2) {
          mem[a.val - 2] = 0x3d;
          mem.copyWithin(a.val - 1, a.val, a.val + cstr(mem, a.val).length + 1);
        } else throw new Error('BUG() in repair_env_string');
      }
      view.init.push(utf8(cstr(mem, a.param)));
    });
    view.secondDashes = rest !== null;
  }
  return view;
}

/** Whether the kernel cut a multi-byte character in two at a 0xa0 byte somewhere in `text`. */
function splitsACharacter(text: string): boolean {
  const bytes = Buffer.from(text, 'utf8');
  const mem = new Uint8Array(bytes.byteLength + 1);
  mem.set(bytes);
  let bad = false;
  let args = skipSpaces(mem, 0);
  while (mem[args] !== 0) {
    const start = args;
    const a = nextArg(mem, args);
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, a.end));
    } catch {
      bad = true;
    }
    args = a.next;
  }
  return bad;
}

const paramsOf = (c: Cmdline): { name: string; value: string | undefined }[] => c.kernelParams.map((p) => ({ name: p.name, value: p.value }));

function throwsBootError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof BootError && e.reason === 'bad-cmdline' && re.test(e.message));
}

test('the oracle reads the kernel-parameters.rst examples as the kernel does', () => {
  assert.equal(kernelView('a param="spaces in here" "other=x y" -- one "two words" x="y z" "p=q r"'), {
    params: [
      { name: 'a', value: undefined },
      { name: 'param', value: 'spaces in here' },
      { name: 'other', value: 'x y' },
    ],
    init: ['one', 'two words', 'x=y z', 'p=q r'],
    secondDashes: false,
    openQuote: false,
  });
});

test('issue 27: tsvmm\'s root=, rw and device announcement go before the user\'s --, the init arguments stay as given', () => {
  const c = Cmdline.parse('reboot=k panic=1 pci=off console=ttyS0 init=/bin/bash -- -c "echo a; poweroff -f" one "two words" three');
  assert.is(c.addDefault({ name: 'root', value: '/dev/vda', why: 'ROOTFS' }), undefined);
  assert.is(c.addDefault({ name: 'rw', alternatives: ['ro'], why: 'ROOTFS is writable' }), undefined);
  c.add('virtio_mmio.device', '4K@0xd0000000:5');
  const line = c.toString();
  assert.is(line, 'reboot=k panic=1 pci=off console=ttyS0 init=/bin/bash root=/dev/vda rw virtio_mmio.device=4K@0xd0000000:5 -- -c "echo a; poweroff -f" one "two words" three');
  const k = kernelView(line);
  assert.equal(k.init, ['-c', 'echo a; poweroff -f', 'one', 'two words', 'three']);
  assert.equal(k.params.slice(-3), [
    { name: 'root', value: '/dev/vda' },
    { name: 'rw', value: undefined },
    { name: 'virtio_mmio.device', value: '4K@0xd0000000:5' },
  ]);
  assert.equal(c.initArgs, k.init);
});

test('a parameter the user set wins: not added twice, a differing one warned about; init arguments do not count', () => {
  const same = Cmdline.parse('root=/dev/vda quiet');
  assert.is(same.addDefault({ name: 'root', value: '/dev/vda', why: 'ROOTFS is /dev/vda' }), undefined);
  assert.is(same.toString(), 'root=/dev/vda quiet');
  const other = Cmdline.parse('root=/dev/vdb quiet');
  assert.is(other.addDefault({ name: 'root', value: '/dev/vda', why: 'ROOTFS is /dev/vda' }), "the command line's root=/dev/vdb is kept; tsvmm does not add root=/dev/vda (ROOTFS is /dev/vda)");
  assert.is(other.toString(), 'root=/dev/vdb quiet');
  const twice = Cmdline.parse('rw quiet ro');
  assert.match(twice.addDefault({ name: 'rw', alternatives: ['ro'], why: 'ROOTFS is writable' }) ?? '', /rw ro are kept; tsvmm does not add rw/);
  const init = Cmdline.parse('quiet -- root=/dev/vdb');
  assert.is(init.addDefault({ name: 'root', value: '/dev/vda', why: 'ROOTFS' }), undefined);
  assert.is(init.toString(), 'quiet root=/dev/vda -- root=/dev/vdb');
  const agrees = Cmdline.parse('console=tty0 console=ttyS0,115200');
  assert.is(agrees.addDefault({ name: 'console', value: 'ttyS0', agrees: (s) => s.some((p) => p.value?.startsWith('ttyS0') === true), why: 'x' }), undefined);
});

test('add: an identical parameter is not added twice (- and _ alike in names), a different value is', () => {
  const c = Cmdline.parse('virtio-mmio.device=4K@0xd0000000:5');
  c.add('virtio_mmio.device', '4K@0xd0000000:5').add('virtio_mmio.device', '4K@0xd0001000:6').add('virtio_mmio.device', '4K@0xd0001000:6');
  assert.is(c.toString(), 'virtio-mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6');
  assert.ok(c.has('virtio_mmio.device') && c.has('virtio-mmio.device'));
  assert.equal(c.kernelParams.map((p) => p.origin), ['user', 'vmm']);
});

test('quoting: values and init arguments with spaces are double-quoted; what the kernel cannot read back is refused', () => {
  const c = new Cmdline().add('dyndbg', 'file a.c +p').addInitArg('two words').addInitArg('').addInitArg('k=v w').addInitArg('a b=c');
  assert.is(c.toString(), 'dyndbg="file a.c +p" -- "two words" "" "k=v w" "a b=c"');
  assert.equal(kernelView(c.toString()).init, ['two words', '', 'k=v w', 'a b=c']);
  throwsBootError(() => new Cmdline().add('x', 'say "hi"'), /"x=say \\"hi\\"".*no escape for a double quote/);
  throwsBootError(() => new Cmdline().add('--'), /"--" is where the kernel parameters end/);
  throwsBootError(() => new Cmdline().addInitArg('--'), /"--" is where/);
  throwsBootError(() => new Cmdline().add(''), /needs a name/);
  throwsBootError(() => new Cmdline().add('a=b', 'c'), /would not read it back/);
  throwsBootError(() => new Cmdline().add('a', 'b\0c'), /NUL/);
});

test('parse refuses what the kernel would read differently from what it says', () => {
  throwsBootError(() => Cmdline.parse('root=/dev/vda\0init=/bin/sh'), /NUL byte at offset 13/);
  throwsBootError(() => Cmdline.parse('init=/bin/sh -- -c "echo hi'), /opens a double quote it does not close \(in "echo hi\)/);
  throwsBootError(() => Cmdline.parse('quiet -- a -- b'), /second "--" \(after the init arguments a\); the kernel stops passing words to init there/);
  throwsBootError(() => Cmdline.parse('a\u0160b quiet'), /0xa0/); // Š is C5 A0: the kernel splits it
  assert.equal(Cmdline.parse('"a\u0160b" quiet').kernelParams.map((p) => p.name), ['a\u0160b', 'quiet'], 'quoted, it holds');
});

test('the separator: "--" quoted counts too; a trailing -- with nothing after it is dropped', () => {
  const c = Cmdline.parse('a "--" b');
  assert.equal([paramsOf(c), c.initArgs], [[{ name: 'a', value: undefined }], ['b']]);
  assert.is(Cmdline.parse('  a\t--  ').toString(), 'a');
  assert.is(Cmdline.parse('-- x').toString(), '-- x');
});

test('encode: a line over the kernel\'s limit is refused naming its length, the limit and tsvmm\'s share', () => {
  const c = Cmdline.parse('x'.repeat(250));
  assert.is(c.encode(255).byteLength, 250);
  c.add('virtio_mmio.device', '4K@0xd0000000:5');
  throwsBootError(() => c.encode(255), /is 285 bytes, more than the 255 the kernel accepts \(setup_header.cmdline_size 255\); 35 of them tsvmm's own \(virtio_mmio.device=\); shorten it/);
  throwsBootError(() => Cmdline.parse('y'.repeat(2048)).encode(), /2048 bytes, more than the 2047/);
});

test('setupBoot takes a Cmdline: written as built, or refused before anything is written when over the kernel\'s limit', () => {
  const m = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 64 * MiB }]);
  const c = Cmdline.parse('console=ttyS0 -- a "b c"').add('virtio_mmio.device', '4K@0xd0000000:5');
  const boot = setupBoot(m, { kernel: elfKernel([0xf4]), cmdline: c, vcpus: 1 });
  const text = 'console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 -- a "b c"';
  assert.equal(boot.cmdline, { addr: 0x20000, size: text.length + 1 });
  assert.is(Buffer.from(m.slice(0x20000, text.length)).toString('latin1'), text);
  const fresh = GuestMemory.fromSizes([{ guestPhysAddr: 0, size: 64 * MiB }]);
  const long = Cmdline.parse('z'.repeat(2030)).add('virtio_mmio.device', '4K@0xd0000000:5');
  throwsBootError(() => setupBoot(fresh, { kernel: elfKernel([0xf4]), cmdline: long, vcpus: 1 }), /2065 bytes, more than the 2047 .*35 of them tsvmm's own/);
  assert.ok(fresh.slice(0, 2 * MiB).every((b) => b === 0), 'guest memory untouched');
});

// ---- properties ----

const NAMES = ['root', 'ro', 'rw', 'console', 'init', 'quiet', 'panic', 'virtio_mmio.device', 'virtio-mmio.device', 'foo.bar_baz', 'x'];
const valueChar = fc.constantFrom('a', 'b', '/', '=', '-', ',', '.', ':', '@', "'", '$', ' ', '  ', '\t', '\u0160', 'é');
const spaced = (s: string): boolean => /[\s\u00a0]/.test(s) || Buffer.from(s, 'utf8').includes(0xa0);

/** A user's word and what the kernel makes of it: bare, quoted whole, or with a quoted value. */
const userParam = fc
  .record({
    name: fc.oneof(fc.constantFrom(...NAMES), fc.stringMatching(/^[a-z][a-z0-9_.]{0,6}$/)),
    value: fc.option(fc.string({ unit: valueChar, maxLength: 12 }), { nil: undefined }),
    style: fc.constantFrom('plain', 'whole', 'value'),
  })
  .map(({ name, value, style }) => {
    const text = value === undefined ? name : `${name}=${value}`;
    const mustQuote = value !== undefined && (spaced(value) || value === '');
    const s = mustQuote && style === 'plain' ? 'value' : style;
    const raw = s === 'whole' ? `"${text}"` : s === 'value' && value !== undefined ? `${name}="${value}"` : text;
    return { raw, name, value };
  });

const initArg = fc
  .record({ arg: fc.string({ unit: valueChar, maxLength: 12 }), quote: fc.boolean() })
  .filter(({ arg }) => arg !== '--')
  .map(({ arg, quote }) => ({ raw: quote || spaced(arg) || arg === '' ? `"${arg}"` : arg, arg }));

const gap = fc.constantFrom(' ', '  ', '\t', ' \n ');

const userLine = fc
  .record({
    params: fc.array(userParam, { maxLength: 8 }),
    init: fc.array(initArg, { maxLength: 6 }),
    dashes: fc.boolean(),
    gaps: fc.array(gap, { minLength: 20, maxLength: 20 }),
  })
  .map(({ params, init, dashes, gaps }) => {
    const words = [...params.map((p) => p.raw), ...(dashes || init.length > 0 ? ['--', ...init.map((a) => a.raw)] : [])];
    const text = gaps[0] + words.map((w, i) => `${w}${gaps[(i + 1) % gaps.length]}`).join('');
    return { text, params: params.map(({ name, value }) => ({ name, value })), init: init.map((a) => a.arg) };
  });

test('property: a user line parses to the kernel\'s parameters and init arguments; tsvmm\'s land before --, the user\'s root= is not doubled', () => {
  fc.assert(
    fc.property(userLine, fc.boolean(), fc.integer({ min: 0, max: 3 }), (u, readOnly, devices) => {
      const k = kernelView(u.text);
      assert.equal(k.params, u.params, 'the oracle agrees with the generator');
      assert.equal(k.init, u.init);
      const c = Cmdline.parse(u.text);
      assert.equal(paramsOf(c), u.params);
      assert.equal(c.initArgs, u.init);

      const userRoot = u.params.filter((p) => p.name === 'root');
      const userMode = u.params.filter((p) => p.name === 'ro' || p.name === 'rw');
      c.addDefault({ name: 'root', value: '/dev/vda', why: 'ROOTFS' });
      c.addDefault({ name: readOnly ? 'ro' : 'rw', alternatives: ['ro', 'rw'], why: 'ROOTFS' });
      const announced = Array.from({ length: devices }, (_, i) => ({ name: 'virtio_mmio.device', value: `4K@0x${(0xd0000000 + i * 0x1000).toString(16)}:${5 + i}` }));
      for (const d of announced) c.add(d.name, d.value);

      const line = c.toString();
      const built = kernelView(line);
      assert.equal(built.init, u.init, 'init gets exactly the user\'s arguments');
      assert.equal(built.params.slice(0, u.params.length), u.params, 'the user\'s parameters first, in order');
      const added = built.params.slice(u.params.length);
      assert.equal(built.params.filter((p) => p.name === 'root'), userRoot.length > 0 ? userRoot : [{ name: 'root', value: '/dev/vda' }]);
      assert.equal(built.params.filter((p) => p.name === 'ro' || p.name === 'rw'), userMode.length > 0 ? userMode : [{ name: readOnly ? 'ro' : 'rw', value: undefined }]);
      const userDevices = u.params.filter((p) => p.name.replaceAll('-', '_') === 'virtio_mmio.device');
      for (const d of announced) {
        assert.ok(
          added.some((p) => p.name === d.name && p.value === d.value) || userDevices.some((p) => p.value === d.value),
          `${d.value} announced before --`,
        );
      }
      assert.equal(paramsOf(Cmdline.parse(line)), built.params, 'the built line parses back');
      assert.is(Cmdline.parse(line).toString(), line);
    }),
  );
});

const anyChar = fc.constantFrom('a', 'b', '=', '"', '-', '--', ' ', '\t', '\n', '\u00a0', '\u0160', 'é', '.');

test('property: any line either parses as the kernel reads it (and its rewrite means the same), or is refused for a reason the kernel shows', () => {
  fc.assert(
    fc.property(fc.string({ unit: anyChar, maxLength: 40 }), (text) => {
      const k = kernelView(text);
      let c: Cmdline;
      try {
        c = Cmdline.parse(text);
      } catch (e) {
        assert.ok(e instanceof BootError && e.reason === 'bad-cmdline', String(e));
        assert.ok(k.openQuote || k.secondDashes || splitsACharacter(text), `refused without cause: ${JSON.stringify(text)}: ${(e as Error).message}`);
        return;
      }
      assert.not.ok(k.openQuote || k.secondDashes, `accepted ${JSON.stringify(text)}`);
      assert.equal(paramsOf(c), k.params);
      assert.equal(c.initArgs, k.init);
      const again = kernelView(c.toString());
      assert.equal([again.params, again.init], [k.params, k.init], `rewritten as ${JSON.stringify(c.toString())}`);
    }),
  );
});

test('property: add and addInitArg either refuse a word or put it on the line so that the kernel reads it back as given', () => {
  const word = fc.string({ unit: anyChar, maxLength: 12 });
  fc.assert(
    fc.property(word, fc.option(word, { nil: undefined }), word, (name, value, arg) => {
      const c = Cmdline.parse('quiet -- first');
      try {
        c.add(name, value);
        const k = kernelView(c.toString());
        assert.equal(k.params.at(-1), { name, value });
        assert.equal(k.init, ['first']);
      } catch (e) {
        assert.ok(e instanceof BootError && e.reason === 'bad-cmdline', String(e));
        const plain = /^[a-z._-]+$/.test(name) && name !== '--' && (value === undefined || !value.includes('"'));
        assert.not.ok(plain, `refused ${JSON.stringify([name, value])}: ${e.message}`);
      }
      try {
        c.addInitArg(arg);
        assert.equal(kernelView(c.toString()).init.at(-1), arg);
      } catch (e) {
        assert.ok(e instanceof BootError && e.reason === 'bad-cmdline', String(e));
        assert.ok(arg.includes('"') || arg === '--', `refused init argument ${JSON.stringify(arg)}: ${e.message}`);
      }
    }),
  );
});

test('property: encode refuses exactly the lines longer than the limit, naming both', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2100 }), fc.integer({ min: 1, max: 2047 }), (n, limit) => {
      const c = Cmdline.parse('k'.repeat(n));
      if (n <= limit) assert.is(c.encode(limit).byteLength, n);
      else throwsBootError(() => c.encode(limit), new RegExp(`is ${n} bytes, more than the ${limit} `));
    }),
  );
});

test.run();
