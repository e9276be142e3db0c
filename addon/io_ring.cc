// An io_uring (liburing) for positional vectored file I/O, completed on Node's event loop.
//
// Why: the virtio-blk backend's threadpool path (fs.readv/fs.writev) costs two thread hops per
// request (event loop -> libuv worker -> event loop, with a uv_async wake-up), and on a host with
// fewer cores than threads those hops decide the latency of queue depth 1 (bench/README.md,
// session 7). With io_uring the request is handed to the kernel in the submitting call; an
// O_DIRECT transfer needs no user-space thread at all, and a buffered one that must wait is
// carried by the kernel's own io-wq. The completion signals an eventfd registered with the ring,
// which a UvPoll (uv_poll.h) watches like every other fd of ours (design.md, "Event loop").
//
// The addon only moves bytes: which requests, in what order, and what a result means stay in
// TypeScript (src/vmm/io-ring.ts). Each operation carries a 32-bit tag chosen by JS; each
// completion comes back as the pair (tag, result), result being bytes moved or -errno, exactly
// the CQE's fields.
//
// Built only where liburing's headers are installed (binding.gyp defines TSVMM_HAVE_LIBURING);
// liburing is linked statically, so the addon runs on hosts that lack the shared library (the
// nested test bed's guest). Without it ioRingSupport() says why and the backend uses threads.
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <climits>
#include <cstring>
#include <vector>

#include "common.h"
#include "uv_poll.h"

#ifdef TSVMM_HAVE_LIBURING
#include <liburing.h>
#endif

namespace tsvmm {
namespace {

#ifdef TSVMM_HAVE_LIBURING

// Largest ring JS may ask for (entries; the completion ring is twice that).
constexpr uint32_t kMaxEntries = 4096;

// new IoRing(entries, completions: Int32Array, onComplete(err?, count?)):
//   readv(fd, buffers: Uint8Array[], position, tag), writev(...): queue and submit one transfer;
//   fdatasync(fd, tag): queue and submit fdatasync(2);
//   close(): stop watching and tear the ring down.
// onComplete(undefined, n) runs on the JS thread with completions[2i] = tag and
// completions[2i+1] = result for i < n; it may run several times per wake-up. JS keeps at most
// `entries` operations in flight (the completion ring, 2 x entries, then cannot overflow) and
// keeps the buffers alive until their completion.
class IoRing : public Napi::ObjectWrap<IoRing> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoRing",
                       {InstanceMethod<&IoRing::Readv>("readv"), InstanceMethod<&IoRing::Writev>("writev"),
                        InstanceMethod<&IoRing::Fdatasync>("fdatasync"), InstanceMethod<&IoRing::Close>("close")});
  }

  explicit IoRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoRing>(info) {
    Napi::Env env = info.Env();
    uint32_t entries = uint32_t(ArgU64(info, 0, "entries", kMaxEntries));
    if (entries == 0) throw Napi::RangeError::New(env, "IoRing: entries must be 1 to " + std::to_string(kMaxEntries));
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(env, "IoRing: completions must be an Int32Array");
    }
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "IoRing needs a completion callback");
    Napi::Int32Array out = info[1].As<Napi::Int32Array>();
    if (out.ElementLength() < 2) throw Napi::RangeError::New(env, "IoRing: completions holds no pair");
    completions_ = Napi::Persistent(out);
    capacity_ = uint32_t(out.ElementLength() / 2);
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());

    io_uring_params params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 2;
    int rc = io_uring_queue_init_params(entries, &ring_, &params);
    if (rc < 0) throw ErrnoError(env, "io_uring_setup", -rc, std::to_string(entries) + " entries");
    ringUp_ = true;
    // Submitted iovecs must be consumed at submission (Linux 5.5), since ours live on the stack.
    if (!(params.features & IORING_FEAT_SUBMIT_STABLE)) {
      Teardown();
      throw ErrnoError(env, "io_uring_setup", ENOTSUP, "the kernel lacks IORING_FEAT_SUBMIT_STABLE");
    }
    UniqueFd efd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd.Valid()) {
      int err = errno;
      Teardown();
      throw ErrnoError(env, "eventfd", err);
    }
    rc = io_uring_register_eventfd(&ring_, efd.Get());
    if (rc < 0) {
      Teardown();
      throw ErrnoError(env, "io_uring_register(EVENTFD)", -rc);
    }
    eventFd_ = std::move(efd);

    try {
      poll_.Init(env, eventFd_.Get(), [this](int status, int) { OnPoll(status); });
      poll_.SetEvents(env, UV_READABLE);
    } catch (...) {
      Teardown();
      throw;
    }
    // The watcher keeps the process alive only while operations are in flight, like a pending
    // fs call; an idle ring does not hold the event loop open.
    poll_.Unref();
    Ref();  // stay alive while the ring is up, even if JS drops the object
  }

  ~IoRing() override { Teardown(); }

 private:
  // Prepares a readv/writev SQE from (fd, buffers, position, tag) and submits it.
  Napi::Value Transfer(const Napi::CallbackInfo& info, bool write) {
    Napi::Env env = info.Env();
    const char* op = write ? "IoRing.writev" : "IoRing.readv";
    CheckUp(env, op);
    int fd = ArgFd(info, 0, "fd");
    std::vector<iovec> iov = Uint8ArrayIovecs(env, info[1], op);
    uint32_t count = uint32_t(iov.size());
    uint64_t position = ArgU64(info, 2, "position", uint64_t(INT64_MAX));
    uint32_t tag = uint32_t(ArgU64(info, 3, "tag", UINT32_MAX));
    io_uring_sqe* sqe = NextSqe(env, op);
    if (write) {
      io_uring_prep_writev(sqe, fd, iov.data(), count, position);
    } else {
      io_uring_prep_readv(sqe, fd, iov.data(), count, position);
    }
    io_uring_sqe_set_data64(sqe, tag);
    Submit(env, op);  // consumes the iovecs (IORING_FEAT_SUBMIT_STABLE)
    return env.Undefined();
  }

  Napi::Value Readv(const Napi::CallbackInfo& info) { return Transfer(info, false); }
  Napi::Value Writev(const Napi::CallbackInfo& info) { return Transfer(info, true); }

  Napi::Value Fdatasync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckUp(env, "IoRing.fdatasync");
    int fd = ArgFd(info, 0, "fd");
    uint32_t tag = uint32_t(ArgU64(info, 1, "tag", UINT32_MAX));
    io_uring_sqe* sqe = NextSqe(env, "IoRing.fdatasync");
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, tag);
    Submit(env, "IoRing.fdatasync");
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (ringUp_) {
      Teardown();
      Unref();
    }
    return info.Env().Undefined();
  }

  void CheckUp(Napi::Env env, const char* op) {
    if (!ringUp_) throw Napi::Error::New(env, std::string(op) + ": the ring is closed");
  }

  io_uring_sqe* NextSqe(Napi::Env env, const char* op) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) throw ErrnoError(env, op, EBUSY, "the submission ring is full");
    return sqe;
  }

  void Submit(Napi::Env env, const char* op) {
    int rc;
    do {
      rc = io_uring_submit(&ring_);
    } while (rc == -EINTR);
    if (rc < 0) throw ErrnoError(env, std::string(op) + " io_uring_enter", -rc);
    if (inFlight_++ == 0) poll_.Ref();
  }

  // The completion eventfd is readable: reset it, then take what the completion ring holds.
  void OnPoll(int status) {
    if (!ringUp_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      Deliver({ErrnoError(env, "uv_poll", -status, "io_uring eventfd").Value()});
      return;
    }
    uint64_t count;
    ssize_t n;
    do {
      n = read(eventFd_.Get(), &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) {
      Deliver({ErrnoError(env, "read", errno, "io_uring eventfd").Value()});
      return;
    }
    Drain(env);
  }

  // Copies completions into the shared array and hands them to JS, a batch at a time, until the
  // completion ring is empty (the callback may submit more; their completions are taken too).
  void Drain(Napi::Env env) {
    for (;;) {
      if (!ringUp_) return;  // closed by the callback
      int32_t* out = completions_.Value().Data();
      uint32_t n = 0;
      io_uring_cqe* cqe;
      unsigned head;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        if (n == capacity_) break;
        out[2 * n] = int32_t(uint32_t(io_uring_cqe_get_data64(cqe)));
        out[2 * n + 1] = cqe->res;
        n++;
      }
      if (n == 0) return;
      io_uring_cq_advance(&ring_, n);
      inFlight_ -= n;
      if (inFlight_ == 0) poll_.Unref();
      Deliver({env.Undefined(), Napi::Number::New(env, n)});
    }
  }

  void Deliver(std::initializer_list<napi_value> args) { CallFromLoop(Env(), callback_, Value(), args); }

  // Stops watching and exits the ring. The kernel finishes or cancels what is still in flight on
  // its own; JS closes only a ring with nothing in flight (the device quiesces first).
  void Teardown() {
    poll_.Close();
    if (ringUp_) {
      io_uring_queue_exit(&ring_);
      ringUp_ = false;
    }
    eventFd_.Reset();
  }

  io_uring ring_ = {};
  bool ringUp_ = false;
  UniqueFd eventFd_;
  UvPoll poll_;  // after eventFd_: closed before the fd it watches
  uint32_t inFlight_ = 0;
  uint32_t capacity_ = 0;
  Napi::Reference<Napi::Int32Array> completions_;
  Napi::FunctionReference callback_;
};

// ioRingSupport() -> null when an IoRing can be made here, else why not (a sentence).
Napi::Value IoRingSupport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  io_uring ring;
  io_uring_params params = {};
  int rc = io_uring_queue_init_params(1, &ring, &params);
  if (rc < 0) {
    return Napi::String::New(env, std::string("io_uring_setup failed: ") + strerror(-rc) +
                                      (rc == -ENOSYS ? " (the kernel has no io_uring)" : rc == -EPERM ? " (disabled: kernel.io_uring_disabled, or a seccomp filter)" : ""));
  }
  bool stable = params.features & IORING_FEAT_SUBMIT_STABLE;
  io_uring_queue_exit(&ring);
  if (!stable) return Napi::String::New(env, "the kernel's io_uring lacks IORING_FEAT_SUBMIT_STABLE (Linux 5.5)");
  return env.Null();
}

#else  // !TSVMM_HAVE_LIBURING

Napi::Value IoRingSupport(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), "the addon was built without liburing (apt-get install liburing-dev, then npm run install)");
}

#endif

}  // namespace

void InitIoRing(Napi::Env env, Napi::Object exports) {
  exports.Set("ioRingSupport", Napi::Function::New(env, IoRingSupport, "ioRingSupport"));
#ifdef TSVMM_HAVE_LIBURING
  exports.Set("IoRing", IoRing::Define(env));
#endif
}

}  // namespace tsvmm
