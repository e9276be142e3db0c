#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>

namespace tsvmm {

// One anonymous host mapping that backs guest RAM (or any guest-visible memory). Unmapped when
// the last owner — a JS GuestMapping in any thread, or an ArrayBuffer view of it — goes away,
// so no view can ever point at unmapped memory.
struct MappingCore {
  void* addr = nullptr;
  size_t size = 0;
  ~MappingCore();
};

// The MappingCore behind a JS GuestMapping object; throws a TypeError for anything else.
std::shared_ptr<MappingCore> UnwrapMapping(Napi::Env env, Napi::Value value);

}  // namespace tsvmm
