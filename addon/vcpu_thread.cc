// VcpuThread: a native thread that runs KVM_RUN and hands every exit to a JS callback on the
// main thread through a thread-safe function, waiting for it to return before re-entering the
// guest. This is exit-path design (b), "thread hop"; the exit benchmark measures it against
// the others. stop() kicks the vCPU out of KVM_RUN and joins the thread.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "vcpu.h"

namespace tsvmm {
namespace {

struct HopState {
  std::mutex mu;
  std::condition_variable cv;
  bool handled = false;
  bool keepRunning = true;
  bool stopping = false;
};

class VcpuThread : public Napi::ObjectWrap<VcpuThread> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VcpuThread", {InstanceMethod<&VcpuThread::Stop>("stop")});
  }

  // new VcpuThread(vcpu, onExit): onExit(reason, errno?) runs on this JS thread for every exit;
  // returning false ends the thread's loop (as does an exception, which is rethrown).
  explicit VcpuThread(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VcpuThread>(info) {
    Napi::Env env = info.Env();
    core_ = UnwrapVcpu(env, info[0]);
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "VcpuThread needs an onExit callback");
    state_ = std::make_shared<HopState>();
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "tsvmm-vcpu-hop", 0, 1);
    Ref();
    thread_ = std::thread(Loop, core_, state_, tsfn_);
  }

  ~VcpuThread() override { Join(); }

 private:
  static void Loop(std::shared_ptr<VcpuCore> core, std::shared_ptr<HopState> state, Napi::ThreadSafeFunction tsfn) {
    for (;;) {
      int reason = core->RunOnce();
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (state->stopping) return;
        state->handled = false;
      }
      napi_status st = tsfn.BlockingCall([state, reason](Napi::Env env, Napi::Function onExit) {
        {
          std::lock_guard<std::mutex> lock(state->mu);
          if (state->stopping) return;  // a call queued before stop(): nobody waits for it
        }
        bool keep = false;
        try {
          Napi::Value r = reason < 0 ? onExit.Call({Napi::Number::New(env, -1), Napi::Number::New(env, -reason)})
                                     : onExit.Call({Napi::Number::New(env, reason)});
          keep = reason >= 0 && !(r.IsBoolean() && !r.As<Napi::Boolean>().Value());
        } catch (const Napi::Error& e) {
          Finish(state, false);
          e.ThrowAsJavaScriptException();
          return;
        }
        Finish(state, keep);
      });
      if (st != napi_ok) return;
      std::unique_lock<std::mutex> lock(state->mu);
      state->cv.wait(lock, [&] { return state->handled || state->stopping; });
      if (state->stopping || !state->keepRunning) return;
    }
  }

  static void Finish(const std::shared_ptr<HopState>& state, bool keep) {
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->handled = true;
      state->keepRunning = keep;
    }
    state->cv.notify_one();
  }

  void Join() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->stopping = true;
    }
    core_->Kick();
    state_->cv.notify_all();
    thread_.join();
    core_->run->immediate_exit = 0;
    tsfn_.Release();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (thread_.joinable()) {
      Join();
      Unref();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<VcpuCore> core_;
  std::shared_ptr<HopState> state_;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
};

}  // namespace

void InitVcpuThread(Napi::Env env, Napi::Object exports) { exports.Set("VcpuThread", VcpuThread::Define(env)); }

}  // namespace tsvmm
