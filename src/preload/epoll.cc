#include "preload/epoll.h"

#include <errno.h>
#include <poll.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/conn.h"
#include "preload/epoll_set.h"
#include "preload/fdtable.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "util/fd_pages.h"
#include "util/sys.h"

namespace usmc::preload {
namespace {

constinit util::FdPages<EpollSet, FdTable::kMaxFd> g_sets;  // epfd -> set
std::mutex g_create_mu;  // creation and destruction of sets (rare)

std::atomic<EpollSet*>* SetSlot(int epfd, bool create) {
  return g_sets.Slot(epfd, create);
}

EpollSet* Lookup(int epfd) {
  auto* slot = SetSlot(epfd, false);
  return slot == nullptr ? nullptr : slot->load(std::memory_order_acquire);
}

EpollSet* GetOrCreate(int epfd) {
  std::lock_guard<std::mutex> lock(g_create_mu);
  auto* slot = SetSlot(epfd, true);
  if (slot == nullptr) {
    errno = EBADF;
    return nullptr;
  }
  if (EpollSet* s = slot->load(); s != nullptr) return s;
  EpollSet* s = EpollSet::Create(epfd);
  if (s != nullptr) slot->store(s, std::memory_order_release);
  return s;
}

template <typename F>
void ForEachSet(F f) {
  g_sets.ForEach([&](int, EpollSet* s) { f(s); });
}

bool Accelerated(int fd) {
  if (!FdTable::Get().Maybe(fd)) return false;
  SocketRef s(fd);
  return s && s->state() != SockState::kListener &&
         s->state() != SockState::kStripProposal;
}

}  // namespace

bool EpollIsManaged(int epfd) { return Lookup(epfd) != nullptr; }

void EpollClosed(int epfd) {
  std::lock_guard<std::mutex> lock(g_create_mu);
  auto* slot = SetSlot(epfd, false);
  if (slot == nullptr) return;
  EpollSet* s = slot->exchange(nullptr);
  if (s == nullptr) return;
  s->Retire();
  // The memory is kept (a racing epoll_wait may still hold the pointer), and
  // kept reachable.
  static auto* retired = new std::vector<EpollSet*>();
  retired->push_back(s);
}

void EpollMakeNative(int fd, Socket* s) {
  ForEachSet([&](EpollSet* set) { set->MakeNative(fd, s); });
}

void EpollForget(int fd, Socket* s) {
  ForEachSet([&](EpollSet* set) { set->Forget(fd, s); });
}

int EpollCtl(int epfd, int op, int fd, epoll_event* ev) {
  if (!Accelerated(fd)) {
    if (EpollSet* set = Lookup(epfd);
        set != nullptr && ev != nullptr && op != EPOLL_CTL_DEL) {
      set->AvoidTag(ev->data.u64);
    }
    return REAL(epoll_ctl)(epfd, op, fd, ev);
  }
  if (epfd == fd) {
    errno = EINVAL;
    return -1;
  }
  EpollSet* set = op == EPOLL_CTL_ADD ? GetOrCreate(epfd) : Lookup(epfd);
  if (set == nullptr) {
    if (op == EPOLL_CTL_ADD) return -1;
    return REAL(epoll_ctl)(epfd, op, fd,
                           ev);  // not ours: let the kernel say ENOENT/EBADF
  }
  SocketRef s(fd);
  if (!s) return REAL(epoll_ctl)(epfd, op, fd, ev);
  return set->Ctl(op, fd, s.get(), ev);
}

int EpollWait(int epfd, epoll_event* events, int maxevents, int timeout_ms,
              const sigset_t* mask) {
  EpollSet* set = Lookup(epfd);
  if (set == nullptr)
    return REAL(epoll_pwait)(epfd, events, maxevents, timeout_ms, mask);
  if (maxevents <= 0 || events == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return set->Wait(events, maxevents,
                   timeout_ms < 0 ? -1 : int64_t{timeout_ms} * 1000000, mask);
}

}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

int epoll_ctl(int epfd, int op, int fd, epoll_event* ev) {
  return EpollCtl(epfd, op, fd, ev);
}

int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
  if (!EpollIsManaged(epfd))
    return REAL(epoll_wait)(epfd, events, maxevents, timeout);
  return EpollWait(epfd, events, maxevents, timeout, nullptr);
}

int epoll_pwait(int epfd, epoll_event* events, int maxevents, int timeout,
                const sigset_t* mask) {
  if (!EpollIsManaged(epfd))
    return REAL(epoll_pwait)(epfd, events, maxevents, timeout, mask);
  return EpollWait(epfd, events, maxevents, timeout, mask);
}

int epoll_pwait2(int epfd, epoll_event* events, int maxevents,
                 const timespec* ts, const sigset_t* mask) {
  if (!EpollIsManaged(epfd))
    return REAL(epoll_pwait2)(epfd, events, maxevents, ts, mask);
  if (maxevents <= 0 || events == nullptr) {
    errno = EINVAL;
    return -1;
  }
  int64_t ns =
      ts == nullptr ? -1 : int64_t{ts->tv_sec} * 1000000000 + ts->tv_nsec;
  int ms = ns < 0 ? -1 : static_cast<int>((ns + 999999) / 1000000);
  return EpollWait(epfd, events, maxevents, ms, mask);
}

}  // extern "C"
