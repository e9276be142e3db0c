#pragma once

#include <linux/kvm.h>
#include <napi.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "common.h"

namespace tsvmm {

// The mmapped kvm_run area of one vCPU. Outlives every ArrayBuffer view of it.
struct RunMapping {
  void* addr = nullptr;
  size_t size = 0;
  ~RunMapping();
};

// One vCPU, shared by every thread that holds a handle to it (the creating thread, a worker
// that runs it, a native VcpuThread).
struct VcpuCore {
  UniqueFd fd;
  uint32_t index = 0;
  std::shared_ptr<RunMapping> runMapping;
  kvm_run* run = nullptr;

  // Which thread is inside KVM_RUN right now, so Kick() can interrupt it with a signal.
  std::mutex runnerMu;
  bool running = false;
  pthread_t runner{};

  // One KVM_RUN. Returns the exit reason, or KVM_EXIT_INTR when a signal or immediate_exit
  // interrupted it; returns -errno for any other failure (the caller throws).
  int RunOnce();
  // Makes the vCPU leave (or not enter) KVM_RUN: immediate_exit = 1, then a signal to the
  // thread inside KVM_RUN, if any. Safe from any thread.
  void Kick();
};

std::shared_ptr<VcpuCore> UnwrapVcpu(Napi::Env env, Napi::Value value);

}  // namespace tsvmm
