#include "uv_poll.h"

#include <string>

#include "common.h"

namespace tsvmm {

namespace {
uv_handle_t* AsHandle(uv_poll_t* p) { return reinterpret_cast<uv_handle_t*>(p); }
std::string FdContext(int fd) { return "fd " + std::to_string(fd); }
}  // namespace

void UvPoll::Init(Napi::Env env, int fd, Callback callback) {
  if (handle_) throw Napi::Error::New(env, "UvPoll::Init: already watching " + FdContext(fd_));
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) throw Napi::Error::New(env, "no libuv loop");
  auto* handle = new uv_poll_t;
  int rc = uv_poll_init(loop, handle, fd);
  if (rc != 0) {
    delete handle;  // uv_poll_init failed before registering the handle with the loop
    throw ErrnoError(env, "uv_poll_init", -rc, FdContext(fd));
  }
  handle->data = this;
  handle_ = handle;
  fd_ = fd;
  callback_ = std::move(callback);
}

void UvPoll::SetEvents(Napi::Env env, int events) {
  if (!handle_) throw Napi::Error::New(env, "UvPoll: the watcher of " + FdContext(fd_) + " is closed");
  int rc = events == 0 ? uv_poll_stop(handle_) : uv_poll_start(handle_, events, OnPoll);
  if (rc != 0) throw ErrnoError(env, events == 0 ? "uv_poll_stop" : "uv_poll_start", -rc, FdContext(fd_));
}

void UvPoll::Close() {
  if (!handle_) return;
  // uv_close stops the handle itself; data is cleared first so nothing reaches this object again.
  handle_->data = nullptr;
  uv_close(AsHandle(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  handle_ = nullptr;
}

void UvPoll::Ref() {
  if (handle_) uv_ref(AsHandle(handle_));
}

void UvPoll::Unref() {
  if (handle_) uv_unref(AsHandle(handle_));
}

void UvPoll::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<UvPoll*>(handle->data);
  if (!self) return;  // closed; uv_close's callback has yet to run
  self->callback_(status, events);
}

void CallFromLoop(Napi::Env env, const Napi::FunctionReference& fn, Napi::Object recv,
                  std::initializer_list<napi_value> args) {
  try {
    fn.MakeCallback(recv, args);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace tsvmm
