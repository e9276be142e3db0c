// preadv2(2) with RWF_NOWAIT: a positional read that copies what the page cache already holds and
// never waits for a device or a lock. The virtio-blk backend tries it on the event-loop thread
// first and hands the request to libuv's threadpool only when the data is not all cached: a
// cached 4 KiB read then costs one system call instead of a threadpool round trip (measured:
// ~1 µs against ~16 µs, bench/blk-io-path.ts and bench/blk-device.ts). Node's fs has no flags
// argument for preadv2, hence this one call here.
//
// dioAlignment: statx(2) with STATX_DIOALIGN (Linux 6.1), the alignment O_DIRECT needs of a file's
// buffers and offsets. Node's fs.stat does not ask for it.
#include <fcntl.h>
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
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "preadNoWait: buffers must be an array of Uint8Array");
  Napi::Array list = info[1].As<Napi::Array>();
  uint32_t count = list.Length();
  if (count == 0 || count > IOV_MAX) {
    throw Napi::RangeError::New(env, "preadNoWait: " + std::to_string(count) + " buffers; 1 to " + std::to_string(IOV_MAX) + " allowed");
  }
  uint64_t position = ArgU64(info, 2, "position", uint64_t(INT64_MAX));
  std::vector<iovec> iov(count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "preadNoWait: buffer " + std::to_string(i) + " is not a Uint8Array");
    }
    Napi::Uint8Array b = v.As<Napi::Uint8Array>();
    iov[i].iov_base = b.Data();
    iov[i].iov_len = b.ByteLength();
  }
  ssize_t n;
  do {
    n = preadv2(fd, iov.data(), int(count), off_t(position), RWF_NOWAIT);
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

}  // namespace

void InitFileIo(Napi::Env env, Napi::Object exports) {
  exports.Set("preadNoWait", Napi::Function::New(env, PreadNoWait, "preadNoWait"));
  exports.Set("dioAlignment", Napi::Function::New(env, DioAlignment, "dioAlignment"));
}

}  // namespace tsvmm
