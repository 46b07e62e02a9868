// Wake-ups: the waiting flags, the doorbell byte on the TCP socket, and
// spin-then-sleep.
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>

#include "engine/conn.h"
#include "engine/signals.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::engine {

namespace {

int RemainingMs(uint64_t deadline_ns) {
  if (deadline_ns == 0) return -1;
  uint64_t now = sys::NowNs();
  return now >= deadline_ns
             ? 0
             : static_cast<int>((deadline_ns - now + 999999) / 1000000);
}

}  // namespace

void Conn::Ring() {
  char bell = 1;
  sys::Send(tcp_fd(), &bell, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  CountThread(stats::kTDoorbellsSent);
}

void Conn::Break() {
  if (st_->flags.fetch_or(kBroken, std::memory_order_acq_rel) & kBroken) return;
  USMC_LOG("fd=%d reset: peer wrote an invalid cursor", tcp_fd());
  st_->error.store(ECONNRESET, std::memory_order_relaxed);
  tx_->p.conn_flags.fetch_or(wire::kCdcPeerConnAbort,
                             std::memory_order_release);
  if (remote_ != nullptr) RemoteFlush(remote_);
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  sys::Connect(tcp_fd(), &unspec, sizeof unspec);  // disconnects with RST
}

bool Conn::Arm(uint32_t want) {
  if (want & EPOLLIN)
    rx_->c.waiting_for_data.store(1, std::memory_order_relaxed);
  if (want & EPOLLOUT)
    tx_->p.waiting_for_space.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Ready already: the flag stays set; the peer's next publish rings once for
  // nothing.
  return (Events() & (want | EPOLLERR | EPOLLHUP)) == 0;
}

// Clearing the flags here would race with another waiter arming them again
// (threads, or forked holders, on one connection): its wake-up would be lost.
// Only the side that rings clears a flag, by exchanging it, so a waiter that
// woke for another reason costs at most one spare doorbell later.
void Conn::Disarm() {}

void Conn::Pump() {
  if (wake_fd_ >= 0) {
    uint64_t v;
    sys::Read(wake_fd_, &v, sizeof v);
  }
  char buf[256];
  while (true) {
    ssize_t r = sys::Recv(tcp_fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0)
      CountThread(stats::kTDoorbellsReceived, static_cast<uint64_t>(r));
    if (r == static_cast<ssize_t>(sizeof buf)) continue;
    if (r > 0) return;
    // Cross-host, bytes written before the FIN may still be in our queues.
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      int err = errno;
      if (remote_ != nullptr) RemoteSync(remote_);
      errno = err;
    }
    if (r == 0) {
      st_->flags.fetch_or(kPeerFin, std::memory_order_acq_rel);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    st_->error.store(errno, std::memory_order_relaxed);
    st_->flags.fetch_or(kPeerReset, std::memory_order_acq_rel);
    return;
  }
}

// The words whose change can make `want` ready: spinning on them alone keeps
// the spin off the cache lines the peer is busy writing for other reasons.
uint64_t Conn::WatchWord(uint32_t want) const {
  uint64_t w = st_->flags.load(std::memory_order_relaxed);
  if (want & EPOLLIN) {
    w ^= rx_->p.prod.load(std::memory_order_acquire) ^
         (uint64_t{rx_->p.conn_flags.load(std::memory_order_relaxed)} << 40);
  }
  if (want & EPOLLOUT) w ^= tx_->c.cons.load(std::memory_order_acquire) << 1;
  return w;
}

// One sleep of an armed waiter. The first waiter polls the TCP socket and
// drains the doorbell; if it let a second poller do that too, one could drain
// the byte before the other's poll looked, and the other would sleep through
// its wake-up. So later waiters sleep on a futex the poller bumps.
int Conn::SleepOnce(uint64_t deadline_ns) {
  int ms = RemainingMs(deadline_ns);
  int32_t me = static_cast<int32_t>(gettid());
  int32_t none = 0;
  if (st_->poller.compare_exchange_strong(none, me,
                                          std::memory_order_acq_rel)) {
    pollfd p[2] = {{tcp_fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int r = sys::Poll(p, wake_fd_ >= 0 ? 2 : 1, ms);
    int err = errno;
    if (r > 0) Pump();
    st_->poller.store(0, std::memory_order_release);
    st_->wake_gen.fetch_add(1, std::memory_order_acq_rel);
    if (st_->futex_waiters.load(std::memory_order_acquire) > 0) {
      syscall(SYS_futex, &st_->wake_gen, FUTEX_WAKE, INT32_MAX, nullptr,
              nullptr, 0);
    }
    errno = err;
    return r;
  }
  uint32_t gen = st_->wake_gen.load(std::memory_order_acquire);
  st_->futex_waiters.fetch_add(1, std::memory_order_acq_rel);
  int r = 0;
  if (st_->poller.load(std::memory_order_acquire) !=
      0) {  // else the poller already left: retry
    // Bounded: a poller that dies (SIGKILL of a forked holder) must not strand
    // us.
    timespec ts{0, 50 * 1000000};
    if (ms >= 0 && ms < 50) ts.tv_nsec = static_cast<long>(ms) * 1000000;
    r = static_cast<int>(
        syscall(SYS_futex, &st_->wake_gen, FUTEX_WAIT, gen, &ts, nullptr, 0));
    if (r < 0 && (errno == EAGAIN || errno == ETIMEDOUT)) r = 0;
  }
  st_->futex_waiters.fetch_sub(1, std::memory_order_acq_rel);
  return r;
}

int Conn::Wait(uint32_t want, uint64_t deadline_ns) {
  uint32_t mask = want | EPOLLERR | EPOLLHUP;
  if (uint32_t ev = Events(); ev & mask) return static_cast<int>(ev);
  uint64_t start = sys::NowNs();
  uint64_t spin_end = start + SpinBudgetNs();
  uint64_t seen = WatchWord(want);
  for (unsigned i = 1;; ++i) {
    uint64_t now_word = WatchWord(want);
    if (now_word != seen || (i & 63) == 0) {
      seen = now_word;
      if (uint32_t ev = Events(); ev & mask) {
        CountThread(stats::kTSpinWakeups);
        SpinOutcome(true);
        return static_cast<int>(ev);
      }
    }
    if ((i & 63) == 0) {
      uint64_t now = sys::NowNs();
      if (now >= spin_end) break;
      if (deadline_ns != 0 && now >= deadline_ns) return 0;
    }
    SpinPause(i);
  }
  while (true) {
    if (!Arm(want)) {
      if (uint32_t ev = Events(); ev & mask) return static_cast<int>(ev);
      continue;
    }
    CountThread(stats::kTSleeps);
    int r = SleepOnce(deadline_ns);
    int err = errno;
    Disarm();
    if (r < 0 && err == EINTR && !RestartAfterSignal()) {
      errno = EINTR;
      return -1;
    }
    if (uint32_t ev = Events(); ev & mask) {
      SpinOutcome(false, sys::NowNs() - start);
      return static_cast<int>(ev);
    }
    if (deadline_ns != 0 && sys::NowNs() >= deadline_ns) return 0;
  }
}

}  // namespace usmc::engine
