// The /dev/kvm system handle: API version, capabilities, supported CPUID and MSRs, VM creation.
import { native as addon } from './native.js';
import { KvmApiVersionError, MissingCapabilityError, kvmOpenHint, native } from './errors.js';
import { CpuidEntry, KVM_CPUID_ENTRY2_SIZE, decodeCpuid } from './kvm-structs.js';
import { Vm } from './vm.js';

/** Capabilities tsvmm cannot run without, by the name KVM_CHECK_EXTENSION knows them. */
export const REQUIRED_CAPABILITIES = [
  'KVM_CAP_IRQCHIP',
  'KVM_CAP_IOEVENTFD',
  'KVM_CAP_IRQFD',
  'KVM_CAP_USER_MEMORY',
  'KVM_CAP_SET_TSS_ADDR',
  'KVM_CAP_EXT_CPUID',
  'KVM_CAP_IMMEDIATE_EXIT',
] as const;

export class Kvm {
  private fd: number;

  private constructor(fd: number, readonly path: string) {
    this.fd = fd;
  }

  /** Opens /dev/kvm (or path); errors say what to do (group kvm, module missing, ...). */
  static open(path = '/dev/kvm'): Kvm {
    const fd = native(() => addon().openDevice(path), (code) => kvmOpenHint(code, path));
    const kvm = new Kvm(fd, path);
    try {
      const version = kvm.apiVersion();
      if (version !== addon().constants.KVM_API_VERSION) throw new KvmApiVersionError(version);
    } catch (e) {
      kvm.dispose();
      throw e;
    }
    return kvm;
  }

  apiVersion(): number {
    return native(() => addon().ioctl(this.fd, 'KVM_GET_API_VERSION'));
  }

  /** KVM_CHECK_EXTENSION by capability name (KVM_CAP_*); 0 means absent. */
  checkExtension(cap: string): number {
    const id = addon().constants[cap];
    if (id === undefined) throw new Error(`unknown KVM capability ${cap}`);
    return native(() => addon().ioctl(this.fd, 'KVM_CHECK_EXTENSION', id));
  }

  /** Names of the required capabilities this KVM lacks. */
  missingCapabilities(required: readonly string[] = REQUIRED_CAPABILITIES): string[] {
    return required.filter((cap) => this.checkExtension(cap) === 0);
  }

  requireCapabilities(required: readonly string[] = REQUIRED_CAPABILITIES): void {
    const missing = this.missingCapabilities(required);
    if (missing.length > 0) throw new MissingCapabilityError(missing);
  }

  vcpuMmapSize(): number {
    return native(() => addon().ioctl(this.fd, 'KVM_GET_VCPU_MMAP_SIZE'));
  }

  /** KVM_GET_SUPPORTED_CPUID: what this KVM can offer a guest. */
  supportedCpuid(maxEntries = 256): CpuidEntry[] {
    const buf = new Uint8Array(8 + maxEntries * KVM_CPUID_ENTRY2_SIZE);
    new DataView(buf.buffer).setUint32(0, maxEntries, true);
    native(() => addon().ioctl(this.fd, 'KVM_GET_SUPPORTED_CPUID', buf));
    return decodeCpuid(buf);
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs KVM_GET/SET_MSRS accept for this host. */
  msrIndexList(maxEntries = 4096): number[] {
    const buf = new Uint8Array(4 + maxEntries * 4);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, maxEntries, true);
    native(() => addon().ioctl(this.fd, 'KVM_GET_MSR_INDEX_LIST', buf));
    const n = dv.getUint32(0, true);
    return Array.from({ length: n }, (_, i) => dv.getUint32(4 + i * 4, true));
  }

  createVm(): Vm {
    const vmFd = native(() => addon().ioctl(this.fd, 'KVM_CREATE_VM', 0));
    return new Vm(vmFd, this.vcpuMmapSize());
  }

  dispose(): void {
    if (this.fd >= 0) {
      addon().closeFd(this.fd);
      this.fd = -1;
    }
  }
}
