#include "engine/conn.h"

#include <errno.h>
#include <sched.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstdlib>

#include "util/once.h"
#include "util/sys.h"

namespace usmc::engine {

using wire::Cursor;

Conn::Conn(const Setup& s)
    : tcp_fd_(s.tcp_fd),
      side_(s.side),
      st_(s.st),
      seg_(s.seg),
      slot_(s.slot),
      ring_bytes_(s.seg->ring_bytes()),
      remote_(s.remote),
      wake_fd_(s.remote != nullptr ? RemoteWakeFd(s.remote) : -1) {
  st_->id.ring_bytes = ring_bytes_;  // for `usmc ss`
  shm::SlotHeader* h = seg_->slot(slot_);
  bool client = side_ == shm::Side::kClient;
  tx_ = client ? &h->c2s : &h->s2c;
  rx_ = client ? &h->s2c : &h->c2s;
  tx_data_ = client ? seg_->ring_c2s(slot_) : seg_->ring_s2c(slot_);
  rx_data_ = client ? seg_->ring_s2c(slot_) : seg_->ring_c2s(slot_);
}

int64_t Conn::CheckedDistance(wire::Cursor from, wire::Cursor to,
                              wire::Cursor last, wire::Cursor peer) {
  int64_t d = wire::Cursor::Distance(from, to, ring_bytes_);
  if (d < 0 || wire::Cursor::Distance(last, peer, ring_bytes_) < 0) {
    Break();
    return -1;
  }
  return d;
}

bool Conn::Has(uint32_t flag) const {
  return (st_->flags.load(std::memory_order_acquire) & flag) != 0;
}

void Conn::SetNonBlocking(bool on) {
  if (on) {
    st_->flags.fetch_or(kNonBlock, std::memory_order_relaxed);
  } else {
    st_->flags.fetch_and(~kNonBlock, std::memory_order_relaxed);
  }
}

bool Conn::nonblocking() const { return Has(kNonBlock); }

int Conn::TakeError() {
  return st_->error.exchange(0, std::memory_order_acq_rel);
}

// The peer's own flags in the slot outrank what the TCP socket says: a graceful
// close whose TCP teardown became a RST (a doorbell was still unread) is still
// a graceful close.
bool Conn::PeerAborted(uint32_t peer, uint32_t local) {
  if (peer & wire::kCdcPeerConnAbort) return true;
  if (local & kBroken) return true;
  return (local & kPeerReset) && !(peer & wire::kCdcPeerConnClosed);
}

bool Conn::PeerDone(uint32_t peer, uint32_t local) {
  return (peer & (wire::kCdcPeerDoneWriting | wire::kCdcPeerConnClosed)) ||
         (local & (kPeerFin | kPeerReset));
}

bool Conn::PeerDoneWriting() const {
  return PeerDone(rx_->p.conn_flags.load(std::memory_order_acquire),
                  st_->flags.load(std::memory_order_acquire));
}

uint32_t Conn::Events() const {
  uint32_t ev = 0;
  uint32_t peer = rx_->p.conn_flags.load(std::memory_order_acquire);
  uint32_t local = st_->flags.load(std::memory_order_acquire);
  if (PeerAborted(peer, local))
    return EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP;
  bool done = PeerDone(peer, local);
  // Unlocked reads: a stale or odd value only reports readiness; Recv/Send
  // decide under the lock.
  Cursor cons = Cursor::FromWord(st_->rx_cons.load(std::memory_order_relaxed));
  Cursor prod = Cursor::FromWord(rx_->p.prod.load(std::memory_order_acquire));
  if (Cursor::Distance(cons, prod, ring_bytes_) != 0 || done ||
      (local & kShutRd)) {
    ev |= EPOLLIN | EPOLLRDNORM;
  }
  if (done) ev |= EPOLLRDHUP;
  bool peer_gone =
      (peer & wire::kCdcPeerConnClosed) || (local & (kPeerFin | kPeerReset));
  Cursor tprod = Cursor::FromWord(st_->tx_prod.load(std::memory_order_relaxed));
  Cursor tcons = Cursor::FromWord(tx_->c.cons.load(std::memory_order_acquire));
  int64_t used = Cursor::Distance(tcons, tprod, ring_bytes_);
  if (used < 0 || used < ring_bytes_ || (local & kShutWr) || peer_gone)
    ev |= EPOLLOUT | EPOLLWRNORM;
  if (done && (local & kShutWr)) ev |= EPOLLHUP;
  return ev;
}

size_t Conn::BytesReadable() const {
  Cursor cons = Cursor::FromWord(st_->rx_cons.load(std::memory_order_relaxed));
  Cursor prod = Cursor::FromWord(rx_->p.prod.load(std::memory_order_acquire));
  int64_t d = Cursor::Distance(cons, prod, ring_bytes_);
  return d > 0 ? static_cast<size_t>(d) : 0;
}

size_t Conn::BytesUnacked() const {
  Cursor prod = Cursor::FromWord(st_->tx_prod.load(std::memory_order_relaxed));
  Cursor cons = Cursor::FromWord(tx_->c.cons.load(std::memory_order_acquire));
  int64_t d = Cursor::Distance(cons, prod, ring_bytes_);
  return d > 0 ? static_cast<size_t>(d) : 0;
}

void SpinPause(unsigned iteration) {
  // Pure spinning first (the answer usually comes within a few hundred ns),
  // then a yield every ~1 us, enough for a peer queued behind us to run, rare
  // enough not to hand our CPU away.
  if (iteration >= 128 && iteration % 64 == 63) {
    sched_yield();
  } else {
    __builtin_ia32_pause();
  }
}

namespace {

uint64_t MaxSpinNs() {
  static constinit util::Once<uint64_t> budget;
  return budget.Get([] {
    const char* v = getenv("USMC_SPIN_US");
    long us = v != nullptr ? strtol(v, nullptr, 10) : 50;
    if (us < 0) us = 0;
    if (us > 100000) us = 100000;
    return static_cast<uint64_t>(us) * 1000;
  });
}

// Per thread: a spin that ends in a sleep halves the next window, one that is
// answered widens it again (as adaptive mutexes do). With more spinners than
// CPUs most spins fail, and the window shrinks instead of burning the time the
// peer needs.
thread_local uint64_t t_spin_ns = ~0ull;

}  // namespace

uint64_t SpinBudgetNs() {
  if (t_spin_ns == ~0ull) t_spin_ns = MaxSpinNs();
  return t_spin_ns;
}

void SpinOutcome(bool answered, uint64_t waited_ns) {
  uint64_t max = MaxSpinNs();
  uint64_t cur = SpinBudgetNs();
  if (answered) {
    t_spin_ns = std::min(max, cur + max / 8 + 1);
  } else if (waited_ns != 0 && waited_ns < max) {
    // Slept, but the answer came within what a full window would have covered:
    // widen again.
    t_spin_ns = std::min(max, std::max(cur * 2, 2 * waited_ns));
  } else {
    t_spin_ns = std::max<uint64_t>(max / 64, cur / 2);
  }
}

}  // namespace usmc::engine
