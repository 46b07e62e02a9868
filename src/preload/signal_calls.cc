// Interposed sigaction and signal: the handlers the application installs are
// wrapped so that usmc knows which signal interrupted a blocking call, and
// whether its handler had SA_RESTART (the kernel restarts a TCP recv then, and
// usmc must too). Built without TSan instrumentation: the TSan runtime calls
// sigaction while it initializes, before an instrumented function may run.
#include <signal.h>
#include <string.h>

#include <atomic>

#include "preload/process.h"
#include "preload/real.h"

namespace usmc::preload {
namespace {

// Signal handlers as the application installed them; ours records which signal
// ran.
struct AppHandler {
  std::atomic<void*> fn{nullptr};
  std::atomic<int> flags{0};
};
AppHandler g_handlers[_NSIG];
__attribute__((tls_model("initial-exec"))) thread_local int t_last_signal = 0;

void Trampoline(int sig, siginfo_t* info, void* ctx) {
  t_last_signal = sig;
  AppHandler& h = g_handlers[sig];
  void* fn = h.fn.load(std::memory_order_acquire);
  if (h.flags.load(std::memory_order_relaxed) & SA_SIGINFO) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(fn)(sig, info, ctx);
  } else {
    reinterpret_cast<void (*)(int)>(fn)(sig);
  }
}

bool RestartQuery() {
  int sig = t_last_signal;
  t_last_signal = 0;
  return sig > 0 && sig < _NSIG &&
         (g_handlers[sig].flags.load(std::memory_order_relaxed) & SA_RESTART);
}

bool IsUserHandler(const void* fn) {
  return fn != reinterpret_cast<void*>(SIG_DFL) &&
         fn != reinterpret_cast<void*>(SIG_IGN);
}

}  // namespace

bool SignalRestartQuery() { return RestartQuery(); }

}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below

extern "C" {

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig <= 0 || sig >= _NSIG || sig == SIGKILL || sig == SIGSTOP)
    return REAL(sigaction)(sig, act, old);
  AppHandler& h = g_handlers[sig];
  void* prev_fn = h.fn.load();
  int prev_flags = h.flags.load();
  struct sigaction mine;
  const struct sigaction* use = act;
  if (act != nullptr) {
    void* fn = (act->sa_flags & SA_SIGINFO)
                   ? reinterpret_cast<void*>(act->sa_sigaction)
                   : reinterpret_cast<void*>(act->sa_handler);
    if (IsUserHandler(fn)) {
      h.flags.store(act->sa_flags);
      h.fn.store(fn, std::memory_order_release);
      mine = *act;
      mine.sa_sigaction = &Trampoline;
      mine.sa_flags |= SA_SIGINFO;
      use = &mine;
    } else {
      h.fn.store(nullptr);
    }
  }
  int r = REAL(sigaction)(sig, use, old);
  if (r == 0 && old != nullptr && prev_fn != nullptr &&
      old->sa_sigaction ==
          &Trampoline) {  // report the application's handler, not ours
    old->sa_flags = prev_flags;
    if (prev_flags & SA_SIGINFO) {
      old->sa_sigaction =
          reinterpret_cast<void (*)(int, siginfo_t*, void*)>(prev_fn);
    } else {
      old->sa_handler = reinterpret_cast<void (*)(int)>(prev_fn);
    }
  }
  return r;
}

sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;  // glibc's signal() has BSD semantics
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

}  // extern "C"
