// Start-up, rules, fork, and the signal bookkeeping behind EINTR vs SA_RESTART.
#include "preload/process.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <atomic>
#include <string>
#include <unordered_set>

#include "engine/links.h"
#include "engine/signals.h"
#include "preload/fdtable.h"
#include "preload/inherit.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "stats/record.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::preload {
namespace {

util::RuleSet* g_rules = nullptr;

// Signal handlers as the application installed them; ours records which signal ran.
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
  return sig > 0 && sig < _NSIG && (g_handlers[sig].flags.load(std::memory_order_relaxed) & SA_RESTART);
}

bool IsUserHandler(const void* fn) {
  return fn != reinterpret_cast<void*>(SIG_DFL) && fn != reinterpret_cast<void*>(SIG_IGN);
}

// Adds `delta` holders to the family-shared record of every connection this process holds (once per
// connection, however many fd numbers point at it).
void CountHolders(int delta) {
  std::unordered_set<engine::ConnState*> seen;
  FdTable::Get().ForEach([&](Socket* s) {
    engine::ConnState* st = s->SharedState();
    if (st != nullptr && seen.insert(st).second) st->holders.fetch_add(delta, std::memory_order_acq_rel);
  });
}

void AfterForkChild() {
  sys::ForgetPid();
  engine::LinksAfterForkChild();
  stats::AfterForkChild();
}

__attribute__((constructor)) void Init() {
  util::LogInit();
  std::string error;
  auto rules = util::RuleSet::FromEnvironment(&error);
  if (rules) {
    g_rules = new util::RuleSet(std::move(*rules));
  } else {
    std::string msg = "usmc: bad rules, acceleration off: " + error + "\n";
    sys::Write(2, msg.data(), msg.size());
    g_rules = new util::RuleSet(*util::RuleSet::Parse("tcp any *:*", &error));
  }
  engine::SetRestartQuery(&RestartQuery);
  AdoptInherited();
  pthread_atfork(nullptr, nullptr, &AfterForkChild);
}

}  // namespace

const util::RuleSet& Rules() {
  if (g_rules == nullptr) Init();  // a constructor of another library got here first
  return *g_rules;
}

}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig <= 0 || sig >= _NSIG || sig == SIGKILL || sig == SIGSTOP) return REAL(sigaction)(sig, act, old);
  AppHandler& h = g_handlers[sig];
  void* prev_fn = h.fn.load();
  int prev_flags = h.flags.load();
  struct sigaction mine;
  const struct sigaction* use = act;
  if (act != nullptr) {
    void* fn = (act->sa_flags & SA_SIGINFO) ? reinterpret_cast<void*>(act->sa_sigaction)
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
      old->sa_sigaction == &Trampoline) {  // report the application's handler, not ours
    old->sa_flags = prev_flags;
    if (prev_flags & SA_SIGINFO) {
      old->sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(prev_fn);
    } else {
      old->sa_handler = reinterpret_cast<void (*)(int)>(prev_fn);
    }
  }
  return r;
}

// The child's holders are counted before the child exists: a parent that closes its copy right after
// fork (the fork-per-connection pattern) must not see the count reach zero.
pid_t fork() {
  CountHolders(+1);
  usmc::stats::CountFdRecordHolders(+1);
  pid_t pid = REAL(fork)();
  if (pid < 0) {
    CountHolders(-1);
    usmc::stats::CountFdRecordHolders(-1);
  }
  return pid;
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
