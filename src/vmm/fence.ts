// A full memory barrier for code that shares guest memory with running vCPUs (virtqueue rings).
// Guest memory is an external ArrayBuffer, on which Atomics cannot operate, and plain
// typed-array accesses carry no fence. On x86-64 a locked read-modify-write orders all earlier
// loads and stores against all later ones, for every address (Intel SDM vol. 3A §9.2.3.9,
// "Loads and stores are not reordered with locked instructions"), and V8 implements Atomics.add
// on a SharedArrayBuffer with `lock xadd` (a seq_cst fetch_add in the interpreter): an atomic
// add of 0 on a private cell is therefore the `mfence` that virtio_mb() is in Linux.
const cell = new Int32Array(new SharedArrayBuffer(4));

export function fullFence(): void {
  Atomics.add(cell, 0, 0);
}
