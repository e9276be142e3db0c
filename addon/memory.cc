// GuestMapping: anonymous MAP_NORESERVE memory exposed to JS as an ArrayBuffer (zero-copy) and
// registered with KVM as a memory slot by setUserMemoryRegion.
#include "memory.h"

#include <sys/mman.h>

#include "common.h"

namespace tsvmm {
namespace {

Registry<MappingCore> g_mappings;

constexpr uint64_t kHugePage = uint64_t(2) << 20;

// Anonymous memory for the guest, 2 MiB-aligned and marked MADV_HUGEPAGE (as QEMU and Cloud
// Hypervisor do): with transparent huge pages in "madvise" mode (Debian's default) guest RAM
// would otherwise be 4 KiB pages, and every guest TLB miss a longer two-dimensional page walk.
// The kernel backs what it can with huge pages and falls back to 4 KiB pages, so nothing needs
// them; EINVAL (a kernel without THP) is the one madvise error ignored.
void* MapGuestMemory(Napi::Env env, uint64_t size) {
  // From 2 MiB up, map kHugePage more than needed, then give back the unaligned head and the tail.
  const bool huge = size >= kHugePage;
  uint64_t span = huge ? size + kHugePage : size;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw ErrnoError(env, "mmap", errno, std::to_string(size) + " bytes of guest memory");
  if (!huge) return raw;
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  uint64_t head = aligned - start;
  uint64_t tail = span - head - size;
  if ((head != 0 && munmap(raw, head) != 0) || (tail != 0 && munmap(reinterpret_cast<void*>(aligned + size), tail) != 0)) {
    int err = errno;
    munmap(raw, span);  // best effort: the error reported is the first one
    throw ErrnoError(env, "munmap", err, "trimming guest memory to 2 MiB alignment");
  }
  void* addr = reinterpret_cast<void*>(aligned);
  if (madvise(addr, size, MADV_HUGEPAGE) != 0 && errno != EINVAL) {
    int err = errno;
    munmap(addr, size);
    throw ErrnoError(env, "madvise", err, "MADV_HUGEPAGE on " + std::to_string(size) + " bytes of guest memory");
  }
  return addr;
}
const napi_type_tag kMappingTag = {0x7473766d6d6d6170ULL, 0x47756573744d6170ULL};

class GuestMapping : public Napi::ObjectWrap<GuestMapping> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GuestMapping",
                       {
                           StaticMethod<&GuestMapping::Attach>("attach"),
                           InstanceAccessor<&GuestMapping::Buffer>("buffer"),
                           InstanceAccessor<&GuestMapping::Size>("size"),
                           InstanceAccessor<&GuestMapping::Id>("id"),
                           InstanceMethod<&GuestMapping::Close>("close"),
                       });
  }

  // new GuestMapping(size) maps fresh memory; GuestMapping.attach(id) (via a sentinel first
  // argument) wraps a mapping created by another thread.
  explicit GuestMapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestMapping>(info) {
    Napi::Env env = info.Env();
    info.This().As<Napi::Object>().TypeTag(&kMappingTag);
    if (info.Length() == 2 && info[1].IsExternal()) {
      core_ = *info[1].As<Napi::External<std::shared_ptr<MappingCore>>>().Data();
      id_ = static_cast<uint32_t>(ArgU64(info, 0, "id", UINT32_MAX));
      return;
    }
    uint64_t size = ArgU64(info, 0, "size", uint64_t(1) << 46);
    if (size == 0 || size % 4096 != 0)
      throw Napi::RangeError::New(env, "guest mapping size must be a non-zero multiple of 4096, got " +
                                           std::to_string(size));
    void* addr = MapGuestMemory(env, size);
    core_ = std::make_shared<MappingCore>();
    core_->addr = addr;
    core_->size = size;
    id_ = g_mappings.Add(core_);
  }

  std::shared_ptr<MappingCore> Core(Napi::Env env) {
    if (!core_) throw Napi::Error::New(env, "guest mapping " + std::to_string(id_) + " is closed");
    return core_;
  }

 private:
  static Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = static_cast<uint32_t>(ArgU64(info, 0, "id", UINT32_MAX));
    auto core = g_mappings.Find(id);
    if (!core) throw Napi::Error::New(env, "no live guest mapping with id " + std::to_string(id));
    auto holder = Napi::External<std::shared_ptr<MappingCore>>::New(env, &core);
    return Data(env).mappingCtor.New({info[0], holder});
  }

  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (buffer_.IsEmpty()) {
      auto core = Core(env);
      buffer_ = Napi::Persistent(ExternalView(env, core->addr, core->size, core));
    }
    return buffer_.Value();
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(Core(info.Env())->size)); }
  Napi::Value Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }

  // Detaches this thread's view and drops this handle's reference; the memory is unmapped once
  // no handle or view in any thread holds it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!buffer_.IsEmpty()) {
      buffer_.Value().Detach();
      buffer_.Reset();
    }
    core_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<MappingCore> core_;
  uint32_t id_ = 0;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

}  // namespace

MappingCore::~MappingCore() {
  if (addr) munmap(addr, size);
}

std::shared_ptr<MappingCore> UnwrapMapping(Napi::Env env, Napi::Value value) {
  // Each thread has its own constructor, so check the type tag rather than instanceof.
  if (!value.IsObject()) throw Napi::TypeError::New(env, "expected a GuestMapping");
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kMappingTag)) throw Napi::TypeError::New(env, "expected a GuestMapping");
  return GuestMapping::Unwrap(obj)->Core(env);
}

void InitMemory(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = GuestMapping::Define(env);
  Data(env).mappingCtor = Napi::Persistent(ctor);
  exports.Set("GuestMapping", ctor);
}

}  // namespace tsvmm
