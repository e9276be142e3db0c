// Design (d): KVM_RUN called through koffi, the FFI, instead of the addon.
import { createRequire } from 'node:module';

/** _IO(KVMIO, 0x80) */
const KVM_RUN_IOCTL = 0xae80;
const EINTR = 4;
const KVM_EXIT_INTR = 10;

/** ioctl(fd, KVM_RUN, 0) through koffi; errors become exceptions carrying errno. */
export function koffiRunner(fd: number): () => number {
  const require = createRequire(import.meta.url);
  // koffi ships its own types, but it is an optional dependency: load it dynamically.
  const koffi = require('koffi') as {
    load(name: string): { func(decl: string): (...args: number[]) => number };
    errno(): number;
  };
  const ioctl = koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, unsigned long arg)');
  return (): number => {
    const rc = ioctl(fd, KVM_RUN_IOCTL, 0);
    if (rc < 0) {
      const errno = koffi.errno();
      if (errno === EINTR) return KVM_EXIT_INTR;
      throw new Error(`KVM_RUN (koffi) failed: errno ${errno}`);
    }
    return -1; // -1: read the exit reason from kvm_run
  };
}


/** Why koffi cannot be used here, or undefined when it can. */
export function koffiUnavailable(): string | undefined {
  try {
    createRequire(import.meta.url)('koffi');
    return undefined;
  } catch (e) {
    return `koffi is not installed or does not load on this host (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`;
  }
}
