// The nested-KVM test bed: run commands that need a Linux-booting /dev/kvm inside QEMU TCG.
export { ensureTestBed, type TestBed } from './ensure.js';
export { runInTestBed, type RunInTestBedOptions, type RunInTestBedResult } from './run.js';
export { DEFAULT_TUNING, type Tuning } from './qemu-args.js';
export * from './errors.js';
