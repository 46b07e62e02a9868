// The groups of this process and the progress thread that drives them:
// completions, the peer's CDCs, keepalives, failover, re-adding lost links,
// and what could not be posted when a Conn flushed.
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <thread>
#include <vector>

#include "engine/remote_group.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::engine {

namespace {

thread_local bool t_inside_fabric = false;

struct Registry {
  std::mutex mu;
  std::vector<RemoteGroup*> groups;
  bool started = false;
  // Exit: the thread must not enter libfabric again (its exit handlers run
  // after ours). Set under mu before any group is drained; read with a
  // group's lock held.
  std::atomic<bool> stopping{false};
  pid_t pid = 0;
  int kick_fd = -1;
};

Registry& Reg() {
  static Registry* r = new Registry;  // never destroyed: the thread uses it
  return *r;
}

uint64_t EnvUs(const char* name, uint64_t dflt) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? strtoull(v, nullptr, 0) : dflt;
}

// One pass over a group: progress, retries, timers. Adds the fds to sleep on
// and lowers *timeout_ms; true if anything happened (spin on).
bool Service(RemoteGroup* g, std::vector<pollfd>* fds, int* timeout_ms,
             bool* reap) {
  std::unique_lock<std::mutex> l(g->mu, std::try_to_lock);
  if (!l.owns_lock()) return true;  // a handshake or a Conn is in there
  if (Reg().stopping.load()) return false;
  if (g->phase == RemoteGroup::Phase::kSetup) {
    if (g->setup_deadline_ns != 0 && sys::NowNs() > g->setup_deadline_ns)
      g->Fail(0);
    *timeout_ms = std::min(*timeout_ms, 100);
    return false;
  }
  if (g->phase == RemoteGroup::Phase::kDown) {
    *reap = g->conns.empty();
    *timeout_ms = std::min(*timeout_ms, 100);
    return false;
  }
  int n = g->lg->Poll();
  g->RetryDirty();
  if (g->lg->down()) g->Fail(0);
  if (n > 0) return true;
  pollfd buf[8];
  int k = g->lg->WaitFds(buf, 8);
  fds->insert(fds->end(), buf, buf + k);
  *timeout_ms = std::min(*timeout_ms, g->lg->NextTimeoutMs());
  bool dirty = std::any_of(g->conns.begin(), g->conns.end(),
                           [](auto& e) { return e.second->dirty; });
  if (dirty) *timeout_ms = std::min(*timeout_ms, 1);
  return !g->lg->PrepareSleep();
}

void Reap(const std::vector<RemoteGroup*>& dead) {
  Registry& r = Reg();
  {
    std::lock_guard<std::mutex> l(r.mu);
    for (RemoteGroup* g : dead)
      r.groups.erase(std::find(r.groups.begin(), r.groups.end(), g));
  }
  for (RemoteGroup* g : dead) delete g;
}

void PumpLoop() {
  t_inside_fabric = true;
  Registry& r = Reg();
  uint64_t spin_ns = EnvUs("USMC_SPIN_US", 50) * 1000;
  uint64_t active_ns = 0;
  std::vector<RemoteGroup*> snapshot, dead;
  std::vector<pollfd> fds;
  for (unsigned i = 0;; ++i) {
    {
      std::lock_guard<std::mutex> l(r.mu);
      if (r.stopping) break;
      snapshot = r.groups;
    }
    fds.clear();
    dead.clear();
    int timeout_ms = 1000;
    bool busy = false;
    for (RemoteGroup* g : snapshot) {
      bool reap = false;
      busy |= Service(g, &fds, &timeout_ms, &reap);
      if (reap) dead.push_back(g);
    }
    if (!dead.empty()) Reap(dead);
    uint64_t now = sys::NowNs();
    if (busy) active_ns = now;
    if (busy || now - active_ns < spin_ns) {
      if ((i & 15) == 0) sched_yield();
      continue;
    }
    fds.push_back({r.kick_fd, POLLIN, 0});
    int n = sys::Poll(fds.data(), fds.size(), std::max(timeout_ms, 0));
    if (n > 0 && fds.back().revents != 0) {
      uint64_t v;
      sys::Read(r.kick_fd, &v, sizeof v);
    }
    active_ns = sys::NowNs();
  }
}

std::string LinkAddrFor(const sockaddr* sa, socklen_t len) {
  char host[64] = {0};
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr,
              host, sizeof host);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr,
              host, sizeof host);
  }
  return host;
}

}  // namespace

bool InsideFabric() { return t_inside_fabric; }
FabricScope::FabricScope() : was_(t_inside_fabric) { t_inside_fabric = true; }
FabricScope::~FabricScope() { t_inside_fabric = was_; }

uint64_t FabricSetupTimeoutNs() {
  return EnvUs("USMC_FABRIC_SETUP_MS", 5000) * 1000000;
}

// At exit, as the kernel does for TCP sockets: what the program sent before
// exiting (closed or not) reaches the peer before the links go, bounded.
void DrainAtExit() {
  Registry& r = Reg();
  // Held throughout: the progress thread deletes a group only after taking
  // it out of the list under this lock (lock order: registry, then group).
  std::lock_guard<std::mutex> l(r.mu);
  if (r.pid != sys::CachedPid()) return;
  r.stopping.store(true);
  uint64_t deadline = sys::NowNs() + 2000000000ull;
  for (RemoteGroup* g : r.groups) {
    std::lock_guard<std::mutex> gl(g->mu);
    if (g->owner == sys::CachedPid()) g->Drain(deadline);
  }
}

void StartPump() {
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  if (r.started && r.pid == sys::CachedPid()) return;
  static bool registered = [] { return atexit(DrainAtExit) == 0; }();
  (void)registered;
  r.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  r.started = true;
  r.pid = sys::CachedPid();
  FabricScope scope;  // the thread's own set-up must stay plain too
  std::thread(PumpLoop).detach();
}

void KickPump() {
  uint64_t one = 1;
  int fd = Reg().kick_fd;
  if (fd >= 0) sys::Write(fd, &one, sizeof one);
}

void RemoteAfterForkChild() {
  Registry& r = Reg();
  new (&r.mu) std::mutex;  // a parent thread may have held it at fork
  r.groups.clear();        // the parent's: never touched here
  r.started = false;
  r.stopping.store(false);
  r.kick_fd = -1;
}

// USMC_FABRIC_LINKS="IP0,IP1": this host's interface of link 0 and link 1;
// default: the TCP connection's own address, one link.
fabric::GroupOptions GroupOptionsFor(fabric::Role role, const sockaddr* local,
                                     socklen_t local_len) {
  fabric::GroupOptions o;
  o.role = role;
  const char* v = getenv("USMC_FABRIC_LINKS");
  std::string list = v != nullptr ? v : "";
  size_t i = 0, start = 0;
  while (!list.empty() && i < fabric::kMaxLinks && start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    o.local_addrs[i++] = list.substr(start, comma - start);
    start = comma + 1;
  }
  if (i == 0) o.local_addrs[0] = LinkAddrFor(local, local_len);
  return o;
}

RemoteGroup* NewGroup(fabric::Role role, uint64_t peer_id, uint32_t pid,
                      uint64_t nonce, const sockaddr* local,
                      socklen_t local_len, std::string* err) {
  auto* g = new RemoteGroup(role, peer_id, pid, nonce);
  FabricScope scope;
  g->lg = fabric::LinkGroup::Create(GroupOptionsFor(role, local, local_len), g,
                                    err);
  if (!g->lg) {
    delete g;
    return nullptr;
  }
  g->setup_deadline_ns = sys::NowNs() + FabricSetupTimeoutNs();
  Arena::Get().Count(stats::kLinkGroups);
  return g;
}

RemoteGroup* FindGroup(fabric::Role role, uint64_t peer_id, uint32_t pid,
                       uint64_t nonce) {
  for (RemoteGroup* g : Reg().groups) {
    if (g->role != role || g->peer_id != peer_id || g->peer_pid != pid ||
        g->owner != sys::CachedPid())
      continue;
    std::lock_guard<std::mutex> l(g->mu);
    if (g->phase == RemoteGroup::Phase::kDown) continue;
    if (role == fabric::Role::kClient && g->nonce != nonce) continue;
    return g;
  }
  return nullptr;
}

RemoteGroup* ServerGroup(uint64_t peer_id, uint32_t pid, const sockaddr* local,
                         socklen_t local_len, bool* first_contact,
                         std::string* err) {
  StartPump();
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  *first_contact = false;
  if (RemoteGroup* g = FindGroup(fabric::Role::kServer, peer_id, pid, 0))
    return g;
  RemoteGroup* g = NewGroup(fabric::Role::kServer, peer_id, pid,
                            sys::FastRandom64() | 1, local, local_len, err);
  if (g == nullptr) return nullptr;
  r.groups.push_back(g);
  *first_contact = true;
  return g;
}

RemoteGroup* ClientGroup(uint64_t peer_id, uint32_t pid, uint64_t group_nonce,
                         const sockaddr* local, socklen_t local_len,
                         std::string* err) {
  StartPump();
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  if (RemoteGroup* g =
          FindGroup(fabric::Role::kClient, peer_id, pid, group_nonce))
    return g;
  RemoteGroup* g = NewGroup(fabric::Role::kClient, peer_id, pid, group_nonce,
                            local, local_len, err);
  if (g != nullptr) r.groups.push_back(g);
  return g;
}

}  // namespace usmc::engine
