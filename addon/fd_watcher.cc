// FdWatcher: readiness of any pollable fd (eventfd, pipe, TAP, socket) delivered to a JS callback
// on the Node event loop of the thread that made it, through UvPoll (uv_poll.h).
#include <unistd.h>
#include <uv.h>

#include <string>

#include "common.h"
#include "uv_poll.h"

namespace tsvmm {
namespace {

// The JS event bits, mapped to libuv's by name rather than by value.
constexpr uint32_t kReadable = 1;    // UV_READABLE: EPOLLIN
constexpr uint32_t kWritable = 2;    // UV_WRITABLE: EPOLLOUT
constexpr uint32_t kDisconnect = 4;  // UV_DISCONNECT: EPOLLRDHUP, or EPOLLHUP (libuv reports a hang-up as every watched event)
constexpr uint32_t kAllEvents = kReadable | kWritable | kDisconnect;

int ToUvEvents(uint32_t events) {
  return (events & kReadable ? UV_READABLE : 0) | (events & kWritable ? UV_WRITABLE : 0) |
         (events & kDisconnect ? UV_DISCONNECT : 0);
}

uint32_t FromUvEvents(int events) {
  return (events & UV_READABLE ? kReadable : 0) | (events & UV_WRITABLE ? kWritable : 0) |
         (events & UV_DISCONNECT ? kDisconnect : 0);
}

// new FdWatcher(fd, events, callback, drainEventfd):
//   events: a mask of 1 (readable), 2 (writable), 4 (disconnect); 0 creates it paused.
//   drainEventfd = true: fd is a non-blocking eventfd and events is 0 or 1. When it becomes
//     readable the watcher reads (drains) its 8-byte counter and calls callback(undefined, count);
//     a wake-up that finds the counter already drained (EAGAIN) calls nothing. Draining here
//     rather than in the callback saves a second JS-to-C++ call and a BigInt per doorbell, which
//     is per virtio request.
//   drainEventfd = false: callback(undefined, ready) whenever fd is ready for some of the watched
//     events, `ready` being those events as the same mask. Readiness is level-triggered: a fd left
//     readable calls again on the next loop iteration.
//   Either way a libuv error calls callback(err); libuv has then stopped watching (setEvents
//   starts again).
// setEvents(mask): replaces the watched events; 0 pauses without closing.
// ref() / unref(): whether a watching FdWatcher holds the event loop open (it does at first).
// close(): stops for good; idempotent, and safe inside the callback. The fd belongs to the caller
//   and is never closed here (libuv does set it O_NONBLOCK).
class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {InstanceMethod<&FdWatcher::SetEvents>("setEvents"), InstanceMethod<&FdWatcher::Close>("close"),
                        InstanceMethod<&FdWatcher::LoopRef>("ref"), InstanceMethod<&FdWatcher::LoopUnref>("unref")});
  }

  explicit FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info, 0, "fd");
    drain_ = info[3].ToBoolean().Value();
    uint32_t events = ArgEvents(info, 1);
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "FdWatcher needs a callback");
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());
    poll_.Init(env, fd, [this](int status, int ready) { OnReady(status, ready); });
    poll_.SetEvents(env, ToUvEvents(events));  // on a throw, ~UvPoll closes the handle
    Ref();  // stay alive until close(), even if JS drops the object
  }

 private:
  uint32_t ArgEvents(const Napi::CallbackInfo& info, size_t i) {
    uint32_t events = uint32_t(ArgU64(info, i, "events", kAllEvents));
    if (drain_ && (events & ~kReadable)) {
      throw Napi::RangeError::New(info.Env(), "FdWatcher: an eventfd counter is watched for readable (1) only, got " +
                                                  std::to_string(events));
    }
    return events;
  }

  void OnReady(int status, int ready) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      Deliver({ErrnoError(env, "uv_poll", -status, "fd " + std::to_string(poll_.Fd())).Value()});
    } else if (drain_) {
      if (ready & UV_READABLE) DrainEventfd(env);
    } else if (uint32_t mask = FromUvEvents(ready)) {
      Deliver({env.Undefined(), Napi::Number::New(env, mask)});
    }
  }

  void DrainEventfd(Napi::Env env) {
    int fd = poll_.Fd();
    uint64_t count = 0;
    ssize_t n;
    do {
      n = read(fd, &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return;  // already drained (a spurious or shared wake-up)
    if (n < 0) {
      Deliver({ErrnoError(env, "read", errno, "eventfd " + std::to_string(fd)).Value()});
    } else if (n != sizeof count) {
      Deliver({Napi::Error::New(env, "short read from eventfd " + std::to_string(fd)).Value()});
    } else {
      // A double holds any count a doorbell reaches (2^53 signals); callers test it for > 0.
      Deliver({env.Undefined(), Napi::Number::New(env, double(count))});
    }
  }

  void Deliver(std::initializer_list<napi_value> args) { CallFromLoop(Env(), callback_, Value(), args); }

  Napi::Value SetEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t events = ArgEvents(info, 0);
    if (!poll_.IsOpen()) throw Napi::Error::New(env, "FdWatcher.setEvents: the watcher is closed");
    poll_.SetEvents(env, ToUvEvents(events));
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (poll_.IsOpen()) {
      poll_.Close();
      Unref();  // JS may collect it now
    }
    return info.Env().Undefined();
  }

  Napi::Value LoopRef(const Napi::CallbackInfo& info) {
    poll_.Ref();
    return info.Env().Undefined();
  }

  Napi::Value LoopUnref(const Napi::CallbackInfo& info) {
    poll_.Unref();
    return info.Env().Undefined();
  }

  bool drain_ = false;
  Napi::FunctionReference callback_;
  UvPoll poll_;  // last: destroyed (closed) first
};

}  // namespace

void InitFdWatcher(Napi::Env env, Napi::Object exports) { exports.Set("FdWatcher", FdWatcher::Define(env)); }

}  // namespace tsvmm
