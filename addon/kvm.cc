// /dev/kvm, VM-level and vCPU-level ioctls. The addon stays thin: struct layouts live in
// TypeScript (src/vmm/kvm-structs.ts); here each ioctl is a row in a whitelist that fixes its
// request number and the exact size of its argument, so JS can neither pass an arbitrary
// request nor a buffer the kernel would read or write past.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common.h"
#include "memory.h"

namespace tsvmm {
namespace {

enum class ArgKind { None, Int, Buffer, VarBuffer };

// How a variable-size argument's length follows from its leading count field.
struct VarLayout {
  size_t header;      // bytes before the entries (the count is the first u32)
  size_t entry;       // bytes per entry
  uint32_t maxCount;  // more entries than this is refused
};

struct IoctlSpec {
  const char* name;
  unsigned long request;
  ArgKind kind;
  size_t size;  // Buffer: exact size
  VarLayout var;
};

#define FIXED(req, type) {#req, req, ArgKind::Buffer, sizeof(type), {0, 0, 0}}
#define NOARG(req) {#req, req, ArgKind::None, 0, {0, 0, 0}}
#define INTARG(req) {#req, req, ArgKind::Int, 0, {0, 0, 0}}
// Variable-size structs end in a flexible array; g++ sizes some of them differently from C
// (kvm_cpuid2 is 12 bytes in C++, 8 in C), and that size is encoded in the request number the
// kernel compares against. So these requests are rebuilt with the header size the C ABI has.
constexpr unsigned long WithSize(unsigned long req, unsigned long size) {
  return (req & ~(static_cast<unsigned long>(_IOC_SIZEMASK) << _IOC_SIZESHIFT)) | (size << _IOC_SIZESHIFT);
}
#define VAR(req, hdr, ent, max) {#req, WithSize(req, hdr), ArgKind::VarBuffer, 0, {hdr, ent, max}}

const IoctlSpec kIoctls[] = {
    // system (/dev/kvm)
    NOARG(KVM_GET_API_VERSION),
    INTARG(KVM_CHECK_EXTENSION),
    NOARG(KVM_GET_VCPU_MMAP_SIZE),
    INTARG(KVM_CREATE_VM),
    VAR(KVM_GET_SUPPORTED_CPUID, 8, sizeof(kvm_cpuid_entry2), 256),
    VAR(KVM_GET_MSR_INDEX_LIST, 4, 4, 4096),
    VAR(KVM_GET_MSR_FEATURE_INDEX_LIST, 4, 4, 4096),
    // VM
    INTARG(KVM_SET_TSS_ADDR),
    FIXED(KVM_SET_IDENTITY_MAP_ADDR, __u64),
    NOARG(KVM_CREATE_IRQCHIP),
    FIXED(KVM_CREATE_PIT2, kvm_pit_config),
    FIXED(KVM_GET_PIT2, kvm_pit_state2),
    FIXED(KVM_SET_PIT2, kvm_pit_state2),
    FIXED(KVM_GET_IRQCHIP, kvm_irqchip),
    FIXED(KVM_SET_IRQCHIP, kvm_irqchip),
    FIXED(KVM_IRQ_LINE, kvm_irq_level),
    FIXED(KVM_IRQFD, kvm_irqfd),
    FIXED(KVM_IOEVENTFD, kvm_ioeventfd),
    FIXED(KVM_GET_CLOCK, kvm_clock_data),
    FIXED(KVM_SET_CLOCK, kvm_clock_data),
    INTARG(KVM_CREATE_VCPU),
    // vCPU
    FIXED(KVM_GET_REGS, kvm_regs),
    FIXED(KVM_SET_REGS, kvm_regs),
    FIXED(KVM_GET_SREGS, kvm_sregs),
    FIXED(KVM_SET_SREGS, kvm_sregs),
    FIXED(KVM_GET_FPU, kvm_fpu),
    FIXED(KVM_SET_FPU, kvm_fpu),
    FIXED(KVM_GET_LAPIC, kvm_lapic_state),
    FIXED(KVM_SET_LAPIC, kvm_lapic_state),
    FIXED(KVM_GET_MP_STATE, kvm_mp_state),
    FIXED(KVM_SET_MP_STATE, kvm_mp_state),
    FIXED(KVM_GET_VCPU_EVENTS, kvm_vcpu_events),
    FIXED(KVM_SET_VCPU_EVENTS, kvm_vcpu_events),
    FIXED(KVM_GET_XCRS, kvm_xcrs),
    FIXED(KVM_SET_XCRS, kvm_xcrs),
    FIXED(KVM_GET_DEBUGREGS, kvm_debugregs),
    FIXED(KVM_SET_DEBUGREGS, kvm_debugregs),
    VAR(KVM_GET_MSRS, 8, sizeof(kvm_msr_entry), 1024),
    VAR(KVM_SET_MSRS, 8, sizeof(kvm_msr_entry), 1024),
    VAR(KVM_SET_CPUID2, 8, sizeof(kvm_cpuid_entry2), 256),
    VAR(KVM_GET_CPUID2, 8, sizeof(kvm_cpuid_entry2), 256),
    NOARG(KVM_KVMCLOCK_CTRL),
};

const IoctlSpec* FindIoctl(const std::string& name) {
  for (const auto& spec : kIoctls)
    if (name == spec.name) return &spec;
  return nullptr;
}

// ioctl(fd, name, arg?) -> rc. arg: integer for Int ioctls, a Uint8Array for buffer ioctls
// (read and/or written in place by the kernel).
Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (!info[1].IsString()) throw Napi::TypeError::New(env, "ioctl name must be a string");
  std::string name = info[1].As<Napi::String>().Utf8Value();
  const IoctlSpec* spec = FindIoctl(name);
  if (!spec) throw Napi::Error::New(env, "ioctl " + name + " is not in the addon's whitelist");
  int rc = -1;
  switch (spec->kind) {
    case ArgKind::None:
      rc = IoctlRetrying(fd, spec->request, 0);
      break;
    case ArgKind::Int:
      rc = IoctlRetrying(fd, spec->request, static_cast<unsigned long>(ArgU64(info, 2, "ioctl argument", UINT32_MAX)));
      break;
    case ArgKind::Buffer:
    case ArgKind::VarBuffer: {
      if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw Napi::TypeError::New(env, name + " needs a Uint8Array argument");
      auto buf = info[2].As<Napi::Uint8Array>();
      size_t len = buf.ByteLength();
      if (spec->kind == ArgKind::Buffer) {
        if (len != spec->size)
          throw Napi::RangeError::New(env, name + " needs a " + std::to_string(spec->size) + "-byte buffer, got " +
                                               std::to_string(len));
      } else {
        if (len < spec->var.header)
          throw Napi::RangeError::New(env, name + " buffer shorter than its " + std::to_string(spec->var.header) +
                                               "-byte header");
        uint32_t count;
        memcpy(&count, buf.Data(), sizeof count);
        if (count > spec->var.maxCount)
          throw Napi::RangeError::New(env, name + " count " + std::to_string(count) + " exceeds " +
                                               std::to_string(spec->var.maxCount));
        size_t need = spec->var.header + size_t(count) * spec->var.entry;
        if (len != need)
          throw Napi::RangeError::New(env, name + " with count " + std::to_string(count) + " needs " +
                                               std::to_string(need) + " bytes, got " + std::to_string(len));
      }
      rc = IoctlRetrying(fd, spec->request, buf.Data());
      break;
    }
  }
  if (rc < 0) throw ErrnoError(env, name, errno, "fd " + std::to_string(fd));
  return Napi::Number::New(env, rc);
}

// Sizes of the structs the whitelist knows, so TypeScript can assert its layouts match.
Napi::Value StructSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kvm_regs", sizeof(kvm_regs));
  o.Set("kvm_sregs", sizeof(kvm_sregs));
  o.Set("kvm_fpu", sizeof(kvm_fpu));
  o.Set("kvm_lapic_state", sizeof(kvm_lapic_state));
  o.Set("kvm_mp_state", sizeof(kvm_mp_state));
  o.Set("kvm_vcpu_events", sizeof(kvm_vcpu_events));
  o.Set("kvm_msr_entry", sizeof(kvm_msr_entry));
  o.Set("kvm_cpuid_entry2", sizeof(kvm_cpuid_entry2));
  o.Set("kvm_irqchip", sizeof(kvm_irqchip));
  o.Set("kvm_pit_config", sizeof(kvm_pit_config));
  o.Set("kvm_pit_state2", sizeof(kvm_pit_state2));
  o.Set("kvm_irq_level", sizeof(kvm_irq_level));
  o.Set("kvm_irqfd", sizeof(kvm_irqfd));
  o.Set("kvm_ioeventfd", sizeof(kvm_ioeventfd));
  o.Set("kvm_clock_data", sizeof(kvm_clock_data));
  o.Set("kvm_xcrs", sizeof(kvm_xcrs));
  o.Set("kvm_debugregs", sizeof(kvm_debugregs));
  o.Set("kvm_run", sizeof(kvm_run));
  return o;
}

// Constants TypeScript needs and should not copy by hand from linux/kvm.h.
Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
#define C(x) c.Set(#x, Napi::Number::New(env, x))
  C(KVM_API_VERSION);
  C(KVM_CAP_IRQCHIP);
  C(KVM_CAP_HLT);
  C(KVM_CAP_USER_MEMORY);
  C(KVM_CAP_SET_TSS_ADDR);
  C(KVM_CAP_EXT_CPUID);
  C(KVM_CAP_NR_VCPUS);
  C(KVM_CAP_MAX_VCPUS);
  C(KVM_CAP_PIT2);
  C(KVM_CAP_IOEVENTFD);
  C(KVM_CAP_IRQFD);
  C(KVM_CAP_IMMEDIATE_EXIT);
  C(KVM_CAP_SET_IDENTITY_MAP_ADDR);
  C(KVM_CAP_ADJUST_CLOCK);
  C(KVM_CAP_NR_MEMSLOTS);
  C(KVM_CAP_IOEVENTFD_ANY_LENGTH);
  C(KVM_CAP_READONLY_MEM);
  C(KVM_EXIT_UNKNOWN);
  C(KVM_EXIT_EXCEPTION);
  C(KVM_EXIT_IO);
  C(KVM_EXIT_HYPERCALL);
  C(KVM_EXIT_DEBUG);
  C(KVM_EXIT_HLT);
  C(KVM_EXIT_MMIO);
  C(KVM_EXIT_IRQ_WINDOW_OPEN);
  C(KVM_EXIT_SHUTDOWN);
  C(KVM_EXIT_FAIL_ENTRY);
  C(KVM_EXIT_INTR);
  C(KVM_EXIT_SET_TPR);
  C(KVM_EXIT_TPR_ACCESS);
  C(KVM_EXIT_NMI);
  C(KVM_EXIT_INTERNAL_ERROR);
  C(KVM_EXIT_SYSTEM_EVENT);
  C(KVM_EXIT_IO_IN);
  C(KVM_EXIT_IO_OUT);
  C(KVM_MEM_LOG_DIRTY_PAGES);
  C(KVM_MEM_READONLY);
  C(KVM_IRQFD_FLAG_DEASSIGN);
  C(KVM_IOEVENTFD_FLAG_DATAMATCH);
  C(KVM_IOEVENTFD_FLAG_PIO);
  C(KVM_IOEVENTFD_FLAG_DEASSIGN);
  C(KVM_PIT_SPEAKER_DUMMY);
  C(KVM_IRQCHIP_PIC_MASTER);
  C(KVM_IRQCHIP_PIC_SLAVE);
  C(KVM_IRQCHIP_IOAPIC);
  C(KVM_MP_STATE_RUNNABLE);
  C(KVM_MP_STATE_UNINITIALIZED);
  C(KVM_MP_STATE_HALTED);
#undef C
  return c;
}

// openDevice(path) -> fd, opened O_RDWR|O_CLOEXEC. Errors carry errno (ENOENT, EACCES, ...).
Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "/dev/kvm";
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, "open", errno, path);
  return Napi::Number::New(env, fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Check(env, close(fd), "close", "fd " + std::to_string(fd));
  return env.Undefined();
}

// setUserMemoryRegion(vmFd, slot, flags, guestPhysAddr, mapping, offset, size). The host
// address comes from a GuestMapping the addon owns, never from JS, and [offset, offset+size)
// must lie inside it.
Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vmFd = ArgFd(info, 0, "vmFd");
  uint32_t slot = static_cast<uint32_t>(ArgU64(info, 1, "slot", UINT32_MAX));
  uint32_t flags = static_cast<uint32_t>(ArgU64(info, 2, "flags", UINT32_MAX));
  uint64_t gpa = ArgU64(info, 3, "guestPhysAddr");
  std::shared_ptr<MappingCore> mapping = UnwrapMapping(env, info[4]);
  uint64_t offset = ArgU64(info, 5, "offset");
  uint64_t size = ArgU64(info, 6, "size");
  if (offset > mapping->size || size > mapping->size - offset)
    throw Napi::RangeError::New(env, "memory region [" + std::to_string(offset) + ", +" + std::to_string(size) +
                                         ") lies outside its " + std::to_string(mapping->size) + "-byte mapping");
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(static_cast<uint8_t*>(mapping->addr) + offset);
  Check(env, IoctlRetrying(vmFd, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION",
        "slot " + std::to_string(slot));
  return env.Undefined();
}

}  // namespace

void InitKvm(Napi::Env env, Napi::Object exports) {
  exports.Set("ioctl", Napi::Function::New(env, Ioctl, "ioctl"));
  exports.Set("structSizes", Napi::Function::New(env, StructSizes, "structSizes"));
  exports.Set("constants", Constants(env));
  exports.Set("openDevice", Napi::Function::New(env, OpenDevice, "openDevice"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("setUserMemoryRegion", Napi::Function::New(env, SetUserMemoryRegion, "setUserMemoryRegion"));
}

}  // namespace tsvmm
