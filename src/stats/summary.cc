#include "stats/summary.h"

namespace usmc::stats {

Summary Summarize(const ArenaSnapshot& a) {
  Summary s;
  s.c = SinceReset(a);
  s.processes = 1;
  s.counters_compiled = a.counters_compiled;
  for (const ConnRecord& r : a.records) {
    if (!r.live) continue;
    if (IsAccelerated(r.mode)) {
      ++(r.mode == kModeRdma ? s.live_rdma : s.live_shm);
      ++s.rings_in_use[r.ring_bytes];
    } else if (r.mode == kModeTcp) {
      ++s.live_tcp;
    } else if (r.mode == kModeListen) {
      ++s.live_listeners;
    }
  }
  return s;
}

void Accumulate(Summary* total, const Summary& s) {
  for (int i = 0; i < kCounterCount; ++i) total->c[i] += s.c[i];
  for (const auto& [bytes, n] : s.rings_in_use) total->rings_in_use[bytes] += n;
  total->live_shm += s.live_shm;
  total->live_rdma += s.live_rdma;
  total->live_tcp += s.live_tcp;
  total->live_listeners += s.live_listeners;
  total->processes += s.processes;
  total->counters_compiled = total->counters_compiled && s.counters_compiled;
}

}  // namespace usmc::stats
