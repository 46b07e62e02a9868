// The receive side: copy out of the ring the peer produces into, publish the
// consumer cursor, and wake a producer waiting for space once enough of the
// ring is free again.
#include <errno.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "engine/conn.h"
#include "util/sys.h"

namespace usmc::engine {

using wire::Cursor;

int64_t Conn::ValidatedReadable() {
  Cursor cons = Cursor::FromWord(st_->rx_cons.load(std::memory_order_relaxed));
  Cursor last =
      Cursor::FromWord(st_->rx_peer_prod.load(std::memory_order_relaxed));
  Cursor prod = Cursor::FromWord(
      rx_->p.prod.load(std::memory_order_acquire));  // read once
  int64_t readable = CheckedDistance(cons, prod, last, prod);
  if (readable >= 0)
    st_->rx_peer_prod.store(prod.ToWord(), std::memory_order_relaxed);
  return readable;
}

// Copies n bytes starting at ring position `from` into iov, skipping the first
// `skip` iov bytes.
size_t Conn::CopyOut(const iovec* iov, int iovcnt, size_t skip, size_t n,
                     Cursor from, bool drop) {
  if (drop) return n;  // MSG_TRUNC: consume without copying
  size_t pos = from.count();
  size_t copied = 0;
  for (int i = 0; i < iovcnt && copied < n; ++i) {
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    auto* dst = static_cast<uint8_t*>(iov[i].iov_base) + skip;
    size_t room = std::min(len - skip, n - copied);
    skip = 0;
    while (room > 0) {
      size_t chunk = std::min(room, ring_bytes_ - pos);
      std::memcpy(dst, rx_data_ + pos, chunk);
      dst += chunk;
      room -= chunk;
      copied += chunk;
      pos = (pos + chunk) % ring_bytes_;
    }
  }
  return copied;
}

void Conn::Consume(size_t n) {
  Cursor cons = Cursor::FromWord(st_->rx_cons.load(std::memory_order_relaxed));
  Cursor next = cons.Advance(static_cast<uint32_t>(n), ring_bytes_);
  st_->rx_cons.store(next.ToWord(), std::memory_order_relaxed);
  rx_->c.cons.store(next.ToWord(), std::memory_order_release);
  stats::Add(st_->bytes_in, n);  // single writer (rx_mu): no locked add
  if (remote_ != nullptr) RemoteFlush(remote_);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (rx_->p.waiting_for_space.load(std::memory_order_relaxed) == 0) return;
  // RFC 7609's minimum window increase: wake the producer once 10% of the ring
  // is free, or all of it.
  Cursor prod =
      Cursor::FromWord(st_->rx_peer_prod.load(std::memory_order_relaxed));
  int64_t used = Cursor::Distance(next, prod, ring_bytes_);
  if (used != 0 && ring_bytes_ - used < ring_bytes_ / 10) return;
  if (rx_->p.waiting_for_space.exchange(0, std::memory_order_acq_rel) != 0)
    Ring();
}

ssize_t Conn::RecvOnce(const iovec* iov, int iovcnt, size_t done, size_t want,
                       int flags, [[maybe_unused]] bool first) {
  ArenaLock lock(&st_->rx_mu);
  USMC_COUNT(if (first) stats::Inc(st_->rx.calls));
  int64_t readable = ValidatedReadable();
  if (readable <= 0) return readable;
  USMC_COUNT(if (readable == ring_bytes_)
                 stats::Inc(st_->rx.full));  // the peer's sends found it full
  bool peek = flags & MSG_PEEK;
  Cursor cons = Cursor::FromWord(st_->rx_cons.load(std::memory_order_relaxed));
  size_t skip = peek ? 0 : done;
  size_t n = std::min(static_cast<size_t>(readable), want - (peek ? 0 : done));
  if (peek) n = std::min(static_cast<size_t>(readable), want);
  CopyOut(iov, iovcnt, skip, n, cons, (flags & MSG_TRUNC) && !peek);
  if (!peek) Consume(n);
  return static_cast<ssize_t>(n);
}

ssize_t Conn::Recv(const iovec* iov, int iovcnt, int flags, int timeout_ms) {
  size_t want = 0;
  for (int i = 0; i < iovcnt; ++i) want += iov[i].iov_len;
  if (want == 0) return 0;
  bool nonblock = (flags & MSG_DONTWAIT) || nonblocking();
  bool waitall = (flags & MSG_WAITALL) && !(flags & MSG_PEEK);
  uint64_t deadline =
      timeout_ms > 0 ? sys::NowNs() + uint64_t(timeout_ms) * 1000000 : 0;
  size_t done = 0;
  for (bool first = true;; first = false) {
    uint32_t peer = rx_->p.conn_flags.load(std::memory_order_acquire);
    if (PeerAborted(peer, st_->flags.load(std::memory_order_acquire))) {
      if (done > 0) return static_cast<ssize_t>(done);
      errno = ECONNRESET;
      return -1;
    }
    bool eof = PeerDoneWriting();  // read before the cursor: the flag follows
                                   // the last byte
    ssize_t n = RecvOnce(iov, iovcnt, done, want, flags, first);
    if (n < 0) {
      errno = ECONNRESET;
      return done > 0 ? static_cast<ssize_t>(done) : -1;
    }
    if (flags & MSG_PEEK) {
      // MSG_PEEK|MSG_WAITALL waits for the whole length, as TCP does. More data
      // cannot be waited for with the doorbell (the ring is already readable),
      // so this rare case naps briefly.
      bool whole = !(flags & MSG_WAITALL) || static_cast<size_t>(n) == want ||
                   eof || nonblock;
      if (n > 0 && whole) return n;
      if (n > 0) {
        timespec nap{0, 200000};
        nanosleep(&nap, nullptr);
        if (deadline != 0 && sys::NowNs() >= deadline) return n;
        continue;
      }
    } else {
      done += static_cast<size_t>(n);
      if (done == want || (done > 0 && !waitall))
        return static_cast<ssize_t>(done);
    }
    if (eof || Has(kShutRd)) return static_cast<ssize_t>(done);
    if (nonblock) {
      if (done > 0) return static_cast<ssize_t>(done);
      errno = EAGAIN;
      return -1;
    }
    int r = Wait(EPOLLIN, deadline);
    if (r < 0 || r == 0) {
      if (done > 0) return static_cast<ssize_t>(done);
      errno = r < 0 ? EINTR : EAGAIN;
      return -1;
    }
  }
}

}  // namespace usmc::engine
