#include "common.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

namespace tsvmm {

Napi::Error ErrnoError(Napi::Env env, const std::string& op, int err, const std::string& context) {
  const char* name = strerrorname_np(err);
  std::string code = name ? name : ("E" + std::to_string(err));
  std::string msg = op + " failed: " + strerror(err) + " (" + code + ", errno " + std::to_string(err) + ")";
  if (!context.empty()) msg += ": " + context;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, op));
  return e;
}

int Check(Napi::Env env, int rc, const char* op, const std::string& context) {
  if (rc < 0) throw ErrnoError(env, op, errno, context);
  return rc;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t max) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  uint64_t out;
  if (v.IsBigInt()) {
    bool lossless = false;
    out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, std::string(name) + " does not fit in 64 bits");
  } else if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != static_cast<double>(static_cast<uint64_t>(d)) || d > 9007199254740991.0)
      throw Napi::RangeError::New(env, std::string(name) + " must be a non-negative safe integer, got " +
                                           v.ToString().Utf8Value());
    out = static_cast<uint64_t>(d);
  } else {
    throw Napi::TypeError::New(env, std::string(name) + " must be a number or bigint");
  }
  if (out > max)
    throw Napi::RangeError::New(env, std::string(name) + " is " + std::to_string(out) + ", more than " +
                                         std::to_string(max));
  return out;
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<int>(ArgU64(info, i, name, INT32_MAX));
}

std::vector<iovec> Uint8ArrayIovecs(Napi::Env env, Napi::Value list, const std::string& op) {
  if (!list.IsArray()) throw Napi::TypeError::New(env, op + ": buffers must be an array of Uint8Array");
  uint32_t count = list.As<Napi::Array>().Length();
  if (count == 0 || count > IOV_MAX) {
    throw Napi::RangeError::New(env, op + ": " + std::to_string(count) + " buffers; 1 to " + std::to_string(IOV_MAX) + " allowed");
  }
  std::vector<iovec> iov(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    if (napi_get_element(env, list, i, &v) != napi_ok) throw Napi::Error::New(env);
    // napi_invalid_arg (no JS exception) when v is not a typed array at all.
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
      throw Napi::TypeError::New(env, op + ": buffer " + std::to_string(i) + " is not a Uint8Array");
    }
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }
  return iov;
}

}  // namespace tsvmm

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new tsvmm::AddonData());
  tsvmm::InitKvm(env, exports);
  tsvmm::InitMemory(env, exports);
  tsvmm::InitVcpu(env, exports);
  tsvmm::InitEventFd(env, exports);
  tsvmm::InitFdWatcher(env, exports);
  tsvmm::InitFileIo(env, exports);
  tsvmm::InitIoRing(env, exports);
  tsvmm::InitFsAt(env, exports);
  tsvmm::InitVcpuThread(env, exports);
  return exports;
}

NODE_API_MODULE(tsvmm, Init)
