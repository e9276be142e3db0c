// eventfd(2) and a uv_poll-based watcher, so ioeventfds (guest notifications) and irqfds
// (interrupts into the guest) are served by Node's own event loop without busy-polling.
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

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

// new FdWatcher(fd, onSignal): fd is a non-blocking eventfd; whenever it becomes readable the
// watcher drains its counter and calls onSignal(undefined, count) on the JS thread (an error:
// onSignal(err)). A wake-up that finds the counter already drained calls nothing. Draining here
// rather than in the callback saves a second JS-to-C++ call and a BigInt per doorbell, which is
// per virtio request. close() stops watching; the fd itself belongs to the caller.
class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher", {InstanceMethod<&FdWatcher::Close>("close")});
  }

  explicit FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0, "fd");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "FdWatcher needs a callback");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    fd_ = fd;
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no libuv loop");
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      throw ErrnoError(env, "uv_poll_init", -rc, "fd " + std::to_string(fd));
    }
    poll_->data = this;
    rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (rc != 0) {
      Stop();
      throw ErrnoError(env, "uv_poll_start", -rc, "fd " + std::to_string(fd));
    }
    Ref();  // stay alive while watching, even if JS drops the object
    watching_ = true;
  }

  ~FdWatcher() override { Stop(); }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<FdWatcher*>(handle->data);
    if (!self || !self->watching_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->Deliver({ErrnoError(env, "uv_poll", -status).Value()});
      return;
    }
    uint64_t count = 0;
    ssize_t n;
    do {
      n = read(self->fd_, &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return;  // already drained (a spurious or shared wake-up)
    if (n < 0) {
      self->Deliver({ErrnoError(env, "read", errno, "eventfd " + std::to_string(self->fd_)).Value()});
    } else if (n != sizeof count) {
      self->Deliver({Napi::Error::New(env, "short read from eventfd " + std::to_string(self->fd_)).Value()});
    } else {
      // A double holds any count a doorbell reaches (2^53 signals); callers test it for > 0.
      self->Deliver({env.Undefined(), Napi::Number::New(env, double(count))});
    }
  }

  // Calls the JS callback the way Node calls its own I/O callbacks (MakeCallback): the promise
  // jobs and nextTicks it queues run before control returns to libuv, not at some later
  // callback. A throw becomes the process's uncaught exception instead of a C++ exception
  // escaping into libuv.
  void Deliver(const std::initializer_list<napi_value>& args) {
    Napi::Env env = Env();
    try {
      callback_.MakeCallback(Value(), args);  // napi_make_callback wants an object as `this`
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void Stop() {
    if (!poll_) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (watching_) {
      watching_ = false;
      Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::FunctionReference callback_;
  uv_poll_t* poll_ = nullptr;
  int fd_ = -1;
  bool watching_ = false;
};

}  // namespace

void InitEventFd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdCreate", Napi::Function::New(env, EventFdCreate, "eventfdCreate"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("FdWatcher", FdWatcher::Define(env));
}

}  // namespace tsvmm
