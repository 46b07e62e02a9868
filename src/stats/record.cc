#include "stats/record.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include <cstring>

#include "util/fd_pages.h"
#include "util/once.h"
#include "util/sys.h"

namespace usmc::stats {

std::atomic<bool> g_fd_records_used{false};

namespace {

using engine::Arena;
using engine::ConnState;

// fd number -> its fallback or listener record, for this process (forks copy
// it). Lock-free two-level table like the preload's fd table; pages are never
// freed.
class FdRecords {
 public:
  static constexpr int kMaxFd = 1 << 20;
  static FdRecords& Get() {
    static constinit util::Once<FdRecords*> t;
    return *t.Get([] {
      return new FdRecords();
    });  // never destroyed: fds close during exit
  }
  std::atomic<ConnState*>* Slot(int fd, bool create) {
    return pages_.Slot(fd, create);
  }

  template <typename Fn>
  void ForEach(Fn fn) {
    pages_.ForEach([&](int, ConnState* st) { fn(st); });
  }

 private:
  util::FdPages<ConnState, kMaxFd> pages_;
};

void Release(ConnState* st) {
  if (st->holders.fetch_sub(1, std::memory_order_acq_rel) == 1)
    Arena::Get().Free(st);
}

// Installs st as fd's record, releasing a record the fd number had before
// (closed behind our back).
void Attach(int fd, ConnState* st) {
  std::atomic<ConnState*>* slot = FdRecords::Get().Slot(fd, st != nullptr);
  if (slot == nullptr) return;
  g_fd_records_used.store(true, std::memory_order_relaxed);
  if (ConnState* old = slot->exchange(st, std::memory_order_acq_rel))
    Release(old);
}

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

void ToEndpoint(const sockaddr* sa, Endpoint* e) {
  if (sa == nullptr) return;
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    e->family = AF_INET;
    e->port = ntohs(a->sin_port);
    std::memcpy(e->addr, &a->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    e->family = AF_INET6;
    e->port = ntohs(a->sin6_port);
    e->scope_id = a->sin6_scope_id;
    std::memcpy(e->addr, &a->sin6_addr, 16);
  }
}

void FillIdentity(ConnState* st, int fd, uint8_t role, const sockaddr* local,
                  const sockaddr* peer) {
  ConnIdentity& id = st->id;
  id.fd = fd;
  id.pid = sys::CachedPid();
  id.role = role;
  struct stat sb;
  if (sys::Fstat(fd, &sb) == 0) id.inode = sb.st_ino;
  id.created_ns = RealtimeNs();
  ToEndpoint(local, &id.local);
  ToEndpoint(peer, &id.peer);
}

Counter AcceleratedCounter(const Decision& d) {
  if (d.rdma) return d.role == kRoleClient ? kConnRdmaClient : kConnRdmaServer;
  return d.role == kRoleClient ? kConnShmClient : kConnShmServer;
}

void RecordAccelerated(const Decision& d) {
  FillIdentity(d.st, d.fd, d.role, d.local, d.peer);
  d.st->id.mode.store(d.rdma ? kModeRdma : kModeShm, std::memory_order_release);
  Attach(d.fd, nullptr);
  Arena& a = Arena::Get();
  a.Count(AcceleratedCounter(d));
  a.Count(
      static_cast<Counter>(kRingSizes + RingSizeBucket(d.st->id.ring_bytes)));
}

void RecordFallback(const Decision& d) {
  Arena& a = Arena::Get();
  a.Count(d.role == kRoleClient ? kConnTcpClient : kConnTcpServer);
  Counter base = d.origin == kOriginPeer ? kFallbackPeer : kFallbackLocal;
  a.Count(static_cast<Counter>(base + ReasonSlot(d.reason)));
  if (IsHandshakeError(d.reason)) {
    a.Count(d.role == kRoleClient ? kHandshakeErrClient : kHandshakeErrServer);
  }
  ConnState* st = a.Alloc();
  if (st == nullptr) return;
  FillIdentity(st, d.fd, d.role, d.local, d.peer);
  st->id.reason = d.reason;
  st->id.origin = d.origin;
  st->id.mode.store(kModeTcp, std::memory_order_release);
  Attach(d.fd, st);
}

}  // namespace

void RecordDecision(const Decision& d) {
  if (d.st != nullptr) {
    RecordAccelerated(d);
  } else {
    RecordFallback(d);
  }
}

void RecordListener(int fd, const sockaddr* local) {
  Arena& a = Arena::Get();
  a.Count(kListeners);
  ConnState* st = a.Alloc();
  if (st == nullptr) return;
  FillIdentity(st, fd, kRoleServer, local, nullptr);
  st->id.mode.store(kModeListen, std::memory_order_release);
  Attach(fd, st);
}

void FdClosedSlow(int fd) {
  std::atomic<ConnState*>* slot = FdRecords::Get().Slot(fd, false);
  if (slot == nullptr || slot->load(std::memory_order_relaxed) == nullptr)
    return;
  if (ConnState* st = slot->exchange(nullptr, std::memory_order_acq_rel))
    Release(st);
}

void CountFdRecordHolders(int delta) {
  FdRecords::Get().ForEach([delta](ConnState* st) {
    st->holders.fetch_add(delta, std::memory_order_acq_rel);
  });
}

void AfterForkChild() { engine::ArenaAfterForkChild(); }

}  // namespace usmc::stats
