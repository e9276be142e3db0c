import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootFpu, bootMsrs, wireLapicLints, MSR_IA32_MISC_ENABLE, MSR_MTRR_DEF_TYPE } from '../../src/machine/vcpu-setup.js';

test('boot MSRs are filtered by what KVM offers', () => {
  const all = bootMsrs([0x174, 0x175, 0x176, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102, 0x10, 0x1a0, 0x2ff]);
  assert.is(all.length, 11);
  assert.is(all.find((m) => m.index === MSR_IA32_MISC_ENABLE)?.data, 1n);
  assert.is(all.find((m) => m.index === MSR_MTRR_DEF_TYPE)?.data, 0x806n);
  const some = bootMsrs([0x10, 0x10a]);
  assert.equal(some.map((m) => m.index), [0x10], 'MSR 0x10a (arch capabilities) is never asked for; absent ones are left out');
});

test('FPU defaults', () => {
  const f = new DataView(bootFpu().buffer);
  assert.is(f.getUint16(128, true), 0x37f);
  assert.is(f.getUint32(408, true), 0x1f80);
});

test('LAPIC LINT0 ExtINT, LINT1 NMI, other bits kept', () => {
  const l = new Uint8Array(1024);
  const dv = new DataView(l.buffer);
  dv.setUint32(0x350, 0x10700 | 0x0ff, true);
  dv.setUint32(0x360, 0x10000, true);
  wireLapicLints(l);
  assert.is(dv.getUint32(0x350, true), 0x107ff);
  assert.is(dv.getUint32(0x360, true), 0x10400);
});

test.run();
