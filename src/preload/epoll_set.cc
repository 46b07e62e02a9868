#include "preload/epoll_set.h"

#include <errno.h>

#include "engine/conn.h"
#include "preload/fdtable.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "util/sys.h"

namespace usmc::preload {
namespace {

constexpr unsigned kKernelCheckEvery =
    64;  // spin iterations between looks at plain fds
constexpr unsigned kKernelShareEvery =
    8;  // busy calls between looks at plain fds

}  // namespace

EpollSet* EpollSet::Create(int epfd) {
  int inner = sys::EpollCreate1(EPOLL_CLOEXEC);
  if (inner < 0) return nullptr;
  uint64_t tag = sys::Random64();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  if (REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, inner, &ev) != 0) {
    int err = errno;
    sys::Close(inner);
    errno = err;
    return nullptr;
  }
  return new EpollSet(epfd, inner, tag);
}

void EpollSet::Retire() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [fd, e] : entries_) e.s->Unref();
  entries_.clear();
  sys::Close(inner_);
  retired_ = true;
}

void EpollSet::AvoidTag(uint64_t data) {
  if (data != tag_.load(std::memory_order_relaxed)) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = sys::Random64();
  tag_.store(ev.data.u64, std::memory_order_relaxed);
  REAL(epoll_ctl)(epfd_, EPOLL_CTL_MOD, inner_, &ev);
}

uint32_t EpollSet::InnerInterest(Socket* s) const {
  return s->HandshakeInterest() == POLLOUT ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
}

int EpollSet::Ctl(int op, int fd, Socket* s, epoll_event* ev) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(fd);
  bool present = it != entries_.end() && !it->second.deleted;
  if (it != entries_.end() &&
      it->second.s != s) {  // a stale entry of a recycled fd number
    sys::EpollCtl(inner_, EPOLL_CTL_DEL, fd, nullptr);
    it->second.s->Unref();
    entries_.erase(it);
    it = entries_.end();
    present = false;
  }
  if (op == EPOLL_CTL_DEL) {
    if (!present) return errno = ENOENT, -1;
    it->second.deleted =
        true;  // ae-style loops DEL and re-ADD constantly: keep it cheap
    return 0;
  }
  if (ev == nullptr) return errno = EFAULT, -1;
  if (op == EPOLL_CTL_ADD && present) return errno = EEXIST, -1;
  if (op == EPOLL_CTL_MOD && !present) return errno = ENOENT, -1;
  if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD) return errno = EINVAL, -1;
  if (it == entries_.end()) {
    epoll_event inner{};
    inner.events = InnerInterest(s);
    inner.data.fd = fd;
    if (sys::EpollCtl(inner_, EPOLL_CTL_ADD, fd, &inner) != 0 &&
        errno != EEXIST)
      return -1;
    s->Ref();
    it = entries_.emplace(fd, Entry{}).first;
    it->second.s = s;
    it->second.inner_events = inner.events;
  }
  Entry& e = it->second;
  AddWake(fd, e);
  e.deleted = false;
  e.events = ev->events;
  e.data = ev->data;
  e.disabled = false;
  e.mark_in = e.mark_out = ~0ull;
  e.mark_flags = ~0u;
  return 0;
}

bool EpollSet::Report(Entry& e, uint32_t ev, epoll_event* out) {
  if (e.events & EPOLLET) {
    engine::Conn* c = e.s->conn();
    uint64_t in = c->rx_ctl()->p.prod.load(std::memory_order_relaxed);
    uint64_t outm = c->tx_ctl()->c.cons.load(std::memory_order_relaxed);
    uint32_t flags = c->rx_ctl()->p.conn_flags.load(std::memory_order_relaxed) |
                     (c->state()->flags.load(std::memory_order_relaxed) << 8);
    if (in == e.mark_in && outm == e.mark_out && flags == e.mark_flags)
      return false;
    e.mark_in = in;
    e.mark_out = outm;
    e.mark_flags = flags;
  }
  out->events = ev;
  out->data = e.data;
  if (e.events & EPOLLONESHOT) e.disabled = true;
  return true;
}

int EpollSet::Collect(epoll_event* out, int max) {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  size_t size = entries_.size();
  if (size == 0) return 0;
  size_t skip =
      rr_++ %
      size;  // rotate the start so no fd starves when more than max are ready
  for (int pass = 0; pass < 2 && n < max; ++pass) {
    size_t k = 0;
    for (auto& [fd, e] : entries_) {
      bool first_part = k++ >= skip;
      if ((pass == 0) != first_part || n >= max) continue;
      if (e.disabled || e.deleted || e.s->state() != SockState::kActive)
        continue;
      AddWake(fd, e);
      uint32_t ev = e.s->conn()->Events() & (e.events | EPOLLERR | EPOLLHUP);
      if (ev != 0 && Report(e, ev, &out[n])) ++n;
    }
  }
  return n;
}

// A cross-host connection is woken through its eventfd, registered under the
// same fd number as its TCP socket so ServiceInner treats both alike. It
// leaves inner_ by itself when the connection closes the eventfd.
void EpollSet::AddWake(int fd, Entry& e) {
  if (e.wake_added || e.s->state() != SockState::kActive) return;
  int w = e.s->conn()->wake_fd();
  if (w < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;  // one event per ring, drained or not
  ev.data.fd = fd;
  e.wake_added = sys::EpollCtl(inner_, EPOLL_CTL_ADD, w, &ev) == 0;
}

void EpollSet::UpdateInner(int fd, Socket* s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(fd);
  if (it == entries_.end() || it->second.s != s) return;
  AddWake(fd, it->second);
  uint32_t want = InnerInterest(s);
  if (want == it->second.inner_events) return;
  epoll_event inner{};
  inner.events = want;
  inner.data.fd = fd;
  if (sys::EpollCtl(inner_, EPOLL_CTL_MOD, fd, &inner) == 0)
    it->second.inner_events = want;
}

void EpollSet::ServiceInner() {
  epoll_event evs[64];
  int r = sys::EpollPwait(inner_, evs, 64, 0, nullptr);
  for (int i = 0; i < r; ++i) {
    int fd = evs[i].data.fd;
    SocketRef s(fd);
    if (!s) {
      sys::EpollCtl(inner_, EPOLL_CTL_DEL, fd, nullptr);
      continue;
    }
    if (s->state() == SockState::kActive) {
      s->conn()->Pump();
      uint32_t f = s->conn()->state()->flags.load(std::memory_order_relaxed);
      if (f & (engine::kPeerFin | engine::kPeerReset))
        sys::EpollCtl(inner_, EPOLL_CTL_DEL, fd, nullptr);
      continue;
    }
    if (!s->Advance()) {
      DropToPlain(fd, s.get());
      continue;
    }
    UpdateInner(fd, s.get());
  }
}

// One kernel epoll_wait: plain fds' events stay in `out`; the tag means an
// accelerated fd's TCP socket stirred (doorbell, FIN, handshake bytes).
// `collect` adds the accelerated fds that are ready now; it must be false when
// `out` already holds accelerated events (no fd twice in one batch).
int EpollSet::Kernel(epoll_event* out, int max, int timeout_ms,
                     const sigset_t* mask, bool collect) {
  int r = REAL(epoll_pwait)(epfd_, out, max, timeout_ms, mask);
  if (r <= 0) return r;
  uint64_t tag = tag_.load(std::memory_order_relaxed);
  int n = 0;
  bool inner = false;
  for (int i = 0; i < r; ++i) {
    if (out[i].data.u64 == tag) {
      inner = true;
    } else {
      out[n++] = out[i];
    }
  }
  if (inner) {
    ServiceInner();
    if (collect) n += Collect(out + n, max - n);
  }
  return n;
}

int EpollSet::Wait(epoll_event* out, int max, int64_t timeout_ns,
                   const sigset_t* mask) {
  uint64_t start = sys::NowNs();
  uint64_t spin_end = start + engine::SpinBudgetNs();
  bool spun = false;  // did this call spin (its outcome adapts the window)
  for (unsigned i = 0;; ++i) {
    int n = Collect(out, max);
    if (n > 0) {
      if (spun) {
        engine::SpinOutcome(true);
        engine::CountThread(stats::kTSpinWakeups);
      }
      if (n < max && calls_++ % kKernelShareEvery == 0) {
        int k = Kernel(out + n, max - n, 0, mask, false);
        if (k > 0) n += k;
      }
      return n;
    }
    if (timeout_ns == 0) return Kernel(out, max, 0, mask, true);
    uint64_t now = sys::NowNs();
    int64_t left =
        timeout_ns < 0 ? -1 : timeout_ns - static_cast<int64_t>(now - start);
    if (timeout_ns >= 0 && left <= 0) return Kernel(out, max, 0, mask, true);
    if (now < spin_end) {
      spun = true;
      if (i % kKernelCheckEvery == 0) {
        if (int k = Kernel(out, max, 0, mask, true); k != 0) return k;
      }
      engine::SpinPause(i);
      continue;
    }
    std::vector<Socket*> armed;
    bool sleep = ArmAll(armed);
    int k = 0;
    if (sleep) {
      engine::CountThread(stats::kTSleeps);
      k = Kernel(out, max,
                 left < 0 ? -1 : static_cast<int>((left + 999999) / 1000000),
                 mask, true);
    }
    int err = errno;
    if (spun && k != 0) {
      engine::SpinOutcome(
          false, sys::NowNs() - start);  // how long the answer really took
      spun = false;
    }
    for (Socket* s : armed) {
      s->conn()->Disarm();
      s->Unref();
    }
    errno = err;
    if (k != 0) return k;
  }
}

bool EpollSet::ArmAll(std::vector<Socket*>& armed) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [fd, e] : entries_) {
    if (e.disabled || e.deleted || e.s->state() != SockState::kActive) continue;
    uint32_t want = e.events & (EPOLLIN | EPOLLOUT);
    if (want == 0) continue;
    if (!e.s->conn()->Arm(want)) return false;
    e.s->Ref();
    armed.push_back(e.s);
  }
  return true;
}

void EpollSet::MakeNative(int fd, Socket* s) {
  Entry e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(fd);
    if (it == entries_.end() || it->second.s != s) return;
    e = it->second;
    entries_.erase(it);
  }
  sys::EpollCtl(inner_, EPOLL_CTL_DEL, fd, nullptr);
  if (e.deleted) {
    e.s->Unref();
    return;
  }
  epoll_event ev{};
  ev.events = e.disabled ? (e.events & (EPOLLONESHOT | EPOLLET)) : e.events;
  ev.data = e.data;
  REAL(epoll_ctl)(epfd_, EPOLL_CTL_ADD, fd, &ev);
  e.s->Unref();
}

void EpollSet::Forget(int fd, Socket* s) {
  Socket* gone = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(fd);
    if (it == entries_.end() || it->second.s != s) return;
    gone = it->second.s;
    entries_.erase(it);
  }
  sys::EpollCtl(inner_, EPOLL_CTL_DEL, fd, nullptr);
  gone->Unref();
}

}  // namespace usmc::preload
