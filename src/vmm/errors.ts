// Typed errors of the vmm layer. A failed syscall in the addon arrives as an Error with errno,
// code and syscall set; SyscallError gives it a type and, where we know one, the fix.

export class SyscallError extends Error {
  constructor(
    message: string,
    readonly syscall: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'SyscallError';
  }
}

interface NativeErrorShape {
  message: string;
  errno: number;
  code: string;
  syscall: string;
}

function isNativeError(e: unknown): e is NativeErrorShape {
  return (
    e instanceof Error &&
    typeof (e as Partial<NativeErrorShape>).errno === 'number' &&
    typeof (e as Partial<NativeErrorShape>).code === 'string' &&
    typeof (e as Partial<NativeErrorShape>).syscall === 'string'
  );
}

/** What to do about a failure to open /dev/kvm, by errno code. */
export function kvmOpenHint(code: string, path = '/dev/kvm'): string {
  switch (code) {
    case 'ENOENT':
      return `${path} does not exist: this host offers no KVM (load kvm_intel or kvm_amd, or enable nested virtualisation); tests can use the nested test bed (npm run test:kvm)`;
    case 'EACCES':
    case 'EPERM':
      return `${path} is not accessible to this user: add the user to the kvm group (sudo usermod -aG kvm $USER, then log in again) or run as root`;
    case 'ENXIO':
    case 'ENODEV':
      return `${path} exists but no KVM module answers it: load kvm_intel or kvm_amd`;
    default:
      return `cannot open ${path}`;
  }
}

/** Turns an addon error into a SyscallError (adding a hint for /dev/kvm); passes others through. */
export function mapNativeError(e: unknown, hint?: (code: string) => string): unknown {
  if (!isNativeError(e)) return e;
  const extra = hint ? `; ${hint(e.code)}` : '';
  return new SyscallError(`${e.message}${extra}`, e.syscall, e.errno, e.code);
}

/** Calls fn and rethrows any addon error as a SyscallError. */
export function native<T>(fn: () => T, hint?: (code: string) => string): T {
  try {
    return fn();
  } catch (e) {
    throw mapNativeError(e, hint);
  }
}

/** KVM lacks a capability tsvmm relies on. */
export class MissingCapabilityError extends Error {
  constructor(readonly missing: string[]) {
    super(`this KVM lacks ${missing.join(', ')}, which tsvmm needs; use a newer host kernel or hardware KVM`);
    this.name = 'MissingCapabilityError';
  }
}

export class KvmApiVersionError extends Error {
  constructor(readonly version: number) {
    super(`KVM API version is ${version}, tsvmm needs 12 (every Linux since 2.6.22 has 12)`);
    this.name = 'KvmApiVersionError';
  }
}

/** A disposed object was used. */
export class DisposedError extends Error {
  constructor(what: string) {
    super(`${what} was used after dispose()`);
    this.name = 'DisposedError';
  }
}
