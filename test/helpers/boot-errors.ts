// Asserts that fn throws a BootError with the given reason (and message, if given).
import * as assert from 'uvu/assert';
import { BootError, type BootErrorReason } from '../../src/boot/index.js';

export function throwsReason(fn: () => unknown, reason: BootErrorReason, message?: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, BootError, `expected a BootError, got ${String(e)}`);
    assert.is((e as BootError).reason, reason, (e as Error).message);
    if (message) assert.match((e as Error).message, message);
    return;
  }
  assert.unreachable(`expected BootError ${reason}`);
}
