// Start-up, rules, fork, and the signal bookkeeping behind EINTR vs SA_RESTART.
#include "preload/process.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <atomic>
#include <string>
#include <unordered_set>

#include "engine/links.h"
#include "engine/remote.h"
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

// Adds `delta` holders to the family-shared record of every connection this
// process holds (once per connection, however many fd numbers point at it).
void CountHolders(int delta) {
  std::unordered_set<engine::ConnState*> seen;
  FdTable::Get().ForEach([&](Socket* s) {
    engine::ConnState* st = s->SharedState();
    if (st != nullptr && seen.insert(st).second)
      st->holders.fetch_add(delta, std::memory_order_acq_rel);
  });
}

void AfterForkChild() {
  sys::ForgetPid();
  engine::LinksAfterForkChild();
  engine::RemoteAfterForkChild();
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
  engine::SetRestartQuery(&SignalRestartQuery);
  AdoptInherited();
  pthread_atfork(nullptr, nullptr, &AfterForkChild);
}

}  // namespace

const util::RuleSet& Rules() {
  if (g_rules == nullptr)
    Init();  // a constructor of another library got here first
  return *g_rules;
}

}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

// The child's holders are counted before the child exists: a parent that closes
// its copy right after fork (the fork-per-connection pattern) must not see the
// count reach zero.
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

}  // extern "C"
