// vmm/fd-watcher.ts: readiness of pipes (a FIFO's two ends) and eventfds on the event loop, through
// the addon's FdWatcher (no KVM needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FdWatcher, type Readiness } from '../../src/vmm/fd-watcher.js';
import { EventFd } from '../../src/vmm/eventfd.js';
import { DisposedError, SyscallError } from '../../src/vmm/errors.js';

interface Fifo {
  /** O_RDONLY | O_NONBLOCK */
  reader: number;
  /** O_WRONLY | O_NONBLOCK; -1 once closed by the test. */
  writer: number;
}

/** Runs body with both ends of a fresh FIFO, non-blocking; closes what is left open afterwards. */
async function withFifo(body: (p: Fifo) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-fdwatch-'));
  const path = join(dir, 'fifo');
  const fifo: Fifo = { reader: -1, writer: -1 };
  try {
    const r = spawnSync('mkfifo', [path], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${r.error?.message ?? r.stderr}`);
    // The read end first: a non-blocking open of the write end fails (ENXIO) while no one reads.
    fifo.reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    fifo.writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    await body(fifo);
  } finally {
    if (fifo.writer >= 0) closeSync(fifo.writer);
    if (fifo.reader >= 0) closeSync(fifo.reader);
    rmSync(dir, { recursive: true, force: true });
  }
}

const pause = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** How long a test waits to see that nothing is reported (a late report would fail a later check). */
const QUIET_MS = 50;

/** Collects what a callback reports; next() waits for the next report. */
class Reports<T> {
  readonly seen: T[] = [];
  private waiter: ((v: T) => void) | undefined;

  readonly push = (v: T): void => {
    this.seen.push(v);
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(v);
  };

  /** The next report from now; rejects after a deadline so a lost wake-up fails instead of hanging. */
  next(what: string, ms = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      this.waiter = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
    });
  }
}

/** Reads until EAGAIN (or end of file); the byte count. */
function drainFd(fd: number): number {
  const buf = Buffer.alloc(65536);
  let total = 0;
  for (;;) {
    try {
      const n = readSync(fd, buf);
      if (n === 0) return total;
      total += n;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return total;
      throw e;
    }
  }
}

/** Writes until the pipe is full (EAGAIN); the byte count. */
function fill(fd: number): number {
  const chunk = Buffer.alloc(4096, 0x5a);
  let total = 0;
  for (;;) {
    try {
      total += writeSync(fd, chunk);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return total;
      throw e;
    }
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

test('readable: reported once data is there, and no more once it is read', () =>
  withFifo(async ({ reader, writer }) => {
    const reports = new Reports<Readiness>();
    const w = FdWatcher.readiness(reader, { readable: true }, reports.push);
    try {
      await pause(QUIET_MS);
      assert.is(reports.seen.length, 0, 'an empty pipe is not readable');
      const got = reports.next('readable report');
      writeSync(writer, 'hello');
      assert.equal(await got, { readable: true, writable: false, disconnected: false });
      assert.is(drainFd(reader), 5);
      const before = reports.seen.length;
      await pause(QUIET_MS);
      assert.is(reports.seen.length, before, 'a drained pipe is not reported again');
    } finally {
      w.close();
    }
  }));

test('writable: a full pipe is not reported; emptying it by the reader is', () =>
  withFifo(async ({ reader, writer }) => {
    assert.ok(fill(writer) > 0);
    const reports = new Reports<Readiness>();
    const w = FdWatcher.readiness(writer, { writable: true }, reports.push);
    try {
      await pause(QUIET_MS);
      assert.is(reports.seen.length, 0, 'a full pipe is not writable');
      const got = reports.next('writable report');
      assert.ok(drainFd(reader) > 0);
      assert.equal(await got, { readable: false, writable: true, disconnected: false });
    } finally {
      w.close();
    }
  }));

test('setInterest: nothing is reported while paused though data waits; resuming reports it', () =>
  withFifo(async ({ reader, writer }) => {
    const reports = new Reports<Readiness>();
    const w = FdWatcher.readiness(reader, { readable: true }, reports.push);
    try {
      w.setInterest({});
      writeSync(writer, 'x');
      await pause(QUIET_MS);
      assert.is(reports.seen.length, 0, 'paused');
      w.setInterest({ readable: false, writable: false });
      await pause(QUIET_MS);
      assert.is(reports.seen.length, 0, 'still paused (explicit false)');
      const got = reports.next('report after resuming');
      w.setInterest({ readable: true });
      assert.equal(await got, { readable: true, writable: false, disconnected: false });
      // Level-triggered: unread data is reported again on later turns of the loop.
      await reports.next('second report of unread data');
      // Only what is ready is reported: a pipe's read end is never writable.
      const both = reports.next('report with writable watched too');
      w.setInterest({ readable: true, writable: true });
      assert.equal(await both, { readable: true, writable: false, disconnected: false });
    } finally {
      w.close();
    }
  }));

test('disconnect: closing the write end reports readable and disconnected (EPOLLHUP), disconnected only when asked for', () =>
  withFifo(async (fifo) => {
    const reports = new Reports<Readiness>();
    const w = FdWatcher.readiness(fifo.reader, { readable: true, disconnect: true }, reports.push);
    try {
      await pause(QUIET_MS);
      assert.is(reports.seen.length, 0);
      const got = reports.next('hang-up report');
      closeSync(fifo.writer);
      fifo.writer = -1;
      assert.equal(await got, { readable: true, writable: false, disconnected: true });
      // Without disconnect in the interest the hang-up reads as readable alone (read gives 0: EOF).
      const plain = reports.next('readable report of the hang-up');
      w.setInterest({ readable: true });
      assert.equal(await plain, { readable: true, writable: false, disconnected: false });
      assert.is(drainFd(fifo.reader), 0, 'end of file');
    } finally {
      w.close();
    }
  }));

test('eventfd counter: signals between two turns of the loop are summed; every signal counted once', async () => {
  const efd = new EventFd();
  const counts = new Reports<number>();
  const w = FdWatcher.eventfdCounter(efd.fd, counts.push);
  try {
    const first = counts.next('first count');
    efd.signal(2);
    efd.signal(3);
    assert.is(await first, 5, 'both signals before the loop ran: one call, 5');
    const second = counts.next('second count');
    efd.signal(7n);
    assert.is(await second, 7);
    await pause(QUIET_MS);
    assert.equal(counts.seen, [5, 7]);
    assert.is(efd.drain(), 0n, 'the watcher drained the counter');
  } finally {
    w.close();
    efd.dispose();
  }
});

test('eventfd counter: a wake-up that finds the counter already read calls nothing', () =>
  withFifo(async ({ reader, writer }) => {
    // Both fds become ready before the loop polls; the pipe's watcher (registered first, so
    // first in epoll's ready list) drains the eventfd, and the counter watcher then reads EAGAIN.
    const efd = new EventFd();
    const counts = new Reports<number>();
    const drained = new Reports<bigint>();
    const pipe = FdWatcher.readiness(reader, { readable: true }, () => {
      drainFd(reader);
      drained.push(efd.drain());
    });
    const counter = FdWatcher.eventfdCounter(efd.fd, counts.push);
    try {
      await pause(QUIET_MS); // both registered with epoll, in that order
      const got = drained.next('pipe report');
      writeSync(writer, 'x');
      efd.signal(4);
      assert.is(await got, 4n, 'the pipe callback took the count');
      await pause(QUIET_MS);
      assert.equal(counts.seen, [], 'the counter watcher woke to an empty counter and called nothing');
      const later = counts.next('later count');
      efd.signal(1);
      assert.is(await later, 1, 'later signals are counted from zero');
    } finally {
      pipe.close();
      counter.close();
      efd.dispose();
    }
  }));

test('close() inside the callback: no further calls, though the fd stays ready', () =>
  withFifo(async ({ reader, writer }) => {
    const reports = new Reports<Readiness>();
    const w = FdWatcher.readiness(reader, { readable: true }, (r) => {
      w.close();
      w.close();
      reports.push(r);
    });
    const got = reports.next('report');
    writeSync(writer, 'unread');
    await got;
    await pause(QUIET_MS);
    assert.is(reports.seen.length, 1);
    assert.ok(w.closed);

    const efd = new EventFd();
    try {
      const counts = new Reports<number>();
      const c = FdWatcher.eventfdCounter(efd.fd, (n) => {
        c.close();
        efd.signal(); // would be reported, were the watcher still open
        counts.push(n);
      });
      const one = counts.next('count');
      efd.signal();
      assert.is(await one, 1);
      await pause(QUIET_MS);
      assert.is(counts.seen.length, 1);
      assert.is(efd.drain(), 1n, 'the signal made after close() was left in the counter');
    } finally {
      efd.dispose();
    }
  }));

test('close() twice is fine; a closed watcher refuses setInterest and ignores ref/unref', () =>
  withFifo(async ({ reader }) => {
    const w = FdWatcher.readiness(reader, { readable: true }, () => undefined);
    w.close();
    w.close();
    w.dispose();
    w.ref();
    w.unref();
    assert.throws(() => w.setInterest({ readable: true }), (e: unknown) => e instanceof DisposedError);
    fstatSync(reader); // still open: the watcher never closes the fd
    // The fd can be watched again at once.
    FdWatcher.readiness(reader, { readable: true }, () => undefined).close();
  }));

test('no fd is closed or leaked: many watchers made and closed leave /proc/self/fd as it was', () =>
  withFifo(async ({ reader, writer }) => {
    const efds = Array.from({ length: 20 }, () => new EventFd());
    try {
      const before = openFds();
      for (let round = 0; round < 50; round++) {
        const ws = [FdWatcher.readiness(reader, { readable: true }, () => undefined), FdWatcher.readiness(writer, { writable: true }, () => undefined)];
        for (const e of efds) ws.push(FdWatcher.eventfdCounter(e.fd, () => undefined));
        if (round % 10 === 0) await pause(1); // let libuv register them with epoll before they close
        for (const w of ws) w.close();
      }
      await pause(QUIET_MS); // uv_close callbacks run
      assert.is(openFds(), before);
      for (const fd of [reader, writer, ...efds.map((e) => e.fd)]) fstatSync(fd);
      efds[0]!.signal(2);
      assert.is(efds[0]!.drain(), 2n, 'the eventfds still work');
    } finally {
      for (const e of efds) e.dispose();
    }
  }));

test('refusals are typed errors with errno: a regular file (EPERM), a second watcher (EEXIST), a closed fd (EBADF), bad arguments', () =>
  withFifo(async ({ reader }) => {
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-fdwatch-file-'));
    try {
      writeFileSync(join(dir, 'f'), 'x');
      const file = openSync(join(dir, 'f'), 'r');
      try {
        assert.throws(
          () => FdWatcher.readiness(file, { readable: true }, () => undefined),
          (e: unknown) => e instanceof SyscallError && e.code === 'EPERM' && e.syscall === 'uv_poll_init' && /epoll cannot watch/.test(e.message),
        );
      } finally {
        closeSync(file);
      }
      const w = FdWatcher.readiness(reader, { readable: true }, () => undefined);
      try {
        assert.throws(
          () => FdWatcher.readiness(reader, { readable: true }, () => undefined),
          (e: unknown) => e instanceof SyscallError && e.code === 'EEXIST' && /already has a watcher/.test(e.message),
        );
      } finally {
        w.close();
      }
      const efd = new EventFd();
      const stale = efd.fd;
      efd.dispose();
      assert.throws(
        () => FdWatcher.eventfdCounter(stale, () => undefined),
        (e: unknown) => e instanceof SyscallError && e.code === 'EBADF' && e.errno === 9,
      );
      assert.throws(() => FdWatcher.readiness(-1, { readable: true }, () => undefined), RangeError);
      const live = new EventFd();
      try {
        const c = FdWatcher.eventfdCounter(live.fd, () => undefined);
        assert.throws(() => c.setInterest({ writable: true }), (e: unknown) => e instanceof RangeError && /readable only/.test(e.message));
        c.setInterest({}); // pausing a counter is fine
        c.close();
      } finally {
        live.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('an error while watching (EPOLLERR: the reader went away) goes to onError as a SyscallError; watching stops', () =>
  withFifo(async (fifo) => {
    fill(fifo.writer); // full, so not writable: the next event is the error alone
    const errors = new Reports<Error>();
    const ready = new Reports<Readiness>();
    const w = FdWatcher.readiness(fifo.writer, { writable: true }, ready.push, { onError: errors.push });
    try {
      await pause(QUIET_MS);
      const got = errors.next('error report');
      closeSync(fifo.reader);
      fifo.reader = -1;
      const e = await got;
      assert.ok(e instanceof SyscallError && e.syscall === 'uv_poll' && e.code === 'EBADF', String(e));
      await pause(QUIET_MS);
      assert.is(errors.seen.length, 1, 'reported once: libuv stopped the handle');
      assert.equal(ready.seen, []);
    } finally {
      w.close();
    }
  }));

test('without onError, an error while watching is thrown from the event loop as a SyscallError', () =>
  withFifo(async (fifo) => {
    fill(fifo.writer);
    const w = FdWatcher.readiness(fifo.writer, { writable: true }, () => undefined);
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const uncaught = new Reports<unknown>();
    process.on('uncaughtException', uncaught.push);
    try {
      await pause(QUIET_MS);
      const got = uncaught.next('uncaught exception');
      closeSync(fifo.reader);
      fifo.reader = -1;
      const e = await got;
      assert.ok(e instanceof SyscallError && e.syscall === 'uv_poll' && e.errno === 9, String(e));
    } finally {
      w.close();
      process.removeListener('uncaughtException', uncaught.push);
      for (const l of listeners) process.on('uncaughtException', l);
    }
  }));

/**
 * The exit status of a child node process that watches a never-signalled eventfd: 0 when the
 * event loop ran dry, 3 when something still held it open 300 ms later (an unref()ed timer
 * exits with 3 then; being unref()ed, the timer alone holds nothing open).
 */
function childWatching(unref: boolean): number | null {
  const mod = (name: string): string => JSON.stringify(new URL(`../../src/vmm/${name}.js`, import.meta.url).href);
  const script = `
    const { FdWatcher } = await import(${mod('fd-watcher')});
    const { EventFd } = await import(${mod('eventfd')});
    const w = FdWatcher.eventfdCounter(new EventFd().fd, () => {});
    ${unref ? 'w.unref();' : ''}
    setTimeout(() => process.exit(3), 300).unref();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 && r.status !== 3) throw new Error(`child failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.status;
}

test('ref/unref: a watcher holds the event loop open unless unref()ed', () => {
  assert.is(childWatching(false), 3, 'a watcher holds the event loop open');
  assert.is(childWatching(true), 0, 'an unref()ed watcher lets the process exit');
});

test.run();
