// Shared helpers for the tsvmm addon: errno-carrying JS errors, an owning fd, and the
// process-wide registries that let a worker_thread attach to a vCPU or memory mapping that
// another thread created (the JS objects are per-thread; the kernel objects are not).
#pragma once

#include <napi.h>

#include <sys/ioctl.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace tsvmm {

// A JS Error whose message names the operation and errno, with .errno, .code and .syscall set,
// the shape Node's own fs errors have.
Napi::Error ErrnoError(Napi::Env env, const std::string& op, int err, const std::string& context = "");

// Throws ErrnoError when rc < 0 (errno read at once), else returns rc.
int Check(Napi::Env env, int rc, const char* op, const std::string& context = "");

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    Reset(o.Release());
    return *this;
  }
  int Get() const { return fd_; }
  bool Valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_;
};

// An id -> weak_ptr table guarded by a mutex. Objects register on creation; another thread
// attaches by id while the creator still holds the object.
template <typename T>
class Registry {
 public:
  uint32_t Add(const std::shared_ptr<T>& obj) {
    std::lock_guard<std::mutex> lock(mu_);
    uint32_t id = ++next_;
    items_[id] = obj;
    // Forget expired entries now and then so the table does not grow without bound.
    if (items_.size() > 64) {
      for (auto it = items_.begin(); it != items_.end();) {
        it = it->second.expired() ? items_.erase(it) : std::next(it);
      }
    }
    return id;
  }
  std::shared_ptr<T> Find(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = items_.find(id);
    return it == items_.end() ? nullptr : it->second.lock();
  }

 private:
  std::mutex mu_;
  uint32_t next_ = 0;
  std::unordered_map<uint32_t, std::weak_ptr<T>> items_;
};

// Reads a non-negative integer argument that must fit the given bound.
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t max = UINT64_MAX);
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);

// Creates an ArrayBuffer over host memory [addr, addr+len) whose finalizer drops `keepAlive`,
// so the memory outlives every view of it.
template <typename T>
Napi::ArrayBuffer ExternalView(Napi::Env env, void* addr, size_t len, std::shared_ptr<T> keepAlive) {
  auto* hint = new std::shared_ptr<T>(std::move(keepAlive));
  return Napi::ArrayBuffer::New(
      env, addr, len, [](Napi::Env, void*, std::shared_ptr<T>* h) { delete h; }, hint);
}

// Per-environment state (the main thread and every worker_thread load the addon separately).
struct AddonData {
  Napi::FunctionReference mappingCtor;
  Napi::FunctionReference vcpuCtor;
};
inline AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

void InitKvm(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitVcpu(Napi::Env env, Napi::Object exports);
void InitEventFd(Napi::Env env, Napi::Object exports);
void InitFdWatcher(Napi::Env env, Napi::Object exports);
void InitVcpuThread(Napi::Env env, Napi::Object exports);
void InitFileIo(Napi::Env env, Napi::Object exports);
void InitIoRing(Napi::Env env, Napi::Object exports);
void InitFsAt(Napi::Env env, Napi::Object exports);

// The iovecs of `list`, a JS array of 1 to IOV_MAX Uint8Arrays, pointing at their bytes (zero
// copy): what preadv/pwritev and io_uring's readv/writev take. One napi_get_element and one
// napi_get_typedarray_info per buffer (a guest's 1 MiB request can bring 256 of them). Throws a
// TypeError or RangeError naming `op` and the buffer.
std::vector<iovec> Uint8ArrayIovecs(Napi::Env env, Napi::Value list, const std::string& op);

// ioctl(2), again while a signal interrupted it. For configuration ioctls, not KVM_RUN (which has
// its own loop in vcpu.cc): they fail with EINTR before doing anything, so EINTR means "not
// done, try again". Seen: KVM_CREATE_VM under `node --cpu-prof`, whose SIGPROF lands during it.
template <typename Arg>
inline int IoctlRetrying(int fd, unsigned long request, Arg arg) {
  int rc;
  do {
    rc = ioctl(fd, request, arg);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

}  // namespace tsvmm
