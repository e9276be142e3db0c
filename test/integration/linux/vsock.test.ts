// virtio-vsock in a real guest: Linux's virtio_transport talks to tsvmm's device, and host
// programs reach it through Firecracker's hybrid Unix socket (CONNECT <port> / OK <port>), or
// listen on <uds_path>_<port> for the guest's connections. The guest side is test/guest/vsockt.c
// on the tools disk; both sides check every byte of seeded streams (test/helpers/vsock-stream.ts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
/**
 * Connect/close cycles each way. Issue 21 asks 10,000; in the test bed each cycle costs tens of
 * ms of emulated machine, so the default there is 500 (TSVMM_VSOCK_CYCLES sets it anywhere).
 */
const CYCLES = Number.parseInt(process.env.TSVMM_VSOCK_CYCLES ?? '', 10) || (process.env.TSVMM_WHERE === 'testbed' ? 500 : 10_000);
/**
 * Bytes each way on each of the 64 connections of the load test. Issue 21 asks 64 MiB; through the
 * test bed's emulated machine (tens of MiB/s) the default there is 1 MiB: the 64 connections at
 * once stay, the volume shrinks (TSVMM_VSOCK_STRESS_MIB sets it anywhere).
 */
const STRESS_MIB = Number.parseFloat(process.env.TSVMM_VSOCK_STRESS_MIB ?? '') || (process.env.TSVMM_WHERE === 'testbed' ? 1 : 64);
const dir = mkdtempSync(join(tmpdir(), 'tsvmm-vsock-'));
let runs = 0;

/**
 * Boots with the tools disk and a vsock at a fresh uds_path; types `script` at the prompt, then
 * `exit` unless `opts.exit` is false (the test then ends the guest itself, through `type`).
 */
function boot(
  script: string,
  watch: (stdout: string, uds: string, type: (line: string) => void) => void,
  opts: { timeoutMs?: number; exit?: boolean; onSpawn?: (pid: number) => void } = {},
): { uds: string; result: Promise<TsvmmResult> } {
  if (!kernel || !tools) throw new Error('no guest kernel or tools disk');
  const uds = join(dir, `v${runs++}.sock`);
  const args = ['boot', kernel.bzImage, '--initrd', kernel.initramfs, '--cmdline', CMDLINE, '--disk', `${tools}:ro`, '--vsock', `${CID}:${uds}`, '--stats'];
  const typed = `${MOUNT_TOOLS}; ${script}\n${opts.exit === false ? '' : 'exit\n'}`;
  let spawned = false;
  const result = runTsvmm(args, [[/\/ # /, typed]], opts.timeoutMs ?? 240_000, (stdout, child) => {
    if (!spawned && child.pid !== undefined) {
      spawned = true;
      opts.onSpawn?.(child.pid);
    }
    watch(stdout, uds, (line) => child.stdin?.write(`${line}\n`));
  });
  return { uds, result };
}

/** A host program that connects to guest `port` and reads what comes; `ended` resolves at EOF or close. */
function hostOpen(uds: string, port: number): { socket: Socket; ok: Promise<void>; ended: Promise<void>; received: () => number } {
  const socket: Socket = connect({ path: uds, allowHalfOpen: true });
  let received = 0;
  let okSeen = false;
  const ok = new Promise<void>((res, rej) => {
    let line = '';
    socket.on('data', (d: Buffer) => {
      if (okSeen) {
        received += d.length;
        return;
      }
      line += d.toString('latin1');
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      if (!/^OK \d+$/.test(line.slice(0, nl))) return rej(new Error(`port ${port}: answer ${JSON.stringify(line)}`));
      okSeen = true;
      received += line.length - nl - 1;
      res();
    });
  });
  const ended = new Promise<void>((res) => {
    socket.on('end', () => res());
    socket.on('close', () => res());
  });
  socket.on('error', () => undefined);
  ok.catch(() => undefined);
  socket.write(`CONNECT ${port}\n`);
  return { socket, ok, ended, received: () => received };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve: () => void = () => undefined;
  let reject: (e: unknown) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Resolves `p`, or rejects after `ms` naming `what`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
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

  test('a host peer that vanishes mid-stream: the guest sees the reset; a guest process killed mid-stream: the host sees the end', async () => {
    let phase = 0;
    let typeLine: (line: string) => void = () => undefined;
    const holder = deferred();
    const { result } = boot('/mnt/t/vsockt listen 5000 -n 1 send 67108864 5; /mnt/t/vsockt listen 5001 -n 1 hold & echo HOLDER-STARTED', (stdout, uds, type) => {
      typeLine = type;
      if (phase === 0 && /VSOCKT-LISTENING port=5000/.test(stdout)) {
        phase = 1;
        // Reads a little of the guest's 64 MiB, then goes away.
        const h = hostOpen(uds, 5000);
        void h.ok.then(async () => {
          while (h.received() < 256 * 1024) await new Promise((r) => setTimeout(r, 20));
          h.socket.destroy();
        });
      }
      if (phase === 1 && /VSOCKT-LISTENING port=5001/.test(stdout)) {
        phase = 2;
        const h = hostOpen(uds, 5001);
        h.ok.then(() => {
          type('kill -9 $!; echo HOLDER-KILLED');
          return h.ended;
        }).then(holder.resolve, holder.reject);
      }
    }, { exit: false });
    await Promise.race([holder.promise, result.then(() => Promise.reject(new Error('the VM ended before the holder was killed')))]).catch(async (e: unknown) => {
      typeLine('exit');
      assert.unreachable(`${String(e)}${tail(await result)}`);
    });
    typeLine('exit');
    const r = await result;
    assert.match(r.stdout, /VSOCKT-RESULT conn=0 mode=send sent=\d+ received=0 ok=0 ms=[\d.]+ error=send: (Connection reset by peer|Broken pipe)/, tail(r));
    assert.match(r.stdout, /HOLDER-KILLED/, tail(r));
  });

  test('the guest reboots with connections open: the VM ends, each host connection sees its end, the socket file goes', async () => {
    const ends: Promise<void>[] = [];
    let started = false;
    const { uds, result } = boot('/mnt/t/vsockt listen 5000 -n 2 hold & echo HOLDERS-STARTED', (stdout, udsPath, type) => {
      if (started || !/VSOCKT-LISTENING port=5000/.test(stdout)) return;
      started = true;
      const hs = [hostOpen(udsPath, 5000), hostOpen(udsPath, 5000)];
      ends.push(...hs.map((h) => h.ended));
      void Promise.all(hs.map((h) => h.ok)).then(() => type('reboot -f'));
    }, { exit: false });
    const r = await result;
    assert.ok(started, tail(r));
    assert.is(r.code, 0, `the guest's reboot ends the VM with status 0${tail(r)}`);
    await within(Promise.all(ends), 10_000, 'both host connections ended');
    assert.not.ok(existsSync(uds), 'uds_path removed when the VM ended');
  });

  test('unbinding and rebinding the guest driver resets the device: its connection ends, a new one works', async () => {
    let phase = 0;
    const first = deferred();
    const second = deferred();
    const driver = '/sys/bus/virtio/drivers/vmw_vsock_virtio_transport';
    const { result } = boot('/mnt/t/vsockt listen 5000 -n 1 hold & echo HOLDER-STARTED', (stdout, uds, type) => {
      if (phase === 0 && /VSOCKT-LISTENING port=5000/.test(stdout)) {
        phase = 1;
        const h = hostOpen(uds, 5000);
        void h.ok.then(() => {
          type(`d=$(basename ${driver}/virtio*); echo $d > ${driver}/unbind; echo $d > ${driver}/bind; echo REBOUND; /mnt/t/vsockt listen 5001 -n 1 echo; exit`);
          return h.ended;
        }).then(first.resolve, first.reject);
      }
      if (phase === 1 && /VSOCKT-LISTENING port=5001/.test(stdout)) {
        phase = 2;
        hostEcho(uds, 5001, 65536, 42).done.then(() => second.resolve(), second.reject);
      }
    }, { exit: false });
    const r = await result;
    await within(first.promise, 1000, `the connection open at unbind ended${tail(r)}`);
    await within(second.promise, 1000, `a connection after rebind carried its bytes${tail(r)}`);
    assert.match(r.stdout, /REBOUND/, tail(r));
    assert.match(r.stdout, /VSOCKT-RESULT conn=0 mode=echo sent=65536 received=65536 ok=1/, tail(r));
  });

  test(`64 connections at once, ${STRESS_MIB} MiB each way on each, every byte checked: 32 opened by the host and echoed by the guest, 32 opened by the guest and echoed by the host`, async () => {
    const conns = 32;
    const bytes = Math.round(STRESS_MIB * 1024 * 1024);
    let started = false;
    const streams: HostStream[] = [];
    const t0 = performance.now();
    const { uds, result } = boot(`/mnt/t/vsockt listen 5000 -n ${conns} echo & /mnt/t/vsockt connect 2 6000 -c ${conns} duplex ${bytes} 500 500; wait`, (stdout, udsPath) => {
      if (started || !/VSOCKT-LISTENING port=5000/.test(stdout)) return;
      started = true;
      for (let i = 0; i < conns; i++) streams.push(hostEcho(udsPath, 5000, bytes, 2000 + i));
    }, { timeoutMs: 1_200_000 });
    // Up before the guest boots: its 32 connections find a listener.
    const server = await hostEchoServer(`${uds}_6000`);
    const r = await result;
    await new Promise<void>((res) => server.close(() => res()));
    assert.ok(started, `the guest never listened${tail(r)}`);
    const done = await Promise.allSettled(streams.map((st) => st.done));
    const failed = done.filter((d) => d.status === 'rejected').map((d) => String((d as PromiseRejectedResult).reason));
    assert.equal(failed, [], `${failed.join('; ')}${tail(r)}`);
    // The console's tail may not reach back to a failed connection's line: name them all.
    const errors = (r.stdout.match(/^VSOCKT-(ERROR|RESULT .* ok=0).*$/gm) ?? []).join('\n');
    assert.is((r.stdout.match(new RegExp(`VSOCKT-RESULT conn=\\d+ mode=echo sent=${bytes} received=${bytes} ok=1`, 'g')) ?? []).length, conns, `the guest echoed every host connection\n${errors}${tail(r)}`);
    assert.is((r.stdout.match(new RegExp(`VSOCKT-RESULT conn=\\d+ mode=duplex sent=${bytes} received=${bytes} ok=1`, 'g')) ?? []).length, conns, `every guest connection got its stream back\n${errors}${tail(r)}`);
    const s = (performance.now() - t0) / 1000;
    console.log(`  64 connections x ${STRESS_MIB} MiB each way: ${(128 * STRESS_MIB).toFixed(0)} MiB through the device in ${s.toFixed(1)} s (boot included)`);
  });

  test('a host peer that stops reading: the guest is held back, tsvmm memory stays bounded, and the stream resumes intact', async () => {
    const bytes = 64 * 1024 * 1024;
    const stallMs = 10_000;
    let pid: number | undefined;
    const rss = (): number => {
      const m = /VmRSS:\s+(\d+) kB/.exec(pid === undefined ? '' : readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    };
    const outcome = deferred();
    let rssBefore = 0;
    let rssPeak = 0;
    let receivedWhileStalled = 0;
    let started = false;
    const { result } = boot(`/mnt/t/vsockt listen 5000 -n 1 send ${bytes} 9`, (stdout, uds) => {
      if (started || !/VSOCKT-LISTENING port=5000/.test(stdout)) return;
      started = true;
      const socket: Socket = connect({ path: uds, allowHalfOpen: true });
      const checker = new StreamChecker(9);
      let header = '';
      let paused = false;
      socket.on('data', (d: Buffer) => {
        let data = d;
        if (!paused) {
          header += d.toString('latin1');
          const nl = header.indexOf('\n');
          if (nl < 0) return;
          // After the OK line: stop reading for stallMs, sampling tsvmm's memory.
          paused = true;
          socket.pause();
          data = Buffer.from(header.slice(nl + 1), 'latin1');
          rssBefore = rss();
          const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rss())), 250);
          setTimeout(() => {
            clearInterval(sampler);
            receivedWhileStalled = checker.received;
            socket.resume();
          }, stallMs);
        }
        if (!checker.feed(data)) outcome.reject(new Error(`byte ${checker.mismatchAt} differs`));
      });
      socket.on('end', () => {
        // The guest's sender drains to EOF before it ends: close our side too.
        socket.end();
        if (checker.received === bytes) outcome.resolve();
        else outcome.reject(new Error(`EOF after ${checker.received} bytes`));
      });
      socket.on('error', (e) => outcome.reject(e));
      socket.write('CONNECT 5000\n');
    }, { timeoutMs: 600_000, onSpawn: (p) => (pid = p) });
    const r = await result;
    await within(outcome.promise, 5000, `the whole stream arrived${tail(r)}`).catch((e: unknown) => assert.unreachable(`${String(e)}${tail(r)}`));
    const growth = rssPeak - rssBefore;
    console.log(`  stopped reader: tsvmm RSS ${(rssBefore / 1048576).toFixed(1)} MiB before, peak ${(rssPeak / 1048576).toFixed(1)} MiB over ${stallMs / 1000} s stopped (${(growth / 1048576).toFixed(1)} MiB more); ${receivedWhileStalled} bytes had reached the host reader`);
    assert.ok(rssBefore > 0 && rssPeak > 0, 'memory sampled');
    assert.ok(growth < 16 * 1024 * 1024, `tsvmm grew by ${growth} bytes while the reader was stopped: the guest's 64 MiB were not held back`);
    assert.match(r.stdout, new RegExp(`VSOCKT-RESULT conn=0 mode=send sent=${bytes} received=0 ok=1`), tail(r));
  });

  test(`${CYCLES} connect/close cycles from each side: no fd left open in tsvmm, no connection left in its table`, async () => {
    let pid: number | undefined;
    let fdsBefore = -1;
    let fdsAfter = -1;
    const hostCycles = deferred();
    let hostFailed = 0;
    let typeLine: (line: string) => void = () => undefined;
    const fds = (): number => (pid === undefined ? -1 : readdirSync(`/proc/${pid}/fd`).length);
    const { uds, result } = boot(`/mnt/t/vsockt cycle 2 6000 ${CYCLES}; /mnt/t/vsockt accept-cycle 5000 ${CYCLES}`, (stdout, udsPath, type) => {
      typeLine = type;
      if (fdsBefore < 0 && /VSOCKT|mnt/.test(stdout)) fdsBefore = fds();
      if (hostCycles && /VSOCKT-LISTENING port=5000/.test(stdout) && fdsAfter === -1) {
        fdsAfter = -2;
        void (async () => {
          for (let i = 0; i < CYCLES; i++) {
            const h = hostOpen(udsPath, 5000);
            try {
              await within(h.ok, 10_000, 'OK');
              h.socket.end();
              await within(h.ended, 10_000, 'end');
            } catch {
              hostFailed++;
            }
            h.socket.destroy();
          }
        })().then(hostCycles.resolve, hostCycles.reject);
      }
    }, { timeoutMs: 600_000, exit: false, onSpawn: (p) => (pid = p) });
    const server = await hostEchoServer(`${uds}_6000`);
    await Promise.race([hostCycles.promise, result.then(() => Promise.reject(new Error('the VM ended first')))]).catch(async (e: unknown) => {
      typeLine('exit');
      assert.unreachable(`${String(e)}${tail(await result)}`);
    });
    // Let the last close settle, then count.
    await new Promise((r) => setTimeout(r, 2000));
    fdsAfter = fds();
    typeLine('exit');
    const r = await result;
    await new Promise<void>((res) => server.close(() => res()));
    assert.match(r.stdout, new RegExp(`VSOCKT-CYCLES rounds=${CYCLES} failed=0`), tail(r));
    assert.is((r.stdout.match(/VSOCKT-CYCLES rounds=\d+ failed=0/g) ?? []).length, 2, `both guest loops clean${tail(r)}`);
    assert.is(hostFailed, 0, tail(r));
    assert.ok(fdsBefore > 0, 'fds counted before');
    assert.is(fdsAfter, fdsBefore, `tsvmm's open fds before and after the cycles${tail(r)}`);
    assert.match(r.stderr, /vsock: \{[^}]*"connections":0[,}]/, `no connection left in the table${tail(r)}`);
  });
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
