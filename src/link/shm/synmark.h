// The SYN mark: how a usmc client tells a usmc server, inside the TCP handshake
// and without privileges, that a CLC Proposal will follow.
//
// The client sets IP_TOS (IPv4, also on v4-mapped IPv6 sockets) or IPV6_TCLASS
// to kSynMarkTos before connect() and restores its previous value once the
// connection is established. The server listener has TCP_SAVE_SYN on; at accept
// time TCP_SAVED_SYN returns the SYN's IP+TCP headers, whose TOS / traffic
// class tells the mark. kSynMarkTos is DSCP 43 (0b101011, RFC 2474 pool 3,
// experimental/local use), ECN bits zero.
#ifndef USMC_LINK_SHM_SYNMARK_H_
#define USMC_LINK_SHM_SYNMARK_H_

#include <cstdint>

namespace usmc::shm {

inline constexpr uint8_t kSynMarkTos = 0xAC;

struct SavedTos {
  int level = 0;    // SOL_IP or SOL_IPV6
  int optname = 0;  // IP_TOS or IPV6_TCLASS
  int value = 0;    // value to restore
  // AF_INET6 sockets also get IP_TOS (used if the destination is v4-mapped),
  // when the kernel allows.
  bool has_ip_tos = false;
  int ip_tos = 0;  // IP_TOS value to restore
};

// Client: marks the SYN of the not yet connected TCP socket `fd`. False (errno
// set) if impossible.
bool MarkSyn(int fd, SavedTos* saved);
// Client: restores the value MarkSyn saved (after connect completed or failed).
// Not before the handshake completed: a retransmitted SYN (lost, or dropped by
// a full accept queue) is built from the socket's current TOS, so restoring on
// EINPROGRESS could let the server save an unmarked SYN.
void UnmarkSyn(int fd, const SavedTos& saved);

// Server: enables TCP_SAVE_SYN on a listener.
bool EnableSavedSyn(int listen_fd);

enum class SynMark { kMarked, kUnmarked, kUnknown };
// Server: reads (and thereby frees) the saved SYN of an accepted socket.
// kUnknown if none was saved (SYN cookies, or the listener had no
// TCP_SAVE_SYN).
SynMark ReadSynMark(int accepted_fd);

// Pure parser behind ReadSynMark, for tests and fuzzing: `hdr` = IPv4 or IPv6
// header followed by TCP.
SynMark ParseSavedSyn(const uint8_t* hdr, unsigned len);

}  // namespace usmc::shm

#endif  // USMC_LINK_SHM_SYNMARK_H_
