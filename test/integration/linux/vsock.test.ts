// virtio-vsock in a real guest: Linux's virtio_transport talks to tsvmm's device, and host
// programs reach it through Firecracker's hybrid Unix socket (CONNECT <port> / OK <port>), or
// listen on <uds_path>_<port> for the guest's connections. The guest side is test/guest/vsockt.c
// on the tools disk; both sides check every byte of seeded streams (test/helpers/vsock-stream.ts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKernel } from '../../helpers/guest-kernel.js';
import { guestTools, MOUNT_TOOLS } from '../../helpers/guest-tools.js';
import { whereLabel } from '../../helpers/where.js';
import { runTsvmm, tail, type TsvmmResult } from '../../helpers/tsvmm-process.js';
import { StreamChecker, StreamWriter } from '../../helpers/vsock-stream.js';

const test = suite(`virtio-vsock [${whereLabel()}]`);
const kernel = guestKernel();
const tools = guestTools();
const CMDLINE = 'reboot=k panic=1 pci=off quiet console=ttyS0 tsvmm.init=shell';
const CID = 3;
const dir = mkdtempSync(join(tmpdir(), 'tsvmm-vsock-'));
let runs = 0;

/** Boots with the tools disk and a vsock at a fresh uds_path; types `script` (then exit) at the prompt. */
function boot(script: string, watch: (stdout: string, uds: string) => void, timeoutMs = 240_000): { uds: string; result: Promise<TsvmmResult> } {
  if (!kernel || !tools) throw new Error('no guest kernel or tools disk');
  const uds = join(dir, `v${runs++}.sock`);
  const args = ['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cmdline', CMDLINE, '--disk', `${tools}:ro`, '--vsock', `${CID}:${uds}`, '--stats'];
  const result = runTsvmm(args, [[/\/ # /, `${MOUNT_TOOLS}; ${script}\nexit\n`]], timeoutMs, (stdout) => watch(stdout, uds));
  return { uds, result };
}

interface HostStream {
  /** Resolves when the VMM answered, with the OK line's port. */
  ok: Promise<number>;
  /** Resolves when the whole echo came back and matched, with the bytes; rejects on a mismatch or an early end. */
  done: Promise<number>;
}

/** A host program: CONNECT to the guest's `port`, send `bytes` of stream `seed`, expect them echoed. */
function hostEcho(uds: string, port: number, bytes: number, seed: number): HostStream {
  const socket: Socket = connect({ path: uds, allowHalfOpen: true });
  const writer = new StreamWriter(seed, bytes);
  const checker = new StreamChecker(seed);
  let line = '';
  let established = false;
  let okResolve: (p: number) => void = () => undefined;
  let fail: (e: Error) => void = () => undefined;
  const ok = new Promise<number>((res, rej) => {
    okResolve = res;
    fail = rej;
  });
  const done = new Promise<number>((res, rej) => {
    const pump = (): void => {
      while (!writer.done) if (!socket.write(writer.chunk())) return void socket.once('drain', pump);
      socket.end();
    };
    socket.on('data', (d: Buffer) => {
      let data = d;
      if (!established) {
        line += d.toString('latin1');
        const nl = line.indexOf('\n');
        if (nl < 0) return;
        const m = /^OK (\d+)$/.exec(line.slice(0, nl));
        if (!m) return rej(new Error(`port ${port}: handshake answer ${JSON.stringify(line)}`));
        established = true;
        okResolve(Number(m[1]));
        data = Buffer.from(line.slice(nl + 1), 'latin1');
        pump();
      }
      if (!checker.feed(data)) rej(new Error(`port ${port}: echoed byte ${checker.mismatchAt} differs`));
    });
    socket.on('end', () => (checker.received === bytes ? res(bytes) : rej(new Error(`port ${port}: EOF after ${checker.received} of ${bytes} echoed bytes`))));
    socket.on('close', () => {
      if (!established) fail(new Error(`port ${port}: closed without OK (${JSON.stringify(line)})`));
      rej(new Error(`port ${port}: closed after ${checker.received} bytes`));
    });
    socket.on('error', () => undefined);
  });
  socket.write(`CONNECT ${port}\n`);
  // Awaited (or not) later: a failure before then must not be an unhandled rejection.
  ok.catch(() => undefined);
  done.catch(() => undefined);
  return { ok, done };
}

/** A host listener at `<uds>_<port>` that echoes each connection. */
function hostEchoServer(path: string): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.pipe(s);
    s.on('error', () => undefined);
  });
  return new Promise((res) => server.listen(path, () => res(server)));
}

if (!kernel || !tools) {
  test('guest kernel and tools disk present', () => {
    assert.unreachable(`missing: ${!kernel ? 'the kernels/ guest (npm run kernel)' : 'the tools disk (bash test/guest/build.sh)'}`);
  });
} else {
  test('host to guest: 8 connections through CONNECT/OK, 2 MiB each way at once per connection, every byte checked', async () => {
    const conns = 8;
    const size = 2 * 1024 * 1024;
    let started = false;
    const streams: HostStream[] = [];
    const { result } = boot(`/mnt/t/vsockt listen 5000 -n ${conns} echo; echo GUEST-DONE`, (stdout, uds) => {
      if (started || !/VSOCKT-LISTENING port=5000/.test(stdout)) return;
      started = true;
      for (let i = 0; i < conns; i++) streams.push(hostEcho(uds, 5000, size, 1000 + i));
    });
    const r = await result;
    assert.ok(started, `the guest never listened${tail(r)}`);
    const done = await Promise.allSettled(streams.map((s) => s.done));
    const failed = done.filter((d) => d.status === 'rejected').map((d) => String((d as PromiseRejectedResult).reason));
    assert.equal(failed, [], `${failed.join('; ')}${tail(r)}`);
    assert.is((r.stdout.match(/VSOCKT-RESULT conn=\d+ mode=echo sent=2097152 received=2097152 ok=1/g) ?? []).length, conns, tail(r));
    assert.match(r.stdout, /VSOCKT-DONE ok=1/, tail(r));
    assert.is(r.code, 0, tail(r));
  });

  test('guest to host: 4 connections to <uds_path>_6000, 1 MiB each way, checked by the guest', async () => {
    const { uds, result } = boot('/mnt/t/vsockt connect 2 6000 -c 4 duplex 1048576 77 77; echo GUEST-DONE', () => undefined);
    // Up long before the guest has booted and connects.
    const server = await hostEchoServer(`${uds}_6000`);
    const r = await result;
    await new Promise<void>((res) => server.close(() => res()));
    assert.is((r.stdout.match(/VSOCKT-RESULT conn=\d+ mode=duplex sent=1048576 received=1048576 ok=1/g) ?? []).length, 4, tail(r));
    assert.match(r.stdout, /VSOCKT-DONE ok=1/, tail(r));
  });

  test('refusals: CONNECT to a guest port nobody listens on closes without OK; a guest connect to a host port nobody listens on is refused', async () => {
    let outcome: Promise<string> | undefined;
    const { result } = boot('/mnt/t/vsockt listen 5000 -n 1 echo & sleep 1; /mnt/t/vsockt connect 2 6999 echo; echo GUEST-CONNECT-DONE; wait', (stdout, uds) => {
      if (outcome || !/VSOCKT-LISTENING port=5000/.test(stdout)) return;
      // Port 5001 has no listener in the guest: the VMM closes the connection without an OK line.
      outcome = new Promise((res) => {
        const s = connect({ path: uds, allowHalfOpen: true });
        let text = '';
        s.on('data', (d: Buffer) => (text += d.toString()));
        s.on('end', () => {
          res(text);
          s.destroy();
        });
        s.on('error', () => res(`error ${text}`));
        s.write('CONNECT 5001\n');
      });
      // Then let the listening guest program finish with one real connection.
      void outcome.then(() => hostEcho(uds, 5000, 1000, 5).done.catch(() => undefined));
    });
    const r = await result;
    assert.ok(outcome, `the guest never listened${tail(r)}`);
    assert.is(await outcome, '', 'no OK line for a refused port');
    assert.match(r.stdout, /VSOCKT-ERROR connect 0 to 2:6999: (Connection reset by peer|Connection refused)/, tail(r));
  });
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
