// A disk's own small pool of threads for positional vectored file I/O, completed on Node's event
// loop: QEMU's aio=threads (util/thread-pool.c) in place of libuv's shared threadpool.
//
// Why not fs.readv/fs.writev on libuv's threadpool (bench/README.md, session 13): libuv's post()
// signals a worker's condition variable while it holds the pool's mutex, so on a host with fewer
// free CPUs than runnable threads the woken worker preempts the event loop and at once sleeps
// again on that mutex: two context switches per request, which at queue depth 1 are paid in the
// guest's latency. Every completion also wakes the loop through libuv's one uv_async and enters
// JavaScript once per request. Here the submitter signals after unlocking, a worker that finds
// the completion list empty signals one eventfd (so completions that land together are handed
// to JS in one call, as io_uring's are), and the pool serves one disk only.
//
// The interface is IoRing's (io_ring.cc), so src/vmm/tagged-io.ts drives either: each operation
// carries a 32-bit tag chosen by JS; each completion comes back as (tag, result), result being
// bytes moved or -errno. The addon only moves bytes: which requests, and what a result means,
// stay in TypeScript.
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <climits>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common.h"

namespace tsvmm {
namespace {

// Most threads JS may ask for in one pool, and most operations it may keep in flight.
constexpr uint32_t kMaxThreads = 64;
constexpr uint32_t kMaxEntries = 4096;

enum class OpKind { kReadv, kWritev, kFdatasync };

struct Op {
  OpKind kind;
  int fd;
  uint64_t position;
  uint32_t tag;
  std::vector<iovec> iov;  // copied at submission; the bytes are JS's, kept alive until completion
};

// What the event-loop thread and the workers share. The JS object owns it and joins the workers
// before letting it go.
struct Pool {
  std::mutex mu;
  std::condition_variable work;
  std::deque<Op> queue;                             // submitted, not yet taken by a worker
  std::vector<std::pair<uint32_t, int32_t>> done;   // (tag, result), not yet handed to JS
  uint32_t idle = 0;                                // workers waiting for work
  bool stop = false;
  UniqueFd eventFd;                                 // signalled when `done` becomes non-empty
};

int32_t Perform(const Op& op) {
  ssize_t r;
  do {
    switch (op.kind) {
      case OpKind::kReadv:
        r = preadv(op.fd, op.iov.data(), int(op.iov.size()), off_t(op.position));
        break;
      case OpKind::kWritev:
        r = pwritev(op.fd, op.iov.data(), int(op.iov.size()), off_t(op.position));
        break;
      default:
        r = fdatasync(op.fd);
        break;
    }
  } while (r < 0 && errno == EINTR);
  // Linux moves at most MAX_RW_COUNT (INT_MAX rounded down to a page) in one call.
  return r < 0 ? -errno : int32_t(r > INT32_MAX ? INT32_MAX : r);
}

void Worker(Pool* pool) {
  std::unique_lock<std::mutex> lock(pool->mu);
  for (;;) {
    while (pool->queue.empty() && !pool->stop) {
      pool->idle++;
      pool->work.wait(lock);
      pool->idle--;
    }
    if (pool->stop) return;  // close() comes only with nothing in flight
    Op op = std::move(pool->queue.front());
    pool->queue.pop_front();
    lock.unlock();
    int32_t result = Perform(op);
    lock.lock();
    bool first = pool->done.empty();
    pool->done.emplace_back(op.tag, result);
    if (first) {
      // Signalled outside the lock, so the woken event loop does not block on it. A write that
      // lands after the loop already took this completion only costs a wake-up that finds none.
      lock.unlock();
      uint64_t one = 1;
      ssize_t n;
      do {
        n = write(pool->eventFd.Get(), &one, sizeof one);
      } while (n < 0 && errno == EINTR);
      // EAGAIN (the counter at its maximum) still leaves the eventfd readable; nothing else fails
      // on an eventfd we own.
      lock.lock();
    }
  }
}

// new IoThreads(threads, completions: Int32Array, onComplete(err?, count?)):
//   readv(fd, buffers: Uint8Array[], position, tag), writev(...): queue one transfer;
//   fdatasync(fd, tag): queue fdatasync(2);
//   close(): stop watching, stop and join the threads.
// Threads are started as work finds none idle, up to `threads`. onComplete(undefined, n) runs on
// the JS thread with completions[2i] = tag and completions[2i+1] = result for i < n; it may run
// several times per wake-up. JS keeps at most completions.length / 2 operations in flight and
// keeps the buffers alive until their completion, as with IoRing.
class IoThreads : public Napi::ObjectWrap<IoThreads> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoThreads",
                       {InstanceMethod<&IoThreads::Readv>("readv"), InstanceMethod<&IoThreads::Writev>("writev"),
                        InstanceMethod<&IoThreads::Fdatasync>("fdatasync"), InstanceMethod<&IoThreads::Close>("close")});
  }

  explicit IoThreads(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoThreads>(info) {
    Napi::Env env = info.Env();
    maxThreads_ = uint32_t(ArgU64(info, 0, "threads", kMaxThreads));
    if (maxThreads_ == 0) throw Napi::RangeError::New(env, "IoThreads: threads must be 1 to " + std::to_string(kMaxThreads));
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(env, "IoThreads: completions must be an Int32Array");
    }
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "IoThreads needs a completion callback");
    Napi::Int32Array out = info[1].As<Napi::Int32Array>();
    if (out.ElementLength() < 2 || out.ElementLength() / 2 > kMaxEntries) {
      throw Napi::RangeError::New(env, "IoThreads: completions must hold 1 to " + std::to_string(kMaxEntries) + " pairs");
    }
    completions_ = Napi::Persistent(out);
    capacity_ = uint32_t(out.ElementLength() / 2);
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());

    pool_ = std::make_unique<Pool>();
    pool_->eventFd = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!pool_->eventFd.Valid()) throw ErrnoError(env, "eventfd", errno);
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no libuv loop");
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, pool_->eventFd.Get());
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      throw ErrnoError(env, "uv_poll_init", -rc);
    }
    poll_->data = this;
    rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (rc != 0) {
      Teardown();
      throw ErrnoError(env, "uv_poll_start", -rc);
    }
    // Held open only while operations are in flight, like a pending fs call (as IoRing).
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    up_ = true;
    Ref();  // stay alive while up, even if JS drops the object
  }

  ~IoThreads() override { Teardown(); }

 private:
  Napi::Value Transfer(const Napi::CallbackInfo& info, OpKind kind, const char* op) {
    Napi::Env env = info.Env();
    CheckUp(env, op);
    Op o{kind, ArgFd(info, 0, "fd"), 0, 0, Uint8ArrayIovecs(env, info[1], op)};
    o.position = ArgU64(info, 2, "position", uint64_t(INT64_MAX));
    o.tag = uint32_t(ArgU64(info, 3, "tag", UINT32_MAX));
    Submit(env, std::move(o), op);
    return env.Undefined();
  }

  Napi::Value Readv(const Napi::CallbackInfo& info) { return Transfer(info, OpKind::kReadv, "IoThreads.readv"); }
  Napi::Value Writev(const Napi::CallbackInfo& info) { return Transfer(info, OpKind::kWritev, "IoThreads.writev"); }

  Napi::Value Fdatasync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckUp(env, "IoThreads.fdatasync");
    Op o{OpKind::kFdatasync, ArgFd(info, 0, "fd"), 0, uint32_t(ArgU64(info, 1, "tag", UINT32_MAX)), {}};
    Submit(env, std::move(o), "IoThreads.fdatasync");
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (up_) {
      Teardown();
      Unref();
    }
    return info.Env().Undefined();
  }

  void CheckUp(Napi::Env env, const char* op) {
    if (!up_) throw Napi::Error::New(env, std::string(op) + ": the pool is closed");
  }

  void Submit(Napi::Env env, Op&& op, const char* name) {
    if (inFlight_ >= capacity_) throw ErrnoError(env, name, EBUSY, "more operations in flight than completion slots");
    bool spawn;
    {
      std::lock_guard<std::mutex> lock(pool_->mu);
      pool_->queue.push_back(std::move(op));
      // A new thread only when none is idle for this operation (QEMU's spawn-on-demand).
      spawn = pool_->idle < pool_->queue.size() && threads_.size() < maxThreads_;
    }
    if (spawn) Spawn(env, name);
    pool_->work.notify_one();  // after unlocking: the woken worker does not block on the mutex
    if (inFlight_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  }

  // Starts one worker with every signal blocked (it inherits the mask), so that no signal meant
  // for the process (SIGINT, a vCPU's kick) is delivered to a thread in the middle of a write.
  void Spawn(Napi::Env env, const char* name) {
    sigset_t all, old;
    sigfillset(&all);
    int rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc != 0) throw ErrnoError(env, std::string(name) + " pthread_sigmask", rc);
    try {
      threads_.emplace_back(Worker, pool_.get());
    } catch (const std::system_error& e) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      // The operation is queued: a worker already running takes it, if there is one.
      if (threads_.empty()) {
        std::lock_guard<std::mutex> lock(pool_->mu);
        pool_->queue.pop_back();
        throw ErrnoError(env, std::string(name) + " pthread_create", e.code().value());
      }
      return;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  static void OnPoll(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<IoThreads*>(handle->data);
    if (!self || !self->up_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->Deliver({ErrnoError(env, "uv_poll", -status).Value()});
      return;
    }
    uint64_t count;
    ssize_t n;
    do {
      n = read(self->pool_->eventFd.Get(), &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) {
      self->Deliver({ErrnoError(env, "read", errno, "IoThreads eventfd").Value()});
      return;
    }
    self->Drain(env);
  }

  // Hands JS every completion the workers have posted, a batch at a time, until none is left (the
  // callback may submit more; those that complete meanwhile are taken too).
  void Drain(Napi::Env env) {
    std::vector<std::pair<uint32_t, int32_t>> batch;
    for (;;) {
      if (!up_) return;  // closed by the callback
      {
        std::lock_guard<std::mutex> lock(pool_->mu);
        batch.swap(pool_->done);
      }
      if (batch.empty()) return;
      for (size_t at = 0; at < batch.size();) {
        if (!up_) return;
        int32_t* out = completions_.Value().Data();
        uint32_t n = 0;
        for (; n < capacity_ && at < batch.size(); n++, at++) {
          out[2 * n] = int32_t(batch[at].first);
          out[2 * n + 1] = batch[at].second;
        }
        inFlight_ -= n;
        if (inFlight_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
        Deliver({env.Undefined(), Napi::Number::New(env, n)});
      }
      batch.clear();
    }
  }

  // As FdWatcher::Deliver: MakeCallback, so promise jobs run before control returns to libuv.
  void Deliver(const std::initializer_list<napi_value>& args) {
    Napi::Env env = Env();
    try {
      callback_.MakeCallback(Value(), args);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  // Stops watching, then stops and joins the workers: JS closes a pool with nothing in flight (the
  // device quiesces first), so a join waits at most for the operation a worker is in.
  void Teardown() {
    up_ = false;
    if (poll_) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (pool_) {
      {
        std::lock_guard<std::mutex> lock(pool_->mu);
        pool_->stop = true;
      }
      pool_->work.notify_all();
      for (std::thread& t : threads_) t.join();
      threads_.clear();
      pool_.reset();
    }
  }

  std::unique_ptr<Pool> pool_;
  std::vector<std::thread> threads_;
  uint32_t maxThreads_ = 0;
  bool up_ = false;
  uv_poll_t* poll_ = nullptr;
  uint32_t inFlight_ = 0;
  uint32_t capacity_ = 0;
  Napi::Reference<Napi::Int32Array> completions_;
  Napi::FunctionReference callback_;
};

}  // namespace

void InitIoThreads(Napi::Env env, Napi::Object exports) {
  exports.Set("IoThreads", IoThreads::Define(env));
}

}  // namespace tsvmm
