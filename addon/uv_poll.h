// The one copy of the uv_poll lifecycle in the addon: watching an fd for readiness on the Node
// event loop of the calling thread (libuv docs, "uv_poll_t — Poll handle"), and delivering the
// result to JS the way Node delivers its own I/O callbacks. IoRing and the JS FdWatcher use it.
#pragma once

#include <napi.h>
#include <uv.h>

#include <functional>
#include <initializer_list>

namespace tsvmm {

// Owns one uv_poll_t. The handle lives on the heap because libuv frees it only after uv_close's
// callback, which runs on a later loop iteration; Close() clears the handle's data pointer first,
// so a readiness callback libuv still has queued for it finds no UvPoll and does nothing.
//
// Not copyable or movable (the handle points back at it). Closing from inside its own callback is
// safe; the callback object itself stays alive until the UvPoll is destroyed, so owners close
// rather than destroy a UvPoll while it may be calling them.
class UvPoll {
 public:
  // status 0 with the ready UV_* events (a subset of those watched), or status < 0: a libuv
  // error (UV_EBADF when epoll reports EPOLLERR), after which libuv has stopped the handle.
  using Callback = std::function<void(int status, int events)>;

  UvPoll() = default;
  ~UvPoll() { Close(); }
  UvPoll(const UvPoll&) = delete;
  UvPoll& operator=(const UvPoll&) = delete;

  // uv_poll_init on env's loop for fd; the handle starts stopped and ref'ed. libuv sets fd
  // O_NONBLOCK, refuses fds epoll cannot watch (a regular file: EPERM) and an fd another handle
  // of this loop already watches (EEXIST). Throws ErrnoError naming the fd.
  void Init(Napi::Env env, int fd, Callback callback);

  // Watches for `events` (UV_READABLE | UV_WRITABLE | UV_DISCONNECT); 0 stops watching without
  // closing. Starting again replaces the mask (uv_poll_start). Throws ErrnoError.
  void SetEvents(Napi::Env env, int events);

  // uv_close; idempotent. The fd is never closed: it belongs to the caller.
  void Close();

  // Whether an active handle keeps the event loop alive (uv_ref/uv_unref). A stopped handle
  // never does, whatever this says.
  void Ref();
  void Unref();

  bool IsOpen() const { return handle_ != nullptr; }
  int Fd() const { return fd_; }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);

  uv_poll_t* handle_ = nullptr;
  int fd_ = -1;
  Callback callback_;
};

// Calls fn from a libuv callback the way Node calls its own I/O callbacks (napi_make_callback):
// the promise jobs and nextTicks it queues run before control returns to libuv, not at some
// later callback. A JS throw becomes the process's uncaught exception (napi_fatal_exception)
// instead of a C++ exception escaping into libuv. recv is `this` for fn and must be an object.
void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Object recv,
                  std::initializer_list<napi_value> args);

}  // namespace tsvmm
