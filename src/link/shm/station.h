// A process's station: the abstract unix socket through which a server process hands this (client)
// process a segment memfd — the SMC-D "device" a Proposal names.
//
// Name: "\0usmc.S.<pid>.<nonce as 16 hex digits>", SOCK_SEQPACKET, listening, CLOEXEC, non-blocking.
// A server creating a link connect()s to it and sends one message: an Offer {magic "USMCLNK1",
// link_nonce, segment_id, segment_bytes} with the memfd as SCM_RIGHTS. Further segments for the same
// link travel later over the same connection. Connect + send never block on the client: the kernel
// queues them on the embryonic connection, so an Offer is always queued before the Accept that names it.
//
// The client takes an Offer only if its link nonce matches the Accept and SO_PEERCRED.pid of the
// connection equals the Accept's server pid; any other queued connection is dropped, so a third process
// cannot plant memory.
#ifndef USMC_LINK_SHM_STATION_H_
#define USMC_LINK_SHM_STATION_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace usmc::shm {

struct Offer {
  uint64_t link_nonce = 0;
  uint32_t segment_id = 0;
  uint64_t segment_bytes = 0;
  int memfd = -1;    // owned by the receiver
  int conn_fd = -1;  // the station connection it came on (kept for later segments), owned
};

class Station {
 public:
  // Binds and listens. pid/nonce make the name; nonce is random (getrandom).
  bool Open();
  void Close();
  bool is_open() const { return listen_fd_ >= 0; }
  int fd() const { return listen_fd_; }
  pid_t pid() const { return pid_; }
  uint64_t nonce() const { return nonce_; }

  // Client side: finds the Offer for (link_nonce, segment_id) sent by `server_pid`. Looks at offers
  // already received on known connections first, then accepts pending connections. Non-blocking
  // except for waiting up to `timeout_ms` for a message that must already be in flight.
  bool TakeOffer(uint64_t link_nonce, uint32_t segment_id, pid_t server_pid, int timeout_ms,
                 Offer* out);

 private:
  int listen_fd_ = -1;
  pid_t pid_ = 0;
  uint64_t nonce_ = 0;
};

// Server side: connects to the station (pid, nonce) and sends an Offer with `memfd`. Returns the
// connected fd (CLOEXEC) to reuse for later segments of the same link, or -1 (errno set).
int ConnectStation(pid_t pid, uint64_t nonce);
bool SendOffer(int conn_fd, uint64_t link_nonce, uint32_t segment_id, uint64_t segment_bytes,
               int memfd);

// Station name for (pid, nonce), without the leading NUL.
std::string StationName(pid_t pid, uint64_t nonce);

}  // namespace usmc::shm

#endif  // USMC_LINK_SHM_STATION_H_
