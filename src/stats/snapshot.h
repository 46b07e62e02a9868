// Reading the arenas of the processes running under usmc (the CLI side of
// src/stats/layout.h).
//
// Every /proc/PID/fd/N whose link starts with "/memfd:usmc-arena" is an arena;
// opening it needs the same access as ptrace-reading the process, so a user
// finds their own processes and root finds all. Forks share their parent's
// arena (one memfd): it is read once and lists every pid holding it. A record
// is "live" when one of those pids still holds its socket (socket:[inode]);
// records a process could not release (killed mid-close, exec'd away) are kept
// out that way, and a process that is gone takes its arena with it.
#ifndef USMC_STATS_SNAPSHOT_H_
#define USMC_STATS_SNAPSHOT_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "stats/layout.h"

namespace usmc::stats {

// One record, copied out of the arena.
struct ConnRecord {
  uint32_t mode = 0;
  uint8_t role = 0;
  uint8_t origin = 0;
  uint32_t reason = 0;
  uint32_t ring_bytes = 0;
  int32_t fd = -1;
  int32_t pid = 0;
  uint64_t inode = 0;
  uint64_t created_ns = 0;
  Endpoint local{};
  Endpoint peer{};
  uint32_t flags = 0;  // engine::ConnFlags
  int32_t holders = 0;
  uint64_t tx_prod = 0, tx_peer_cons = 0, rx_cons = 0,
           rx_peer_prod = 0;  // wire::Cursor words
  uint64_t bytes_out = 0, bytes_in = 0;
  uint64_t send_calls = 0, recv_calls = 0, ring_full_local = 0,
           ring_full_peer = 0;
  uint32_t lgr = 0;    // RDMA: link group id, 0 = none
  uint32_t links = 0;  // RDMA: active links of the group
  bool live = true;
};

using CounterArray = std::vector<uint64_t>;  // kNumCounters values

struct ArenaSnapshot {
  std::vector<pid_t> pids;  // processes holding the arena, in scan order
  pid_t creator = 0;
  std::string program;  // comm of the creator (at creation)
  uid_t uid = 0;
  uint64_t start_ns = 0;
  bool counters_compiled = true;
  std::vector<ConnRecord> records;
  CounterArray totals;    // since the process started
  CounterArray baseline;  // at the last `usmc stats reset` (zeros if none)
  uint64_t reset_ns = 0;
  // Where the arena was found, for `usmc stats reset`.
  pid_t open_pid = 0;
  int open_fd = -1;
};

// Counters since the last reset (totals - baseline, never below zero).
CounterArray SinceReset(const ArenaSnapshot& a);

// All arenas the caller may read. `only_pid` > 0: just the arena that process
// holds. Errors are per process and silent (a process may exit while we look).
std::vector<ArenaSnapshot> ScanArenas(pid_t only_pid);

// Stores the current totals as the arena's baseline. False with a message on
// failure.
bool ResetArena(const ArenaSnapshot& a, std::string* error);

}  // namespace usmc::stats

#endif  // USMC_STATS_SNAPSHOT_H_
