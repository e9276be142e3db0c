// eventfd(2): ioeventfds (guest notifications) and irqfds (interrupts into the guest). Watching
// one on Node's event loop is FdWatcher's job (fd_watcher.cc), which drains it in C++.
#include <sys/eventfd.h>
#include <unistd.h>

#include "common.h"

namespace tsvmm {
namespace {

// eventfdCreate(nonBlocking = true) -> fd (always O_CLOEXEC).
Napi::Value EventFdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool nonBlocking = info.Length() < 1 || info[0].ToBoolean().Value();
  int fd = eventfd(0, EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0));
  if (fd < 0) throw ErrnoError(env, "eventfd", errno);
  return Napi::Number::New(env, fd);
}

// eventfdRead(fd) -> bigint counter value, 0n when nothing was signalled (EAGAIN).
Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t value = 0;
  ssize_t n = read(fd, &value, sizeof value);
  if (n < 0) {
    if (errno == EAGAIN) return Napi::BigInt::New(env, uint64_t(0));
    throw ErrnoError(env, "read", errno, "eventfd " + std::to_string(fd));
  }
  if (n != sizeof value) throw Napi::Error::New(env, "short read from eventfd " + std::to_string(fd));
  return Napi::BigInt::New(env, value);
}

// eventfdWrite(fd, value = 1): adds value to the counter (signals the eventfd).
Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t value = info.Length() > 1 ? ArgU64(info, 1, "value", UINT64_MAX - 1) : 1;
  ssize_t n = write(fd, &value, sizeof value);
  if (n < 0) throw ErrnoError(env, "write", errno, "eventfd " + std::to_string(fd));
  return env.Undefined();
}

}  // namespace

void InitEventFd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdCreate", Napi::Function::New(env, EventFdCreate, "eventfdCreate"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
}

}  // namespace tsvmm
