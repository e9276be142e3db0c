// virtio-blk's per-request host cost with no VM: the device (src/devices/virtio/block) driven
// through the real virtio-mmio register file by the test guest driver over in-memory guest
// memory, one request at a time (queue depth 1), as a guest's O_DIRECT pread/pwrite loop drives
// it. What a request costs here (µs of wall time and of CPU per request, garbage collections) is
// what tsvmm's main thread and helper threads add to every request in a VM; the guest's side
// (exits, interrupt handling) is not in it. Used to find and cut the device path's own cost.
//
//   node dist/bench/blk-device.js [--seconds 3] [--file F] [--size-mib 64] [--only NAME] [--direct] [--aio io_uring|threads] [--json out.json]
//
// Guest memory is an addon mapping, as a VM's RAM is. --direct opens the image O_DIRECT
// (--disk PATH:direct): every read then goes through the threadpool (startRead).
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { VirtioBlock } from '../src/devices/virtio/block/device.js';
import type { IoEngine } from '../src/devices/virtio/block/backend.js';
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../src/devices/virtio/block/request.js';
import { GuestMemory } from '../src/vmm/guest-memory.js';
import { HostMapping } from '../src/vmm/mapping.js';
import { clockTicks, cpuBetween, threadTimes } from '../src/bench/threads.js';
import { VirtioTestDriver } from '../test/helpers/virtio-driver.js';

/** --aio: the backend's engine (default: the backend's own choice). */
function engineArg(v: string | undefined): IoEngine | undefined {
  if (v === undefined || v === 'io_uring' || v === 'threads') return v;
  throw new Error(`--aio ${v}: io_uring or threads`);
}

const VIRTIO_F_VERSION_1 = 1n << 32n;
const VIRTIO_F_EVENT_IDX = 1n << 29n;

interface Workload {
  name: string;
  type: number;
  bs: number;
  /** Data descriptors per request: 1 (a physically contiguous buffer), or several equal ones (here
   * 128 of 8 KiB for 1 MiB), as a Linux guest's O_DIRECT request from a user buffer arrives when
   * its pages are scattered. */
  segments: number;
}
const WORKLOADS: Workload[] = [
  { name: '4k-randread', type: VIRTIO_BLK_T_IN, bs: 4096, segments: 1 },
  { name: '4k-randwrite', type: VIRTIO_BLK_T_OUT, bs: 4096, segments: 1 },
  { name: '1m-seqread', type: VIRTIO_BLK_T_IN, bs: 1 << 20, segments: 1 },
  { name: '1m-seqread-128seg', type: VIRTIO_BLK_T_IN, bs: 1 << 20, segments: 128 },
  { name: '1m-seqwrite', type: VIRTIO_BLK_T_OUT, bs: 1 << 20, segments: 1 },
  { name: '1m-seqwrite-128seg', type: VIRTIO_BLK_T_OUT, bs: 1 << 20, segments: 128 },
];

interface Result {
  workload: string;
  requests: number;
  usPerRequest: number;
  cpuUsPerRequest: { main: number; other: number };
  gcPerThousand: number;
  gcMsPerThousand: number;
}

async function run(file: string, sizeBytes: number, w: Workload, seconds: number, direct: boolean, engine: IoEngine | undefined): Promise<Result> {
  // The guest's RAM is an addon mapping, as a VM's is (2 MiB-aligned, MADV_HUGEPAGE): a copy
  // into a plain ArrayBuffer's 4 KiB pages cost 5.5x as much on this project's host (session 11).
  const ram = HostMapping.allocate(8 << 20);
  const memory = new GuestMemory([{ guestPhysAddr: 0, bytes: ram.bytes() }]);
  const device = await VirtioBlock.open({ path: file, direct, ...(engine ? { engine } : {}) });
  const driver = new VirtioTestDriver(device, memory);
  const features = driver.init(VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX, { size: 256, bufferSpace: 4 << 20 });
  const eventIdx = (features & VIRTIO_F_EVENT_IDX) !== 0n;
  const q = driver.queues[0];
  if (!q) throw new Error('no queue 0');
  const header = q.alloc(16);
  const data = q.alloc(w.bs, 4096);
  const status = q.alloc(1);
  const segment = w.bs / w.segments;
  const dataBufs = Array.from({ length: w.segments }, (_, i) => ({ addr: data + i * segment, len: segment }));
  const blocks = Math.floor(sizeBytes / w.bs);
  let wake: (() => void) | undefined;
  driver.onInterrupt = () => wake?.();
  const gc = { count: 0, ms: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.ms += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });

  const one = async (i: number): Promise<void> => {
    const block = w.bs === 4096 ? Math.floor(Math.random() * blocks) : i % blocks;
    memory.writeU32(header, w.type);
    memory.writeU32(header + 4, 0);
    memory.writeU32(header + 8, (block * (w.bs / 512)) >>> 0);
    memory.writeU32(header + 12, 0);
    const readable = [{ addr: header, len: 16 }];
    const statusBuf = { addr: status, len: 1 };
    const fired = new Promise<void>((res) => (wake = res));
    if (w.type === VIRTIO_BLK_T_IN) q.postBuffers(readable, [...dataBufs, statusBuf]);
    else q.postBuffers([...readable, ...dataBufs], [statusBuf]);
    driver.kick(0);
    await fired;
    driver.ackInterrupt();
    const used = q.collectUsed();
    if (used.length !== 1 || memory.readU8(status) !== 0) throw new Error(`request ${i}: used ${JSON.stringify(used)} status ${memory.readU8(status)}`);
    if (eventIdx) q.setUsedEvent(q.usedIdx);
  };

  for (let i = 0; i < 200; i++) await one(i); // warm-up: JIT, page cache
  const before = threadTimes(process.pid);
  gc.count = 0;
  gc.ms = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    for (let k = 0; k < 64; k++) await one(n++);
  }
  const wallMs = performance.now() - t0;
  const after = threadTimes(process.pid);
  obs.disconnect();
  const cpu = cpuBetween(process.pid, before, after, clockTicks()); // no vCPU threads here: main and other
  await device.dispose();
  ram.dispose();
  const us = (ms: number): number => (ms * 1000) / n;
  return {
    workload: w.name,
    requests: n,
    usPerRequest: (wallMs * 1000) / n,
    cpuUsPerRequest: { main: us(cpu.main), other: us(cpu.other) },
    gcPerThousand: (gc.count * 1000) / n,
    gcMsPerThousand: (gc.ms * 1000) / n,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      file: { type: 'string' },
      'size-mib': { type: 'string', default: '64' },
      json: { type: 'string' },
      only: { type: 'string' },
      direct: { type: 'boolean' },
      aio: { type: 'string' },
    },
  });
  const seconds = Number(values.seconds);
  const sizeBytes = Number(values['size-mib']) << 20;
  const file = values.file ?? join(tmpdir(), `tsvmm-blk-device-${process.pid}.img`);
  const made = values.file === undefined;
  if (made) writeFileSync(file, randomBytes(sizeBytes));
  try {
    const results: Result[] = [];
    for (const w of WORKLOADS) {
      if (values.only && !w.name.includes(values.only)) continue;
      const r = await run(file, sizeBytes, w, seconds, values.direct ?? false, engineArg(values.aio));
      results.push(r);
      process.stdout.write(
        `${r.workload.padEnd(18)} ${r.requests.toString().padStart(8)} req  ${r.usPerRequest.toFixed(1).padStart(7)} µs/req  ` +
          `cpu main ${r.cpuUsPerRequest.main.toFixed(1)} other ${r.cpuUsPerRequest.other.toFixed(1)} µs/req  ` +
          `gc ${r.gcPerThousand.toFixed(2)}/1000 req (${r.gcMsPerThousand.toFixed(2)} ms)\n`,
      );
    }
    if (values.json) writeFileSync(values.json, `${JSON.stringify({ tool: 'bench/blk-device.ts', file, sizeBytes, seconds, node: process.version, results }, null, 1)}\n`);
  } finally {
    if (made) rmSync(file, { force: true });
  }
}

await main();
