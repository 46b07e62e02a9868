// The arena: per-connection state shared by a process and its forks, never by the peer.
//
// A connection may be used by several threads and, after fork, by several processes at once (legal
// TCP). What they must agree on — the authoritative cursors, the locks that serialize senders and
// receivers, the holder count — lives here, in MAP_SHARED anonymous memory that fork inherits but that
// no other process can map. The peer can scribble over the segment; it cannot reach the arena.
#ifndef USMC_ENGINE_ARENA_H_
#define USMC_ENGINE_ARENA_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace usmc::engine {

// Local flags of a connection (ConnState::flags).
enum ConnFlags : uint32_t {
  kShutRd = 1u << 0,     // shutdown(SHUT_RD) locally
  kShutWr = 1u << 1,     // shutdown(SHUT_WR) locally
  kPeerFin = 1u << 2,    // TCP FIN from the peer seen
  kPeerReset = 1u << 3,  // TCP RST / abort from the peer
  kBroken = 1u << 4,     // peer violated the protocol; connection reset
  kNonBlock = 1u << 5,   // O_NONBLOCK on the open file description
};

struct ConnState {
  std::atomic<uint32_t> in_use;
  std::atomic<uint32_t> flags;
  std::atomic<int32_t> holders;  // processes holding the connection
  std::atomic<int32_t> error;    // pending socket error (SO_ERROR), 0 if none
  pthread_mutex_t tx_mu;         // robust, process-shared
  pthread_mutex_t rx_mu;
  // Cursor words. Written under the lock of their direction; read without it for readiness.
  std::atomic<uint64_t> tx_prod;       // our producer cursor (authoritative)
  std::atomic<uint64_t> tx_peer_cons;  // peer's consumer cursor, last validated value
  std::atomic<uint64_t> rx_cons;       // our consumer cursor (authoritative)
  std::atomic<uint64_t> rx_peer_prod;  // peer's producer cursor, last validated value
  std::atomic<int32_t> sleepers;       // holders armed to sleep on this connection
  std::atomic<uint64_t> bytes_in;
  std::atomic<uint64_t> bytes_out;
};

class Arena {
 public:
  static Arena& Get();

  // A zeroed record with initialized locks and holders = 1, or nullptr when full.
  ConnState* Alloc();
  void Free(ConnState* st);

 private:
  Arena();
  ConnState* records_ = nullptr;
  std::atomic<uint64_t>* used_ = nullptr;  // bitmap, in the shared mapping too
  uint32_t capacity_ = 0;
};

// Locks a robust mutex; recovers it if a holder died inside (the cursor publish is the commit point,
// so a half-done copy is harmless).
class ArenaLock {
 public:
  explicit ArenaLock(pthread_mutex_t* mu);
  ~ArenaLock();
  ArenaLock(const ArenaLock&) = delete;
  ArenaLock& operator=(const ArenaLock&) = delete;

 private:
  pthread_mutex_t* mu_;
};

}  // namespace usmc::engine

#endif  // USMC_ENGINE_ARENA_H_
