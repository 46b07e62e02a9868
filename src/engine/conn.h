// Conn: one accelerated connection as this process sees it — TCP semantics over
// two rings in a slot of a segment, with the TCP socket underneath for wake-ups
// (doorbells) and liveness (FIN/RST).
//
// Invariants:
// - Our own cursors come from the arena (family-private); the peer's cursors
// and flags come from the
//   slot, are read once per use, and are checked (Cursor::Distance) before any
//   byte is copied. A bad value breaks this connection only: the TCP connection
//   is reset and calls fail with ECONNRESET.
// - A side sleeps only after setting its waiting flag, fencing, and
// re-checking; the other side rings
//   (one byte on TCP) only after exchanging that flag from 1 to 0. So no
//   wake-up is lost and no byte goes on TCP while both sides are busy.
// - TCP FIN is sent by the kernel when the last holder (across fork/exec)
// closes; shutdown(SHUT_WR)
//   is a flag in the slot, so the half-closed side can still ring the other.
#ifndef USMC_ENGINE_CONN_H_
#define USMC_ENGINE_CONN_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>

#include "engine/arena.h"
#include "engine/remote.h"
#include "link/shm/segment.h"
#include "wire/cdc.h"

namespace usmc::engine {

class Conn {
 public:
  struct Setup {
    int tcp_fd = -1;
    shm::Side side = shm::Side::kClient;
    ConnState* st = nullptr;      // arena record (holders already counted)
    shm::Segment* seg = nullptr;  // outlives the Conn (owned by the link)
    uint32_t slot = 0;
    // Cross-host: the slot is this side's mirror, kept in step with the
    // peer's by the fabric link (remote.h). Null on the same-host link.
    RemoteConn* remote = nullptr;
  };
  explicit Conn(const Setup& s);
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // recv/send with TCP semantics. flags: MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT,
  // MSG_TRUNC (discard), MSG_NOSIGNAL, MSG_MORE. timeout_ms < 0: no
  // SO_RCVTIMEO/SO_SNDTIMEO. -1 with errno on error.
  ssize_t Recv(const iovec* iov, int iovcnt, int flags, int timeout_ms);
  ssize_t Send(const iovec* iov, int iovcnt, int flags, int timeout_ms);

  // EPOLLIN/OUT/RDHUP/HUP/ERR as of now. Never blocks, never breaks the
  // connection.
  uint32_t Events() const;
  size_t BytesReadable() const;  // FIONREAD
  size_t BytesUnacked()
      const;  // SIOCOUTQ: written but not yet consumed by the peer

  // The sleep protocol, for callers that sleep in the kernel themselves (poll,
  // epoll_wait): Arm() sets the waiting flags for `want` (EPOLLIN, EPOLLOUT)
  // and returns false if the connection became ready meanwhile (no need to
  // sleep). The flags are cleared only by the side that rings (wait.cc says
  // why); Disarm() marks the end of a sleep. Pump() drains doorbells and notes
  // FIN/RST from the TCP socket; call it when the TCP fd polled readable.
  bool Arm(uint32_t want);
  void Disarm();  // after a successful Arm (keeps the flags: see wait.cc)
  void Pump();
  // Spins, then sleeps, until Events() & (want | ERR | HUP) or the deadline
  // (ns, 0 = none) passes. Returns the events, 0 on timeout, -1 with EINTR when
  // a signal arrived.
  int Wait(uint32_t want, uint64_t deadline_ns);

  int Shutdown(int how);
  // The process is done with the connection (its last fd is closed; the TCP fd
  // may already be gone, so this never touches it). When the family's last
  // holder goes: closed or abort flag for the peer (the kernel's FIN/RST wakes
  // it) and this side of the slot released. Returns true for abort.
  bool Close();

  void SetNonBlocking(bool on);
  bool nonblocking() const;
  int TakeError();  // SO_ERROR
  int tcp_fd() const { return tcp_fd_.load(std::memory_order_relaxed); }
  void set_tcp_fd(int fd) { tcp_fd_.store(fd, std::memory_order_relaxed); }
  shm::Side side() const { return side_; }
  ConnState* state() const { return st_; }
  uint32_t ring_bytes() const { return ring_bytes_; }
  shm::Segment* segment() const { return seg_; }
  uint32_t slot() const { return slot_; }
  RemoteConn* remote() const { return remote_; }
  // Cross-host: an eventfd to poll next to the TCP socket while armed (the
  // fabric's progress thread rings it); -1 on the same-host link.
  int wake_fd() const { return wake_fd_; }
  const shm::RingCtl* tx_ctl() const { return tx_; }
  const shm::RingCtl* rx_ctl() const { return rx_; }

 private:
  // Bytes from `from` to `to`, once the peer's cursor `peer` is checked to have
  // moved forward from `last` and both cursors to lie within one ring; -1 (and
  // the connection broken) otherwise.
  int64_t CheckedDistance(wire::Cursor from, wire::Cursor to, wire::Cursor last,
                          wire::Cursor peer);
  // rx.cc
  int64_t
  ValidatedReadable();  // under rx_mu; -1 and Break() on a bad peer cursor
  size_t CopyOut(const iovec* iov, int iovcnt, size_t skip, size_t n,
                 wire::Cursor from, bool drop);
  void Consume(size_t n);
  bool PeerDoneWriting() const;
  static bool PeerAborted(uint32_t peer_flags, uint32_t local_flags);
  static bool PeerDone(uint32_t peer_flags, uint32_t local_flags);
  ssize_t RecvOnce(const iovec* iov, int iovcnt, size_t done, size_t want,
                   int flags, bool first);
  // tx.cc
  int64_t ValidatedWritable();  // under tx_mu
  size_t CopyIn(const iovec* iov, int iovcnt, size_t skip, size_t n,
                wire::Cursor at);
  ssize_t SendOnce(const iovec* iov, int iovcnt, size_t done, size_t total,
                   int flags, bool first);
  int SendError(int flags) const;
  // wait.cc
  uint64_t WatchWord(uint32_t want) const;
  int SleepOnce(uint64_t deadline_ns);
  void Ring();
  void Break();
  bool Has(uint32_t flag) const;

  std::atomic<int> tcp_fd_;
  shm::Side side_;
  ConnState* st_;
  shm::Segment* seg_;
  uint32_t slot_;
  uint32_t ring_bytes_;
  shm::RingCtl* tx_;  // ring we produce into
  shm::RingCtl* rx_;  // ring we consume from
  uint8_t* tx_data_;
  uint8_t* rx_data_;
  RemoteConn* remote_;
  int wake_fd_;
};

// This thread's spin window before sleeping: at most USMC_SPIN_US (default 50
// µs), adapted by SpinOutcome() — whether the last spin was answered before its
// window ran out.
uint64_t SpinBudgetNs();
// answered: the spin saw the event; else waited_ns is how long the whole wait
// took (0: unknown).
void SpinOutcome(bool answered, uint64_t waited_ns = 0);
// One step of a spin-wait. Yields the CPU now and then: on a small machine the
// peer we wait for may be queued on our CPU, and spinning would only delay it.
void SpinPause(unsigned iteration);

}  // namespace usmc::engine

#endif  // USMC_ENGINE_CONN_H_
