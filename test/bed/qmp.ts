// A minimal QMP client (QEMU Machine Protocol: one JSON object per line over a socket) for the
// things the test bed asks a running QEMU: human-monitor-command, to revive a silent machine
// (sendkey) or to record where a frozen L1 guest's CPUs stand ("info registers") before the
// watchdog kills it. See QEMU's
// docs/interop/qmp-spec.rst: greeting, qmp_capabilities, then commands answered in order.
import { createConnection } from 'node:net';
import { LineSplitter } from './console.js';
import { TestBedError } from './errors.js';

/** Runs HMP commands through QMP at socketPath; resolves with each one's output, in order. */
export function hmpCommands(socketPath: string, commands: readonly string[], timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const outputs: string[] = [];
    const lines = new LineSplitter();
    let greeted = false;
    let capabilitiesAcked = false;
    const fail = (why: string): void => {
      sock.destroy();
      reject(new TestBedError(`QMP at ${socketPath}: ${why}`));
    };
    const timer = setTimeout(() => fail(`no answer in ${timeoutMs} ms`), timeoutMs);
    const send = (o: unknown): void => void sock.write(`${JSON.stringify(o)}\n`);
    const next = (): void => {
      const cmd = commands[outputs.length];
      if (cmd === undefined) {
        clearTimeout(timer);
        sock.end();
        resolve(outputs);
        return;
      }
      send({ execute: 'human-monitor-command', arguments: { 'command-line': cmd } });
    };
    sock.setEncoding('utf8');
    sock.on('error', (e) => {
      clearTimeout(timer);
      fail(e.message);
    });
    sock.on('data', (chunk: string) => {
      for (const raw of lines.push(chunk)) {
        const line = raw.trim();
        if (line === '') continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          clearTimeout(timer);
          fail(`not JSON: ${line.slice(0, 200)}`);
          return;
        }
        if (msg.event !== undefined) continue; // asynchronous events are not answers
        if (!greeted) {
          greeted = msg.QMP !== undefined;
          if (greeted) send({ execute: 'qmp_capabilities' });
          continue;
        }
        if (msg.error !== undefined) {
          clearTimeout(timer);
          fail(`error: ${msg.error.desc ?? JSON.stringify(msg.error)}`);
          return;
        }
        if (!capabilitiesAcked) capabilitiesAcked = true;
        else outputs.push(typeof msg.return === 'string' ? msg.return : JSON.stringify(msg.return));
        next();
      }
    });
  });
}
