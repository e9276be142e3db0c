// Vcpu: one KVM vCPU with its kvm_run area, run synchronously by whichever JS thread calls
// run() (the chosen design: a worker_thread per vCPU), plus runNative(), the C++-only exit
// loop that the exit benchmark uses as its floor.
#include "vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include <cstring>
#include <string>

namespace tsvmm {
namespace {

Registry<VcpuCore> g_vcpus;
const napi_type_tag kVcpuTag = {0x7473766d6d766370ULL, 0x7543707543707543ULL};

// The signal that kicks a vCPU thread out of KVM_RUN. A real-time signal that Node and libuv
// do not use (SIGUSR1 is Node's inspector trigger); its handler does nothing: all it has to do
// is make KVM_RUN return EINTR, which needs a handler installed without SA_RESTART.
int KickSignal() { return SIGRTMIN + 2; }

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(KickSignal(), &sa, nullptr);
  });
}

void UnblockKickSignalOnThisThread() {
  thread_local bool done = false;
  if (done) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, KickSignal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  done = true;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

class Vcpu : public Napi::ObjectWrap<Vcpu> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Vcpu",
                       {
                           StaticMethod<&Vcpu::Create>("create"),
                           StaticMethod<&Vcpu::Attach>("attach"),
                           InstanceAccessor<&Vcpu::Fd>("fd"),
                           InstanceAccessor<&Vcpu::Id>("id"),
                           InstanceAccessor<&Vcpu::Index>("index"),
                           InstanceAccessor<&Vcpu::RunArea>("runArea"),
                           InstanceMethod<&Vcpu::Run>("run"),
                           InstanceMethod<&Vcpu::RunNative>("runNative"),
                           InstanceMethod<&Vcpu::Kick>("kick"),
                           InstanceMethod<&Vcpu::ClearKick>("clearKick"),
                           InstanceMethod<&Vcpu::Close>("close"),
                       });
  }

  // Constructed only through create()/attach(), which pass (id, External<shared_ptr<VcpuCore>>).
  explicit Vcpu(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Vcpu>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[1].IsExternal())
      throw Napi::TypeError::New(env, "use Vcpu.create(vmFd, index, mmapSize) or Vcpu.attach(id)");
    info.This().As<Napi::Object>().TypeTag(&kVcpuTag);
    id_ = static_cast<uint32_t>(ArgU64(info, 0, "id", UINT32_MAX));
    core_ = *info[1].As<Napi::External<std::shared_ptr<VcpuCore>>>().Data();
  }

  std::shared_ptr<VcpuCore> Core(Napi::Env env) {
    if (!core_) throw Napi::Error::New(env, "vCPU handle " + std::to_string(id_) + " is closed");
    return core_;
  }

 private:
  static Napi::Value Wrap(Napi::Env env, uint32_t id, std::shared_ptr<VcpuCore> core) {
    auto holder = Napi::External<std::shared_ptr<VcpuCore>>::New(env, &core);
    return Data(env).vcpuCtor.New({Napi::Number::New(env, id), holder});
  }

  // Vcpu.create(vmFd, index, mmapSize): KVM_CREATE_VCPU and mmap of its kvm_run area.
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int vmFd = ArgFd(info, 0, "vmFd");
    uint32_t index = static_cast<uint32_t>(ArgU64(info, 1, "index", UINT32_MAX));
    size_t mmapSize = ArgU64(info, 2, "mmapSize", 1 << 24);
    if (mmapSize < sizeof(kvm_run))
      throw Napi::RangeError::New(env, "kvm_run mmap size " + std::to_string(mmapSize) + " is below sizeof(kvm_run)");
    auto core = std::make_shared<VcpuCore>();
    core->index = index;
    core->fd = UniqueFd(Check(env, IoctlRetrying(vmFd, KVM_CREATE_VCPU, static_cast<unsigned long>(index)),
                              "KVM_CREATE_VCPU", "vCPU " + std::to_string(index)));
    void* addr = mmap(nullptr, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, core->fd.Get(), 0);
    if (addr == MAP_FAILED) throw ErrnoError(env, "mmap", errno, "kvm_run of vCPU " + std::to_string(index));
    core->runMapping = std::make_shared<RunMapping>();
    core->runMapping->addr = addr;
    core->runMapping->size = mmapSize;
    core->run = static_cast<kvm_run*>(addr);
    InstallKickHandler();
    uint32_t id = g_vcpus.Add(core);
    return Wrap(env, id, core);
  }

  // Vcpu.attach(id): another handle (typically in a worker_thread) to a live vCPU.
  static Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = static_cast<uint32_t>(ArgU64(info, 0, "id", UINT32_MAX));
    auto core = g_vcpus.Find(id);
    if (!core) throw Napi::Error::New(env, "no live vCPU with id " + std::to_string(id));
    return Wrap(env, id, core);
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Core(info.Env())->fd.Get()); }
  Napi::Value Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }
  Napi::Value Index(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Core(info.Env())->index); }

  Napi::Value RunArea(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (runArea_.IsEmpty()) {
      auto core = Core(env);
      runArea_ = Napi::Persistent(ExternalView(env, core->runMapping->addr, core->runMapping->size, core->runMapping));
    }
    return runArea_.Value();
  }

  // run() -> exit reason (KVM_EXIT_INTR when kicked). The hot path of the chosen design: no
  // allocation, the caller reads the exit details through its own DataView of runArea.
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    VcpuCore* core = core_.get();
    if (!core) throw Napi::Error::New(env, "vCPU handle " + std::to_string(id_) + " is closed");
    int reason = core->RunOnce();
    if (reason < 0) throw ErrnoError(env, "KVM_RUN", -reason, "vCPU " + std::to_string(core->index));
    return Napi::Number::New(env, reason);
  }

  // runNative(maxExits, stopPort) -> { elapsedNs, exits, reason, checksum }: KVM_RUN in a C++
  // loop that decodes each PIO/MMIO exit exactly as the JS handlers do (port or address, size,
  // first data byte into a checksum) and answers IN with all-ones. Stops after maxExits exits,
  // at an OUT to stopPort, or at any other exit reason. The floor of the exit benchmark.
  Napi::Value RunNative(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto core = Core(env);
    uint64_t maxExits = ArgU64(info, 0, "maxExits");
    int64_t stopPort = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int64Value() : -1;
    kvm_run* run = core->run;
    uint64_t exits = 0, checksum = 0;
    int reason = 0;
    uint64_t t0 = NowNs();
    while (exits < maxExits) {
      reason = core->RunOnce();
      if (reason < 0) throw ErrnoError(env, "KVM_RUN", -reason, "vCPU " + std::to_string(core->index));
      exits++;
      if (reason == KVM_EXIT_IO) {
        uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
        if (run->io.direction == KVM_EXIT_IO_IN) {
          memset(data, 0xff, size_t(run->io.size) * run->io.count);
        } else {
          checksum += data[0] + run->io.port + run->io.size;
        }
        if (run->io.port == stopPort) break;
      } else if (reason == KVM_EXIT_MMIO) {
        if (run->mmio.is_write) {
          checksum += run->mmio.data[0] + run->mmio.phys_addr + run->mmio.len;
        } else {
          memset(run->mmio.data, 0xff, sizeof run->mmio.data);
        }
      } else {
        break;
      }
    }
    uint64_t elapsed = NowNs() - t0;
    Napi::Object out = Napi::Object::New(env);
    out.Set("elapsedNs", Napi::Number::New(env, double(elapsed)));
    out.Set("exits", Napi::Number::New(env, double(exits)));
    out.Set("reason", Napi::Number::New(env, reason));
    out.Set("checksum", Napi::Number::New(env, double(checksum)));
    return out;
  }

  Napi::Value Kick(const Napi::CallbackInfo& info) {
    Core(info.Env())->Kick();
    return info.Env().Undefined();
  }

  Napi::Value ClearKick(const Napi::CallbackInfo& info) {
    Core(info.Env())->run->immediate_exit = 0;
    return info.Env().Undefined();
  }

  // Detaches this thread's kvm_run view and drops this handle. The vCPU fd closes when no handle
  // in any thread holds it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!runArea_.IsEmpty()) {
      runArea_.Value().Detach();
      runArea_.Reset();
    }
    core_.reset();
    return info.Env().Undefined();
  }

  uint32_t id_ = 0;
  std::shared_ptr<VcpuCore> core_;
  Napi::Reference<Napi::ArrayBuffer> runArea_;
};

}  // namespace

RunMapping::~RunMapping() {
  if (addr) munmap(addr, size);
}

int VcpuCore::RunOnce() {
  UnblockKickSignalOnThisThread();
  {
    std::lock_guard<std::mutex> lock(runnerMu);
    runner = pthread_self();
    running = true;
  }
  // EAGAIN: an application processor waiting for INIT/SIPI was woken by an event that did not
  // make it runnable; KVM expects user space to simply call KVM_RUN again (as QEMU and
  // Firecracker do).
  int rc, err;
  do {
    rc = ioctl(fd.Get(), KVM_RUN, 0);
    err = errno;
  } while (rc < 0 && err == EAGAIN);
  {
    std::lock_guard<std::mutex> lock(runnerMu);
    running = false;
  }
  if (rc < 0) return err == EINTR ? KVM_EXIT_INTR : -err;
  return static_cast<int>(run->exit_reason);
}

void VcpuCore::Kick() {
  __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  std::lock_guard<std::mutex> lock(runnerMu);
  if (running) pthread_kill(runner, KickSignal());
}

std::shared_ptr<VcpuCore> UnwrapVcpu(Napi::Env env, Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kVcpuTag))
    throw Napi::TypeError::New(env, "expected a Vcpu");
  return Vcpu::Unwrap(value.As<Napi::Object>())->Core(env);
}

void InitVcpu(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = Vcpu::Define(env);
  Data(env).vcpuCtor = Napi::Persistent(ctor);
  exports.Set("Vcpu", ctor);
}

}  // namespace tsvmm
