// The send side: copy into the ring the peer consumes from, publish the
// producer cursor, and ring the peer only if it sleeps waiting for data.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "engine/conn.h"
#include "util/sys.h"

namespace usmc::engine {

using wire::Cursor;

int64_t Conn::ValidatedWritable() {
  Cursor prod = Cursor::FromWord(st_->tx_prod.load(std::memory_order_relaxed));
  Cursor last =
      Cursor::FromWord(st_->tx_peer_cons.load(std::memory_order_relaxed));
  Cursor cons = Cursor::FromWord(
      tx_->c.cons.load(std::memory_order_acquire));  // read once
  int64_t used = CheckedDistance(cons, prod, last, cons);
  if (used < 0) return -1;
  st_->tx_peer_cons.store(cons.ToWord(), std::memory_order_relaxed);
  return static_cast<int64_t>(ring_bytes_) - used;
}

size_t Conn::CopyIn(const iovec* iov, int iovcnt, size_t skip, size_t n,
                    Cursor at) {
  size_t pos = at.count();
  size_t copied = 0;
  for (int i = 0; i < iovcnt && copied < n; ++i) {
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const auto* src = static_cast<const uint8_t*>(iov[i].iov_base) + skip;
    size_t room = std::min(len - skip, n - copied);
    skip = 0;
    while (room > 0) {
      size_t chunk = std::min(room, ring_bytes_ - pos);
      std::memcpy(tx_data_ + pos, src, chunk);
      src += chunk;
      room -= chunk;
      copied += chunk;
      pos = (pos + chunk) % ring_bytes_;
    }
  }
  return copied;
}

ssize_t Conn::SendOnce(const iovec* iov, int iovcnt, size_t done, size_t total,
                       int flags, [[maybe_unused]] bool first) {
  ArenaLock lock(&st_->tx_mu);
  USMC_COUNT(if (first) stats::Inc(st_->tx.calls));
  int64_t space = ValidatedWritable();
  if (space <= 0) {
    USMC_COUNT(if (space == 0) stats::Inc(st_->tx.full));
    return space;
  }
  size_t n = std::min(static_cast<size_t>(space), total - done);
  Cursor prod = Cursor::FromWord(st_->tx_prod.load(std::memory_order_relaxed));
  CopyIn(iov, iovcnt, done, n, prod);
  Cursor next = prod.Advance(static_cast<uint32_t>(n), ring_bytes_);
  st_->tx_prod.store(next.ToWord(), std::memory_order_relaxed);
  tx_->p.prod.store(next.ToWord(), std::memory_order_release);
  stats::Add(st_->bytes_out, n);  // single writer (tx_mu): no locked add
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // MSG_MORE defers the wake-up (cork): the data is visible, the sleeping peer
  // is told later.
  if (!(flags & MSG_MORE) &&
      tx_->c.waiting_for_data.load(std::memory_order_relaxed) != 0 &&
      tx_->c.waiting_for_data.exchange(0, std::memory_order_acq_rel) != 0) {
    Ring();
  }
  if (remote_ != nullptr) RemoteFlush(remote_);
  return static_cast<ssize_t>(n);
}

// errno for a send that cannot go on; raises SIGPIPE like TCP unless
// MSG_NOSIGNAL.
int Conn::SendError(int flags) const {
  uint32_t peer = rx_->p.conn_flags.load(std::memory_order_acquire);
  int err = 0;
  uint32_t local = st_->flags.load(std::memory_order_acquire);
  if (PeerAborted(peer, local)) {
    err = ECONNRESET;
  } else if ((local & (kShutWr | kPeerFin | kPeerReset)) ||
             (peer & wire::kCdcPeerConnClosed)) {
    err = EPIPE;
  }
  if (err == EPIPE && !(flags & MSG_NOSIGNAL))
    pthread_kill(pthread_self(), SIGPIPE);
  return err;
}

ssize_t Conn::Send(const iovec* iov, int iovcnt, int flags, int timeout_ms) {
  if (remote_ != nullptr && !RemoteMine(remote_)) {
    errno = ENOTCONN;  // a forked child's copy of a cross-host connection
    return -1;
  }
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
  bool nonblock = (flags & MSG_DONTWAIT) || nonblocking();
  uint64_t deadline =
      timeout_ms > 0 ? sys::NowNs() + uint64_t(timeout_ms) * 1000000 : 0;
  size_t done = 0;
  for (bool first = true;; first = false) {
    if (int err = SendError(flags); err != 0) {
      if (done > 0) return static_cast<ssize_t>(done);
      errno = err;
      return -1;
    }
    if (total == 0) return 0;
    ssize_t n = SendOnce(iov, iovcnt, done, total, flags, first);
    if (n < 0) {
      errno = ECONNRESET;
      return done > 0 ? static_cast<ssize_t>(done) : -1;
    }
    done += static_cast<size_t>(n);
    if (done == total) return static_cast<ssize_t>(done);
    if (nonblock) {
      if (done > 0) return static_cast<ssize_t>(done);
      errno = EAGAIN;
      return -1;
    }
    int r = Wait(EPOLLOUT, deadline);
    if (r <= 0) {
      if (done > 0) return static_cast<ssize_t>(done);
      errno = r < 0 ? EINTR : EAGAIN;
      return -1;
    }
  }
}

}  // namespace usmc::engine
