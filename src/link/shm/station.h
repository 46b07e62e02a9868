// A process's station: the abstract unix socket through which a server process
// hands this (client) process a segment memfd — the SMC-D "device" a Proposal
// names.
//
// Name: "\0usmc.S.<pid>.<nonce as 16 hex digits>", SOCK_SEQPACKET, listening,
// CLOEXEC, non-blocking. A server creating a link connect()s to it and sends
// one message: an Offer {magic "USMCLNK1", link_nonce, segment_id,
// segment_bytes} with the memfd as SCM_RIGHTS. Further segments for the same
// link travel later over the same connection. Connect + send never block on the
// client: the kernel queues them on the embryonic connection, so an Offer is
// always queued before the Accept that names it.
//
// The client takes an Offer only if its link nonce matches the Accept and
// SO_PEERCRED.pid of the connection equals the Accept's server pid, so a third
// process cannot plant memory. Connections from other pids are kept (bounded,
// least recently used evicted) and read only when their own Accept is
// processed: several servers may be mid-handshake with one client. Malformed
// messages (size, magic, not exactly one fd, fd not a memfd, memfd smaller than
// segment_bytes) are dropped and their fds closed. ConnectStation checks
// SO_PEERCRED.pid of the station against `pid` too.
#ifndef USMC_LINK_SHM_STATION_H_
#define USMC_LINK_SHM_STATION_H_

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace usmc::shm {

struct Offer {
  uint64_t link_nonce = 0;
  uint32_t segment_id = 0;
  uint64_t segment_bytes = 0;
  int memfd = -1;  // owned by the receiver
  // The station connection it came on, or -1. Owned by the Station (which keeps
  // it for later segments of the link): do not close.
  int conn_fd = -1;
};

class Station {
 public:
  static constexpr int kMaxConns =
      128;  // accepted connections kept (one per server process/link)
  static constexpr int kMaxStash = 32;  // offers received but not yet taken

  // Binds and listens. pid/nonce make the name; nonce is random (getrandom).
  bool Open();
  void Close();
  bool is_open() const { return listen_fd_ >= 0; }
  int fd() const { return listen_fd_; }
  pid_t pid() const { return pid_; }
  uint64_t nonce() const { return nonce_; }

  // Client side: finds the Offer for (link_nonce, segment_id) sent by
  // `server_pid`. Looks at offers already received on known connections first,
  // then accepts pending connections. Non-blocking except for waiting up to
  // `timeout_ms` for a message that must already be in flight. timeout_ms <= 0:
  // no waiting. Thread-safe. On failure errno is EAGAIN (nothing waited for),
  // ETIMEDOUT or EBADF (not open).
  bool TakeOffer(uint64_t link_nonce, uint32_t segment_id, pid_t server_pid,
                 int timeout_ms, Offer* out);

  // Closes connections whose peer hung up (offers still queued on them are
  // discarded). Returns how many were closed. Thread-safe.
  int DropHungUp();

  // In a forked child: closes this process's copies of the parent's station fds
  // (the parent's station is not disturbed) and forgets everything, also a
  // mutex a parent thread held at fork time. The child must Open() its own
  // station: the name carries the pid.
  void ForgetAfterFork();

 private:
  struct Conn {
    int fd = -1;
    pid_t pid = 0;
    uint64_t last_use = 0;
  };
  struct Stashed {
    Offer offer;  // offer.memfd < 0: free slot
    pid_t pid = 0;
    int conn = -1;  // index into conns_, -1 once that connection is gone
    uint64_t seq = 0;
  };

  bool TakeStashedLocked(uint64_t link_nonce, uint32_t segment_id,
                         pid_t server_pid, Offer* out);
  void AcceptPendingLocked();
  int AddConnLocked(int fd, pid_t pid);
  void DrainLocked(int conn);
  void StashLocked(const Offer& offer, int conn);
  void DropConnLocked(int conn);
  int DropHungUpLocked(bool with_queued);
  void CloseLocked();

  std::mutex mu_;
  int listen_fd_ = -1;
  pid_t pid_ = 0;
  uint64_t nonce_ = 0;
  uint64_t clock_ = 0;  // orders last_use and seq
  Conn conns_[kMaxConns];
  Stashed stash_[kMaxStash];
};

// Server side: connects to the station (pid, nonce) and sends an Offer with
// `memfd`. Returns the connected fd (CLOEXEC) to reuse for later segments of
// the same link, or -1 (errno set).
int ConnectStation(pid_t pid, uint64_t nonce);
bool SendOffer(int conn_fd, uint64_t link_nonce, uint32_t segment_id,
               uint64_t segment_bytes, int memfd);

// Station name for (pid, nonce), without the leading NUL.
std::string StationName(pid_t pid, uint64_t nonce);

}  // namespace usmc::shm

#endif  // USMC_LINK_SHM_STATION_H_
