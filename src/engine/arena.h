// The arena: per-connection state shared by a process and its forks, never by
// the peer.
//
// A connection may be used by several threads and, after fork, by several
// processes at once (legal TCP). What they must agree on — the authoritative
// cursors, the locks that serialize senders and receivers, the holder count —
// lives here, in a memfd ("usmc-arena", close-on-exec) mapped MAP_SHARED, which
// fork inherits and the peer never receives. The peer can scribble over the
// segment; it cannot reach the arena.
//
// The same memfd is what `usmc ss` and `usmc stats` read (through
// /proc/PID/fd): a header naming the process, its counters, per-thread counter
// blocks and the records of its connections, fallbacks and listeners
// (src/stats/layout.h). Nothing in it is a pointer, so it reads the same in
// every process. It is created on first use, so a program that never touches a
// TCP socket has none.
#ifndef USMC_ENGINE_ARENA_H_
#define USMC_ENGINE_ARENA_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "stats/counters.h"
#include "stats/layout.h"

namespace usmc::engine {

// Local flags of a connection (ConnState::flags).
enum ConnFlags : uint32_t {
  kShutRd = 1u << 0,     // shutdown(SHUT_RD) locally
  kShutWr = 1u << 1,     // shutdown(SHUT_WR) locally
  kPeerFin = 1u << 2,    // TCP FIN from the peer seen
  kPeerReset = 1u << 3,  // TCP RST / abort from the peer
  kBroken = 1u << 4,     // peer violated the protocol; connection reset
  kNonBlock = 1u << 5,   // O_NONBLOCK on the open file description
  kConfirmed =
      1u
      << 6,  // the server side read the Confirm (in some process of the family)
};

// One record: an accelerated connection (with its cursors and locks), or —
// identity only — a fallback or a listener. Each direction's words share a
// cache line written by that direction's lock holder only.
struct ConnState {
  std::atomic<uint32_t> in_use;
  std::atomic<uint32_t> flags;
  std::atomic<int32_t> holders;  // processes holding the connection
  std::atomic<int32_t> error;    // pending socket error (SO_ERROR), 0 if none
  std::atomic<uint32_t> gen;     // bumped by Alloc and Free: readers detect a
                                 // record reused under them
  // Several threads (or forked processes) blocked on one connection: one of
  // them polls the TCP socket and drains its doorbells, the others sleep on a
  // futex here and are woken when the poller wakes.
  std::atomic<int32_t>
      poller;  // tid of the thread polling the TCP socket, 0 if none
  std::atomic<uint32_t>
      wake_gen;  // futex word: bumped each time the poller wakes
  std::atomic<int32_t> futex_waiters;  // threads sleeping on wake_gen
  pthread_mutex_t tx_mu;               // robust, process-shared
  pthread_mutex_t rx_mu;
  // Cursor words. Written under the lock of their direction; read without it
  // for readiness.
  alignas(
      64) std::atomic<uint64_t> tx_prod;  // our producer cursor (authoritative)
  std::atomic<uint64_t>
      tx_peer_cons;  // peer's consumer cursor, last validated value
  std::atomic<uint64_t> bytes_out;
  stats::DirCounters tx;
  alignas(
      64) std::atomic<uint64_t> rx_cons;  // our consumer cursor (authoritative)
  std::atomic<uint64_t>
      rx_peer_prod;  // peer's producer cursor, last validated value
  std::atomic<uint64_t> bytes_in;
  stats::DirCounters rx;
  alignas(64) stats::ConnIdentity id;
};

class Arena {
 public:
  static Arena& Get();

  // A zeroed record with initialized locks and holders = 1, or nullptr when
  // full.
  ConnState* Alloc();
  // Frees a record; an accelerated connection's counters are added to the
  // process totals first.
  void Free(ConnState* st);

  // Control-path counters (connections, fallbacks): an atomic add, never on the
  // data path.
  void Count(stats::Counter c, uint64_t n = 1);
  stats::ThreadBlock* NewThreadBlock();  // nullptr when none is left
  void RetireThreadBlock(stats::ThreadBlock* b);

  int fd() const { return fd_; }
  // Where a record sits in the memfd (carried across exec, see
  // preload/inherit.h).
  uint64_t OffsetOf(const ConnState* st) const {
    return static_cast<uint64_t>(reinterpret_cast<const uint8_t*>(st) -
                                 reinterpret_cast<const uint8_t*>(header_));
  }

 private:
  Arena();
  bool Map(uint64_t total_bytes);
  void InitHeader();

  stats::ArenaHeader* header_ = nullptr;
  stats::ProcCounters* counters_ = nullptr;
  ConnState* records_ = nullptr;
  std::atomic<uint64_t>* used_ =
      nullptr;  // record bitmap, in the shared mapping too
  stats::ThreadBlock* threads_ = nullptr;
  std::atomic<uint64_t>* threads_used_ = nullptr;
  uint32_t capacity_ = 0;
  int fd_ = -1;
};

// This thread's counter block (allocated on first use; folded into the process
// totals and freed when the thread exits).
extern __thread stats::ThreadBlock* t_thread_counters
    __attribute__((tls_model("initial-exec")));
stats::ThreadBlock* ThreadCountersSlow();

inline void CountThread([[maybe_unused]] stats::ThreadCounter c,
                        [[maybe_unused]] uint64_t n = 1) {
  USMC_COUNT({
    stats::ThreadBlock* b = t_thread_counters;
    if (__builtin_expect(b == nullptr, 0)) b = ThreadCountersSlow();
    stats::Add(b->v[c], n);
  });
}

// In a fork child: the forking thread's block belongs to the parent's thread.
void ArenaAfterForkChild();

// Locks a robust mutex; recovers it if a holder died inside (the cursor publish
// is the commit point, so a half-done copy is harmless).
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
