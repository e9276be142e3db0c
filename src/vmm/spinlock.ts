// The vCPU-side lock, taken by legacy and virtio device state alike: a mutex over one Int32 of a
// SharedArrayBuffer, so device state can be shared by every thread that runs a vCPU (each vCPU is a
// worker_thread that handles its own exits). Critical sections are a few register updates long;
// contention waits with Atomics.wait, not a busy loop, except in the main thread, where
// Atomics.wait is not allowed and the section is short enough to spin.
const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;

const canWait = ((): boolean => {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
})();

// Drepper, "Futexes Are Tricky", mutex 2: 0 unlocked, 1 locked, 2 locked with waiters.
export function lock(cells: Int32Array, index: number): void {
  let c = Atomics.compareExchange(cells, index, UNLOCKED, LOCKED);
  if (c === UNLOCKED) return;
  if (c !== CONTENDED) c = Atomics.exchange(cells, index, CONTENDED);
  while (c !== UNLOCKED) {
    if (canWait) Atomics.wait(cells, index, CONTENDED, 10);
    c = Atomics.exchange(cells, index, CONTENDED);
  }
}

export function unlock(cells: Int32Array, index: number): void {
  if (Atomics.sub(cells, index, 1) !== LOCKED) {
    Atomics.store(cells, index, UNLOCKED);
    Atomics.notify(cells, index, 1);
  }
}
