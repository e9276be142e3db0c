// Firecracker's hybrid vsock backend (its docs/vsock.md), the way Kata's runtime reaches its
// agent: the VMM listens on a Unix socket (uds_path). A host program connects there and writes
// `CONNECT <port>\n`; the VMM opens a stream to that guest port and, once the guest accepts,
// answers `OK <host_port>\n` (host_port: the host-side vsock port the VMM chose); then bytes flow
// both ways. A guest connecting to the host (CID 2) on port P is forwarded to the Unix socket
// `<uds_path>_<P>` when something listens there, and refused (RST) when nothing does.
//
// Flow control: a host socket is read only while the muxer takes its bytes (pauseReading /
// resumeReading), and the guest's bytes are written to a host socket only while its write buffer
// is below Node's high-water mark (deliver() takes nothing after that until 'drain'), so a slow
// host reader holds the guest back by credit instead of growing VMM memory.
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { CloseReason, GuestConnectDecision, HostConnectResult, VsockBackend } from './muxer.js';

/** The muxer calls a backend makes (the device runs them and then serves its queues). */
export interface VsockHostPort {
  hostConnect(guestPort: number): HostConnectResult;
  acceptGuestConnection(connId: number): boolean;
  refuseGuestConnection(connId: number): boolean;
  hostData(connId: number, bytes: Uint8Array): number;
  hostWritable(connId: number): void;
  hostEof(connId: number): void;
  hostClose(connId: number): void;
  hostReset(connId: number): void;
}

export class VsockBackendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VsockBackendError';
  }
}

/** `CONNECT 4294967295\n` is 19 bytes; a longer first line is not a handshake. */
const MAX_HANDSHAKE_LINE = 32;
/** A host connection that has not sent its whole CONNECT line by then is closed. */
export const HANDSHAKE_TIMEOUT_MS = 5000;
/** Host connections still in their handshake at once; more are closed at once. */
const MAX_PENDING_HANDSHAKES = 64;
const CONNECT_LINE = /^CONNECT ([0-9]{1,10})\n$/;

interface HostConn {
  readonly socket: Socket;
  /** 'connecting': waiting for the guest (host-initiated) or for the Unix socket (guest-initiated). */
  state: 'connecting' | 'open' | 'closed';
  /** Host bytes the muxer has not taken yet, oldest first; the socket is paused while any wait. */
  pending: Buffer[];
  /** deliver() refused bytes because the socket's buffer was full: tell the muxer on 'drain'. */
  waitingForDrain: boolean;
  /** Host-initiated: the OK line to send once the guest accepts. */
  readonly okLine?: string;
  /** The host's EOF or clean close, told to the muxer only after `pending` went to it. */
  after?: 'eof' | 'close';
}

/** A type (not an interface) so that it reads as a record of numbers for metrics. */
export type HybridBackendCounters = {
  hostConnections: number;
  badHandshakes: number;
  handshakeTimeouts: number;
  refusedHostConnects: number;
  guestConnections: number;
  refusedGuestConnects: number;
};

export class HybridVsockBackend implements VsockBackend {
  private port: VsockHostPort | undefined;
  private readonly conns = new Map<number, HostConn>();
  private readonly handshakes = new Set<Socket>();
  private closed = false;
  readonly counters: HybridBackendCounters = { hostConnections: 0, badHandshakes: 0, handshakeTimeouts: 0, refusedHostConnects: 0, guestConnections: 0, refusedGuestConnects: 0 };

  private constructor(
    readonly udsPath: string,
    private readonly server: Server,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Listens on `udsPath` (mode 0600). A stale socket file there is replaced; anything else that
   * exists there is an error, as is a path the VMM cannot bind.
   */
  static async listen(udsPath: string, log: (line: string) => void = () => {}): Promise<HybridVsockBackend> {
    removeStaleSocket(udsPath);
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const backend = new HybridVsockBackend(udsPath, server, log);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new VsockBackendError(`vsock: cannot listen on ${udsPath}: ${e.message}`, { cause: e }));
      server.once('error', onError);
      // bind(2) happens inside listen(): a umask of 0177 makes the socket 0600 from its creation.
      const umask = process.umask(0o177);
      try {
        server.listen(udsPath, () => {
          server.off('error', onError);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    chmodSync(udsPath, 0o600);
    server.on('connection', (socket: Socket) => backend.onHostConnection(socket));
    server.on('error', (e) => log(`vsock listener: ${e.message}`));
    return backend;
  }

  /** Connects the backend to the muxer calls it makes (once, before any connection arrives). */
  attach(port: VsockHostPort): void {
    this.port = port;
  }

  /** Open host-side connections (for tests and metrics). */
  get openConnections(): number {
    return this.conns.size;
  }

  // --- host-initiated connections ---------------------------------------------------------------

  private onHostConnection(socket: Socket): void {
    if (this.closed || !this.port || this.handshakes.size >= MAX_PENDING_HANDSHAKES) {
      socket.destroy();
      return;
    }
    this.counters.hostConnections++;
    this.handshakes.add(socket);
    let line = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.counters.handshakeTimeouts++;
      finish();
      socket.destroy();
    }, HANDSHAKE_TIMEOUT_MS);
    const finish = (): void => {
      clearTimeout(timer);
      this.handshakes.delete(socket);
      socket.off('data', onData);
      socket.off('close', finish);
    };
    const onData = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(0x0a);
      if (nl < 0) {
        if (line.length > MAX_HANDSHAKE_LINE) this.badHandshake(socket, finish);
        return;
      }
      const m = CONNECT_LINE.exec(line.subarray(0, nl + 1).toString('latin1'));
      const guestPort = m ? Number(m[1]) : Number.NaN;
      if (nl + 1 > MAX_HANDSHAKE_LINE || !(guestPort <= 0xffff_ffff)) {
        this.badHandshake(socket, finish);
        return;
      }
      finish();
      socket.pause();
      this.startHostConnection(socket, guestPort, line.subarray(nl + 1));
    };
    socket.on('data', onData);
    socket.on('close', finish);
    socket.on('error', () => undefined); // 'close' follows
    socket.resume();
  }

  private badHandshake(socket: Socket, finish: () => void): void {
    this.counters.badHandshakes++;
    finish();
    socket.destroy();
  }

  private startHostConnection(socket: Socket, guestPort: number, early: Buffer): void {
    const port = this.port as VsockHostPort;
    const r = port.hostConnect(guestPort);
    if (!r.ok) {
      this.counters.refusedHostConnects++;
      this.log(`vsock: CONNECT ${guestPort} refused: ${r.reason}`);
      socket.destroy();
      return;
    }
    const conn: HostConn = { socket, state: 'connecting', pending: early.length > 0 ? [early] : [], waitingForDrain: false, okLine: `OK ${r.hostPort}\n` };
    this.conns.set(r.connId, conn);
    this.log(`connection ${r.connId}: CONNECT ${guestPort} from the host, host port ${r.hostPort}`);
    this.wire(r.connId, conn);
  }

  // --- guest-initiated connections --------------------------------------------------------------

  onGuestConnect(connId: number, _guestPort: number, hostPort: number): GuestConnectDecision {
    if (this.closed) return 'refuse';
    const socket = connect({ path: `${this.udsPath}_${hostPort}`, allowHalfOpen: true });
    socket.pause();
    const conn: HostConn = { socket, state: 'connecting', pending: [], waitingForDrain: false };
    this.conns.set(connId, conn);
    const onConnectError = (): void => {
      this.counters.refusedGuestConnects++;
      // The muxer's close() for this id follows and finds it already gone.
      this.conns.delete(connId);
      socket.destroy();
      this.port?.refuseGuestConnection(connId);
    };
    socket.once('error', onConnectError);
    socket.once('connect', () => {
      socket.off('error', onConnectError);
      this.counters.guestConnections++;
      conn.state = 'open';
      this.wire(connId, conn);
      this.port?.acceptGuestConnection(connId);
      socket.resume();
    });
    return 'defer';
  }

  // --- both -------------------------------------------------------------------------------------

  /** Data, EOF, errors and drain of an accepted host socket go to the muxer. */
  private wire(connId: number, conn: HostConn): void {
    const port = this.port as VsockHostPort;
    const { socket } = conn;
    socket.on('data', (chunk: Buffer) => {
      if (conn.state !== 'open') return;
      if (conn.pending.length > 0) {
        conn.pending.push(chunk);
        socket.pause();
        return;
      }
      const taken = port.hostData(connId, chunk);
      if (taken < chunk.length && conn.state === 'open') {
        conn.pending.push(chunk.subarray(taken));
        socket.pause();
      }
    });
    // Bytes the muxer has not taken yet come before the end: EOF and a clean close wait for them.
    socket.on('end', () => {
      if (conn.state !== 'open') return;
      if (conn.pending.length > 0) conn.after ??= 'eof';
      else port.hostEof(connId);
    });
    socket.on('drain', () => {
      if (conn.state !== 'open' || !conn.waitingForDrain) return;
      conn.waitingForDrain = false;
      port.hostWritable(connId);
    });
    socket.on('error', () => undefined); // 'close' follows, with hadError
    socket.on('close', (hadError: boolean) => {
      if (conn.state === 'closed') return;
      if (!hadError && conn.state === 'open' && conn.pending.length > 0) {
        conn.after = 'close';
        return;
      }
      conn.state = 'closed';
      this.conns.delete(connId);
      if (hadError) port.hostReset(connId);
      else port.hostClose(connId);
    });
  }

  /** Offers the host bytes the muxer did not take yet; resumes reading when all went. */
  private flushPending(connId: number, conn: HostConn): void {
    const port = this.port as VsockHostPort;
    while (conn.state === 'open' && conn.pending.length > 0) {
      const head = conn.pending[0] as Buffer;
      const taken = port.hostData(connId, head);
      if (taken < head.length) {
        conn.pending[0] = head.subarray(taken);
        return;
      }
      conn.pending.shift();
    }
    if (conn.state !== 'open') return;
    if (conn.after === 'close') {
      conn.state = 'closed';
      this.conns.delete(connId);
      port.hostClose(connId);
    } else if (conn.after === 'eof') {
      conn.after = undefined;
      port.hostEof(connId);
    } else {
      conn.socket.resume();
    }
  }

  // --- VsockBackend: called inside muxer calls, so muxer calls are deferred ----------------------

  connected(connId: number): void {
    const conn = this.conns.get(connId);
    this.log(`connection ${connId}: the guest accepted (${conn ? conn.state : 'unknown to the backend'})`);
    if (!conn || conn.state !== 'connecting') return;
    conn.state = 'open';
    if (conn.okLine) conn.socket.write(conn.okLine);
    queueMicrotask(() => this.flushPending(connId, conn));
  }

  deliver(connId: number, bytes: Uint8Array): number {
    const conn = this.conns.get(connId);
    if (!conn || conn.state !== 'open') return bytes.length; // the host side is gone: nothing to hold
    if (conn.socket.writableNeedDrain) {
      conn.waitingForDrain = true;
      return 0;
    }
    conn.socket.write(bytes);
    return bytes.length;
  }

  endOfStream(connId: number): void {
    const conn = this.conns.get(connId);
    if (conn && conn.state === 'open') conn.socket.end();
  }

  pauseReading(connId: number): void {
    this.conns.get(connId)?.socket.pause();
  }

  resumeReading(connId: number): void {
    const conn = this.conns.get(connId);
    if (conn && conn.state === 'open') queueMicrotask(() => this.flushPending(connId, conn));
  }

  close(connId: number, reason: CloseReason): void {
    const conn = this.conns.get(connId);
    this.log(`connection ${connId}: closed (${reason})`);
    if (!conn) return;
    conn.state = 'closed';
    this.conns.delete(connId);
    // A clean end lets what is buffered reach the host first; anything else aborts.
    if (reason === 'closed') conn.socket.destroySoon();
    else conn.socket.destroy();
  }

  /** Stops listening, closes every host socket and removes the socket file. */
  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.handshakes) s.destroy();
    this.handshakes.clear();
    for (const conn of this.conns.values()) {
      conn.state = 'closed';
      conn.socket.destroy();
    }
    this.conns.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.udsPath);
    } catch {
      // Already gone (net.Server removes it on close on some versions).
    }
  }
}

/** Replaces a socket file left by an earlier VMM; refuses to remove anything that is not a socket. */
function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new VsockBackendError(`vsock: cannot check ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!isSocket) throw new VsockBackendError(`vsock: ${path} exists and is not a socket; give uds_path a free path`);
  unlinkSync(path);
}
