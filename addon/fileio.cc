// preadv2(2) with RWF_NOWAIT: a positional read that copies what the page cache already holds and
// never waits for a device or a lock. The virtio-blk backend tries it on the event-loop thread
// first and hands the request to libuv's threadpool only when the data is not all cached: a
// cached 4 KiB read then costs one system call instead of a threadpool round trip (measured:
// ~1 µs against ~16 µs, bench/blk-io-path.ts and bench/blk-device.ts). Node's fs has no flags
// argument for preadv2, hence this one call here.
//
// fallocateAsync: fallocate(2) on libuv's threadpool (a Napi::AsyncWorker), for virtio-blk's
// DISCARD (FALLOC_FL_PUNCH_HOLE) and WRITE_ZEROES (FALLOC_FL_ZERO_RANGE). Node's fs has neither.
//
// dioAlignment: statx(2) with STATX_DIOALIGN (Linux 6.1), the alignment O_DIRECT needs of a file's
// buffers and offsets. Node's fs.stat does not ask for it.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <climits>
#include <vector>

#include "common.h"

namespace tsvmm {
namespace {

// preadNoWait(fd, buffers: Uint8Array[], position) -> bytes read (>= 0, may be short: only part
// was cached), -1 when nothing could be read without waiting (EAGAIN), -2 when the file's file
// system does not support RWF_NOWAIT (EOPNOTSUPP; tmpfs, for one). Other errors throw.
Napi::Value PreadNoWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::vector<iovec> iov = Uint8ArrayIovecs(env, info[1], "preadNoWait");
  uint64_t position = ArgU64(info, 2, "position", uint64_t(INT64_MAX));
  ssize_t n;
  do {
    n = preadv2(fd, iov.data(), int(iov.size()), off_t(position), RWF_NOWAIT);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return Napi::Number::New(env, double(n));
  if (errno == EAGAIN) return Napi::Number::New(env, -1);
  if (errno == EOPNOTSUPP) return Napi::Number::New(env, -2);
  throw ErrnoError(env, "preadv2", errno, "fd " + std::to_string(fd) + " at " + std::to_string(position));
}

// dioAlignment(fd) -> { memory, offset }: the buffer-address and file-offset alignment O_DIRECT
// needs for fd (statx STATX_DIOALIGN); null when the kernel or the file system does not say
// (older than Linux 6.1, or a file system that does not report it). Both 0: no O_DIRECT at all.
Napi::Value DioAlignment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct statx stx = {};
  int r;
  do {
    r = statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw ErrnoError(env, "statx", errno, "fd " + std::to_string(fd));
  if (!(stx.stx_mask & STATX_DIOALIGN)) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("memory", Napi::Number::New(env, double(stx.stx_dio_mem_align)));
  out.Set("offset", Napi::Number::New(env, double(stx.stx_dio_offset_align)));
  return out;
}

// fallocateAsync(fd, mode, offset, length, callback(err?)): fallocate(fd, mode, offset, length) on
// the threadpool; the callback gets undefined or an errno error (EOPNOTSUPP: the file system does
// not do that mode).
class FallocateWorker : public Napi::AsyncWorker {
 public:
  FallocateWorker(Napi::Function callback, int fd, int mode, uint64_t offset, uint64_t length)
      : Napi::AsyncWorker(callback, "tsvmm:fallocate"), fd_(fd), mode_(mode), offset_(offset), length_(length) {}

  void Execute() override {
    int r;
    do {
      r = fallocate(fd_, mode_, off_t(offset_), off_t(length_));
    } while (r < 0 && errno == EINTR);
    err_ = r < 0 ? errno : 0;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ == 0) {
      Callback().Call({env.Undefined()});
    } else {
      Callback().Call({ErrnoError(env, "fallocate", err_, "fd " + std::to_string(fd_) + " mode " + std::to_string(mode_) + " [" + std::to_string(offset_) + ", +" + std::to_string(length_) + ")").Value()});
    }
  }

 private:
  int fd_;
  int mode_;
  uint64_t offset_;
  uint64_t length_;
  int err_ = 0;
};

Napi::Value FallocateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int mode = int(ArgU64(info, 1, "mode", uint64_t(INT32_MAX)));
  uint64_t offset = ArgU64(info, 2, "offset", uint64_t(INT64_MAX));
  uint64_t length = ArgU64(info, 3, "length", uint64_t(INT64_MAX));
  if (!info[4].IsFunction()) throw Napi::TypeError::New(env, "fallocateAsync needs a callback");
  (new FallocateWorker(info[4].As<Napi::Function>(), fd, mode, offset, length))->Queue();  // deletes itself
  return env.Undefined();
}

}  // namespace

void InitFileIo(Napi::Env env, Napi::Object exports) {
  exports.Set("preadNoWait", Napi::Function::New(env, PreadNoWait, "preadNoWait"));
  exports.Set("fallocateAsync", Napi::Function::New(env, FallocateAsync, "fallocateAsync"));
  exports.Set("dioAlignment", Napi::Function::New(env, DioAlignment, "dioAlignment"));
}

}  // namespace tsvmm
