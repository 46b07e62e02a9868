// Counter updates on the data path. Each counter has exactly one writer at a
// time — the holder of a connection's tx or rx lock, or the thread owning a
// ThreadBlock — so an update is a relaxed load and store (two plain
// instructions), never a locked read-modify-write. Readers in other processes
// may see a value one update late, which is fine for statistics.
//
// Built with -DUSMC_COUNTERS=OFF (USMC_NO_COUNTERS=1), USMC_COUNT() compiles to
// nothing; the connection bookkeeping that `usmc ss` needs (bytes, cursors,
// identity) stays.
#ifndef USMC_STATS_COUNTERS_H_
#define USMC_STATS_COUNTERS_H_

#include <atomic>
#include <cstdint>

namespace usmc::stats {

inline void Add(std::atomic<uint64_t>& c, uint64_t n) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void Inc(std::atomic<uint64_t>& c) { Add(c, 1); }

#ifdef USMC_NO_COUNTERS
inline constexpr bool kCountersCompiled = false;
#else
inline constexpr bool kCountersCompiled = true;
#endif

}  // namespace usmc::stats

#ifdef USMC_NO_COUNTERS
#define USMC_COUNT(...) \
  do {                  \
  } while (0)
#else
#define USMC_COUNT(...) \
  do {                  \
    __VA_ARGS__;        \
  } while (0)
#endif

#endif  // USMC_STATS_COUNTERS_H_
