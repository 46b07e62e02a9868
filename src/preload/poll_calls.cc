// Interposed poll, ppoll, select, pselect (and the fortified poll entry
// points). Accelerated fds are ready by their rings; the kernel is asked about
// plain fds, and about accelerated ones only to sleep (doorbells, FIN/RST,
// handshake progress).
#include <errno.h>
#include <poll.h>
#include <sys/select.h>

#include <vector>

#include "engine/conn.h"
#include "preload/fdtable.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "util/sys.h"

namespace usmc::preload {
namespace {

constexpr unsigned kKernelCheckEvery =
    64;  // spin iterations between kernel checks of plain fds

struct Managed {
  nfds_t index;
  Socket* s;
  bool armed;
  bool dropped;  // left usmc during this call: a plain fd from then on
};

short AppEvents(Socket* s, short want) {
  uint32_t ev = s->Events();
  return static_cast<short>(ev &
                            (static_cast<uint32_t>(want) | POLLERR | POLLHUP));
}

// Fills revents of managed fds from their rings; returns how many are ready.
int Evaluate(pollfd* fds, std::vector<Managed>& m) {
  int ready = 0;
  for (auto& e : m) {
    if (!e.dropped) fds[e.index].revents = AppEvents(e.s, fds[e.index].events);
    if (fds[e.index].revents != 0) ++ready;
  }
  return ready;
}

// An armed cross-host connection also sleeps on its wake eventfd, polled
// after the caller's fds.
int WakeFd(const Managed& e) {
  return e.armed && !e.dropped && e.s->state() == SockState::kActive
             ? e.s->conn()->wake_fd()
             : -1;
}

// One kernel poll: plain fds with their own interest, managed ones with what
// they sleep on.
int KernelPoll(pollfd* fds, nfds_t n, std::vector<Managed>& m,
               const timespec* ts, const sigset_t* mask,
               std::vector<pollfd>& scratch) {
  scratch.assign(fds, fds + n);
  for (auto& e : m) {
    if (e.dropped) continue;
    uint32_t hs = e.s->HandshakeInterest();
    scratch[e.index].events = static_cast<short>(hs != 0 ? hs : POLLIN);
    if (!e.armed && hs == 0)
      scratch[e.index].fd = -1;  // not sleeping on it: don't wake for it
  }
  for (auto& e : m) {
    if (int w = WakeFd(e); w >= 0) scratch.push_back({w, POLLIN, 0});
  }
  int r = REAL(ppoll)(scratch.data(), scratch.size(), ts, mask);
  if (r < 0) return r;
  int plain_ready = 0;
  for (nfds_t i = 0; i < n; ++i) fds[i].revents = scratch[i].revents;
  size_t extra = n;
  for (auto& e : m) {
    if (e.dropped) continue;
    short rev = fds[e.index].revents;
    fds[e.index].revents = 0;
    if (WakeFd(e) >= 0 && scratch[extra++].revents != 0) rev |= POLLIN;
    if (rev == 0) continue;
    if (e.s->state() == SockState::kActive) {
      e.s->conn()->Pump();
    } else if (!e.s->Advance()) {
      DropToPlain(fds[e.index].fd, e.s);
      e.dropped =
          true;  // its kernel readiness counts from the next kernel poll on
    }
  }
  for (nfds_t i = 0; i < n; ++i) plain_ready += fds[i].revents != 0;
  return plain_ready;
}

bool ArmAll(pollfd* fds, std::vector<Managed>& m) {
  for (auto& e : m) {
    if (e.dropped || e.s->state() != SockState::kActive) continue;
    uint32_t want =
        static_cast<uint32_t>(fds[e.index].events) & (POLLIN | POLLOUT);
    if (!e.s->conn()->Arm(want)) return false;
    e.armed = true;
  }
  return true;
}

void DisarmAll(std::vector<Managed>& m) {
  for (auto& e : m) {
    if (e.armed) e.s->conn()->Disarm();
    e.armed = false;
  }
}

int Merge(pollfd* fds, nfds_t n, std::vector<Managed>& m) {
  Evaluate(fds, m);
  int count = 0;
  for (nfds_t i = 0; i < n; ++i) count += fds[i].revents != 0;
  return count;
}

int PollLoop(pollfd* fds, nfds_t n, std::vector<Managed>& m, int64_t timeout_ns,
             const sigset_t* mask) {
  uint64_t start = sys::NowNs();
  uint64_t spin_end = start + engine::SpinBudgetNs();
  std::vector<pollfd> scratch;
  timespec zero{0, 0};
  bool spun = false;
  for (unsigned i = 0;; ++i) {
    if (Evaluate(fds, m) > 0 || timeout_ns == 0) {
      if (spun) {
        engine::SpinOutcome(true);
        engine::CountThread(stats::kTSpinWakeups);
      }
      if (KernelPoll(fds, n, m, &zero, mask, scratch) < 0) return -1;
      return Merge(fds, n, m);
    }
    uint64_t now = sys::NowNs();
    if (now < spin_end &&
        (timeout_ns < 0 || now - start < static_cast<uint64_t>(timeout_ns))) {
      spun = true;
      if (i % kKernelCheckEvery == 0 &&
          KernelPoll(fds, n, m, &zero, mask, scratch) != 0) {
        return Merge(fds, n, m);
      }
      engine::SpinPause(i);
      continue;
    }
    if (!ArmAll(fds, m)) {
      DisarmAll(m);
      continue;
    }
    timespec ts, *tsp = nullptr;
    if (timeout_ns >= 0) {
      int64_t left = timeout_ns - static_cast<int64_t>(now - start);
      if (left < 0) left = 0;
      ts = {static_cast<time_t>(left / 1000000000),
            static_cast<long>(left % 1000000000)};
      tsp = &ts;
    }
    engine::CountThread(stats::kTSleeps);
    int r = KernelPoll(fds, n, m, tsp, mask, scratch);
    int err = errno;
    DisarmAll(m);
    if (r < 0) {
      errno = err;
      return -1;
    }
    int ready = Merge(fds, n, m);
    if (spun && (ready > 0 || r > 0)) {
      engine::SpinOutcome(
          false, sys::NowNs() - start);  // how long the answer really took
      spun = false;
    }
    if (ready > 0) return ready;
    if (timeout_ns >= 0 &&
        sys::NowNs() - start >= static_cast<uint64_t>(timeout_ns))
      return 0;
  }
}

int Poll(pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* mask,
         bool* handled) {
  std::vector<Managed> m;
  for (nfds_t i = 0; i < n; ++i) {
    if (!FdTable::Get().Maybe(fds[i].fd)) continue;
    Socket* s = FdTable::Get().Acquire(fds[i].fd);
    if (s == nullptr) continue;
    if (s->state() == SockState::kListener ||
        s->state() == SockState::kStripProposal) {
      s->Unref();  // the kernel's readiness is the truth for these
      continue;
    }
    m.push_back({i, s, false, false});
  }
  *handled = !m.empty();
  if (m.empty()) return 0;
  int r = PollLoop(fds, n, m, timeout_ns, mask);
  int err = errno;
  for (auto& e : m) e.s->Unref();
  errno = err;
  return r;
}

int64_t ToNs(const timespec* ts) {
  return ts == nullptr
             ? -1
             : static_cast<int64_t>(ts->tv_sec) * 1000000000 + ts->tv_nsec;
}

int SelectViaPoll(int nfds, fd_set* r, fd_set* w, fd_set* e, int64_t timeout_ns,
                  const sigset_t* mask, bool* handled) {
  std::vector<pollfd> p;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = 0;
    if (r != nullptr && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w != nullptr && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (e != nullptr && FD_ISSET(fd, e)) ev |= POLLPRI;
    if (ev != 0) p.push_back({fd, ev, 0});
  }
  int ready = Poll(p.data(), p.size(), timeout_ns, mask, handled);
  if (!*handled || ready < 0) return ready;
  if (r != nullptr) FD_ZERO(r);
  if (w != nullptr) FD_ZERO(w);
  if (e != nullptr) FD_ZERO(e);
  int count = 0;
  for (auto& q : p) {
    if (q.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
    if (r != nullptr && (q.revents & (POLLIN | POLLHUP | POLLERR)) &&
        (q.events & POLLIN))
      FD_SET(q.fd, r), ++count;
    if (w != nullptr && (q.revents & (POLLOUT | POLLERR)) &&
        (q.events & POLLOUT))
      FD_SET(q.fd, w), ++count;
    if (e != nullptr && (q.revents & POLLPRI)) FD_SET(q.fd, e), ++count;
  }
  return count;
}

}  // namespace
}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

int poll(pollfd* fds, nfds_t n, int timeout) {
  bool handled = false;
  int r = Poll(fds, n, timeout < 0 ? -1 : int64_t{timeout} * 1000000, nullptr,
               &handled);
  return handled ? r : REAL(poll)(fds, n, timeout);
}

int ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) {
  bool handled = false;
  int r = Poll(fds, n, ToNs(ts), mask, &handled);
  return handled ? r : REAL(ppoll)(fds, n, ts, mask);
}

int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof(pollfd) < n) __builtin_trap();
  return poll(fds, n, timeout);
}

int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask,
                size_t fdslen) {
  if (fdslen / sizeof(pollfd) < n) __builtin_trap();
  return ppoll(fds, n, ts, mask);
}

int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) {
  bool handled = false;
  int64_t ns = tv == nullptr ? -1
                             : int64_t{tv->tv_sec} * 1000000000 +
                                   int64_t{tv->tv_usec} * 1000;
  fd_set r0, w0, e0;
  if (r != nullptr) r0 = *r;
  if (w != nullptr) w0 = *w;
  if (e != nullptr) e0 = *e;
  int res = SelectViaPoll(nfds, r, w, e, ns, nullptr, &handled);
  if (handled) return res;
  if (r != nullptr) *r = r0;
  if (w != nullptr) *w = w0;
  if (e != nullptr) *e = e0;
  return REAL(select)(nfds, r, w, e, tv);
}

int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts,
            const sigset_t* mask) {
  bool handled = false;
  fd_set r0, w0, e0;
  if (r != nullptr) r0 = *r;
  if (w != nullptr) w0 = *w;
  if (e != nullptr) e0 = *e;
  int res = SelectViaPoll(nfds, r, w, e, ToNs(ts), mask, &handled);
  if (handled) return res;
  if (r != nullptr) *r = r0;
  if (w != nullptr) *w = w0;
  if (e != nullptr) *e = e0;
  return REAL(pselect)(nfds, r, w, e, ts, mask);
}

}  // extern "C"
