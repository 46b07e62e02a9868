// The numbers `usmc stats` shows for one arena (a process and its forks) and
// for the host.
#ifndef USMC_STATS_SUMMARY_H_
#define USMC_STATS_SUMMARY_H_

#include <cstdint>
#include <map>

#include "stats/snapshot.h"

namespace usmc::stats {

struct Summary {
  CounterArray c = CounterArray(kCounterCount, 0);  // since the last reset
  std::map<uint32_t, uint64_t>
      rings_in_use;  // ring bytes -> live accelerated connections
  uint64_t live_shm = 0, live_rdma = 0, live_tcp = 0, live_listeners = 0;
  uint64_t processes = 0;  // arenas summed
  bool counters_compiled = true;

  uint64_t conns_shm() const { return c[kConnShmClient] + c[kConnShmServer]; }
  uint64_t conns_rdma() const {
    return c[kConnRdmaClient] + c[kConnRdmaServer];
  }
  uint64_t conns_tcp() const { return c[kConnTcpClient] + c[kConnTcpServer]; }
  uint64_t conns_total() const {
    return conns_shm() + conns_rdma() + conns_tcp();
  }
  // Send and receive calls per accelerated (SHM or RDMA) connection (smcd
  // stats' "avg requests per SMC conn").
  double AvgRequestsPerConn() const {
    uint64_t n = conns_shm() + conns_rdma();
    return n == 0 ? 0.0
                  : static_cast<double>(c[kSendCalls] + c[kRecvCalls]) /
                        static_cast<double>(n);
  }
};

Summary Summarize(const ArenaSnapshot& a);
void Accumulate(Summary* total, const Summary& s);

}  // namespace usmc::stats

#endif  // USMC_STATS_SUMMARY_H_
