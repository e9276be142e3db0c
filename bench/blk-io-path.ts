// The virtio-blk host I/O path, measured (issue 6: "choose the I/O path by measurement").
//
// The device hands each request's guest buffers to its backend; how the backend reaches the file
// decides the host-side cost per request. Measured here on one file, side by side in one run:
//   FileBackend  src/devices/virtio/block/backend.ts, what tsvmm uses: reads FileHandle.readv
//                (preadv on libuv's threadpool), writes fs.writev with a callback (pwritev on the
//                same threadpool; the device calls startWrite, here behind one promise);
//   fs/promises  FileHandle.readv/writev with a position: the same system calls on the same
//                threadpool, with node:fs's promise chain (tsvmm's write path until session 6);
//   fs callback  fs.readv/fs.writev with callbacks: the same threadpool call without promises;
//   fio psync    C, a synchronous pread/pwrite loop per job (queue depth = jobs): the floor for a
//                blocking call on a thread, no event loop at all;
//   fio io_uring C, io_uring at the same queue depth: what an io_uring path could reach.
// Workloads: 4 KiB random read, 4 KiB random write, 1 MiB sequential read, at queue depth 1 and 4
// (4 = libuv's default threadpool size), buffered I/O on a file in the page cache, as tsvmm opens
// images (no O_DIRECT), so the numbers are the software path's cost, not the disk's.
//
//   node dist/bench/blk-io-path.js [--seconds 3] [--file /tmp/x] [--size-mib 256] [--json out.json]
// fio rows need `fio` (apt-get install fio); without it they are reported as not measured.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readv as readvCb, writev as writevCb, openSync, closeSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FileBackend } from '../src/devices/virtio/block/backend.js';

interface Workload {
  name: string;
  rw: 'read' | 'write';
  bs: number;
  random: boolean;
}

const WORKLOADS: Workload[] = [
  { name: '4k-randread', rw: 'read', bs: 4096, random: true },
  { name: '4k-randwrite', rw: 'write', bs: 4096, random: true },
  { name: '1m-seqread', rw: 'read', bs: 1 << 20, random: false },
];
const DEPTHS = [1, 4];

interface Row {
  workload: string;
  depth: number;
  path: string;
  iops: number;
  mibPerS: number;
  usPerOp: number;
}

type Submit = (pos: number, buf: Uint8Array) => Promise<void>;

/** Runs `depth` request loops against `submit` for `seconds`; returns completed requests. */
async function drive(w: Workload, depth: number, sizeBytes: number, seconds: number, submit: Submit): Promise<{ ops: number; secs: number }> {
  const blocks = Math.floor(sizeBytes / w.bs);
  let ops = 0;
  let seq = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  const loop = async (): Promise<void> => {
    const buf = new Uint8Array(w.bs);
    if (w.rw === 'write') buf.fill(0x5a);
    while (process.hrtime.bigint() < deadline) {
      const block = w.random ? Math.floor(Math.random() * blocks) : seq++ % blocks;
      await submit(block * w.bs, buf);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: depth }, loop));
  return { ops, secs: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function row(w: Workload, depth: number, path: string, iops: number): Row {
  return { workload: w.name, depth, path, iops, mibPerS: (iops * w.bs) / (1 << 20), usPerOp: (1e6 * depth) / iops };
}

function fio(file: string, w: Workload, depth: number, seconds: number, engine: 'psync' | 'io_uring'): Row | undefined {
  const args = [
    '--name=b', `--filename=${file}`, `--rw=${w.random ? `rand${w.rw}` : w.rw}`, `--bs=${w.bs}`,
    `--ioengine=${engine}`, '--time_based', `--runtime=${seconds}`, '--output-format=json', '--group_reporting',
    '--norandommap', '--randrepeat=0', '--invalidate=0',
  ];
  // psync has no queue: depth is the number of jobs (threads), as libuv's pool is threads.
  if (engine === 'psync') args.push(`--numjobs=${depth}`);
  else args.push(`--iodepth=${depth}`, '--numjobs=1');
  const r = spawnSync('fio', args, { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const job = (JSON.parse(r.stdout) as { jobs: { read: { iops: number }; write: { iops: number } }[] }).jobs[0];
  if (!job) return undefined;
  return row(w, depth, `fio ${engine}`, job[w.rw].iops);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      file: { type: 'string' },
      'size-mib': { type: 'string', default: '256' },
      json: { type: 'string' },
    },
  });
  const seconds = Number(values.seconds);
  const sizeMiB = Number(values['size-mib']);
  if (!(seconds > 0) || !(sizeMiB >= 8)) throw new Error('--seconds must be > 0 and --size-mib >= 8');
  const file = values.file ?? join(tmpdir(), `tsvmm-io-path-${process.pid}.img`);
  const made = !existsSync(file);
  const size = sizeMiB << 20;
  if (made) {
    const chunk = randomBytes(1 << 20);
    const fd = openSync(file, 'w');
    for (let i = 0; i < sizeMiB; i++) writeFileSync(fd, chunk);
    closeSync(fd);
  }
  const haveFio = spawnSync('fio', ['--version'], { encoding: 'utf8' }).status === 0;
  const rows: Row[] = [];
  const backend = await FileBackend.open(file, false);
  const fd = openSync(file, 'r+');
  const fh = await open(file, 'r+');
  try {
    for (const w of WORKLOADS) {
      for (const depth of DEPTHS) {
        const viaBackend: Submit = (pos, buf) => (w.rw === 'read' ? backend.read(pos, [buf]) : backend.write(pos, [buf]));
        const viaPromises: Submit = async (pos, buf) => {
          if (w.rw === 'read') await fh.readv([buf], pos);
          else await fh.writev([buf], pos);
        };
        const viaCallbacks: Submit = (pos, buf) =>
          new Promise<void>((resolve, reject) => {
            const done = (e: NodeJS.ErrnoException | null): void => (e ? reject(e) : resolve());
            if (w.rw === 'read') readvCb(fd, [buf], pos, done);
            else writevCb(fd, [buf], pos, done);
          });
        let r = await drive(w, depth, size, seconds, viaBackend);
        rows.push(row(w, depth, 'FileBackend (tsvmm)', r.ops / r.secs));
        r = await drive(w, depth, size, seconds, viaPromises);
        rows.push(row(w, depth, 'fs/promises', r.ops / r.secs));
        r = await drive(w, depth, size, seconds, viaCallbacks);
        rows.push(row(w, depth, 'fs callback', r.ops / r.secs));
        for (const engine of ['psync', 'io_uring'] as const) {
          const f = haveFio ? fio(file, w, depth, seconds, engine) : undefined;
          if (f) rows.push(f);
        }
      }
    }
  } finally {
    await backend.close();
    await fh.close();
    closeSync(fd);
    if (made) rmSync(file, { force: true });
  }

  const floor = (r: Row): Row | undefined => rows.find((x) => x.workload === r.workload && x.depth === r.depth && x.path === 'fio psync');
  process.stdout.write(`virtio-blk host I/O path, ${hostname()}, ${seconds} s per row, buffered I/O on a ${sizeMiB} MiB file in the page cache\n`);
  process.stdout.write(`${'workload'.padEnd(13)} ${'QD'.padStart(2)}  ${'path'.padEnd(20)} ${'IOPS'.padStart(9)} ${'MiB/s'.padStart(8)} ${'µs/op'.padStart(7)}  vs fio psync\n`);
  for (const r of rows) {
    const f = floor(r);
    const ratio = f ? `${(r.iops / f.iops).toFixed(2)}x` : haveFio ? '' : '(fio not installed)';
    process.stdout.write(
      `${r.workload.padEnd(13)} ${String(r.depth).padStart(2)}  ${r.path.padEnd(20)} ${Math.round(r.iops).toString().padStart(9)} ${r.mibPerS.toFixed(0).padStart(8)} ${r.usPerOp.toFixed(1).padStart(7)}  ${ratio}\n`,
    );
  }
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify({ tool: 'bench/blk-io-path', startedAt: new Date().toISOString(), host: hostname(), node: process.version, seconds, sizeMiB, rows }, null, 2)}\n`);
  }
}

await main();
