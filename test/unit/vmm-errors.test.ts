import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SyscallError, kvmOpenHint, mapNativeError, native } from '../../src/vmm/errors.js';

function nativeError(code: string, errno: number, syscall: string): Error {
  return Object.assign(new Error(`${syscall} failed: (${code}, errno ${errno})`), { code, errno, syscall });
}

test('addon errors become SyscallError with errno, code and the ioctl name', () => {
  const e = mapNativeError(nativeError('EINVAL', 22, 'KVM_SET_REGS'));
  assert.instance(e, SyscallError);
  const s = e as SyscallError;
  assert.is(s.errno, 22);
  assert.is(s.code, 'EINVAL');
  assert.is(s.syscall, 'KVM_SET_REGS');
  assert.match(s.message, /KVM_SET_REGS/);
});

test('other errors pass through unchanged', () => {
  const plain = new TypeError('x');
  assert.is(mapNativeError(plain), plain);
  assert.is(mapNativeError('str'), 'str');
});

test('native() rethrows mapped, with a hint for /dev/kvm', () => {
  assert.throws(
    () =>
      native(() => {
        throw nativeError('EACCES', 13, 'open');
      }, (code) => kvmOpenHint(code)),
    (e: unknown) => e instanceof SyscallError && /kvm group/.test(e.message) && e.errno === 13,
  );
  assert.is(native(() => 7), 7);
});

test('kvmOpenHint covers the common errnos', () => {
  assert.match(kvmOpenHint('ENOENT'), /does not exist/);
  assert.match(kvmOpenHint('EPERM'), /kvm group/);
  assert.match(kvmOpenHint('ENXIO'), /load kvm_intel or kvm_amd/);
  assert.match(kvmOpenHint('EIO', '/dev/x'), /cannot open \/dev\/x/);
});

test.run();
