// Tiny synthetic kernels for boot tests that need no Linux.

/** A minimal ELF64 x86_64 executable: one PT_LOAD of `code` at physical `addr`, entry there. */
export function elfKernel(code: number[], addr = 0x100_0000): Uint8Array {
  const buf = new Uint8Array(0x1000 + code.length);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, BigInt(addr), true); // e_entry
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true); // e_phnum
  dv.setUint32(64, 1, true); // PT_LOAD
  dv.setUint32(68, 5, true); // R+X
  dv.setBigUint64(72, 0x1000n, true); // p_offset
  dv.setBigUint64(80, BigInt(addr), true); // p_vaddr
  dv.setBigUint64(88, BigInt(addr), true); // p_paddr
  dv.setBigUint64(96, BigInt(code.length), true);
  dv.setBigUint64(104, BigInt(code.length), true);
  dv.setBigUint64(112, 0x1000n, true);
  buf.set(code, 0x1000);
  return buf;
}

