// Recording the decisions of libusmc.so in the arena, for `usmc ss` and `usmc
// stats`.
//
// An accelerated connection's identity goes into its own arena record (the
// Conn's ConnState). A fallback (plain TCP from then on) or an accelerated
// listener gets a record of its own, found again by fd number when the
// application closes that fd (FdClosed). All of this runs at decision time,
// never on the data path. Runs inside the preload: raw system calls only
// (util/sys.h), no stdio.
#ifndef USMC_STATS_RECORD_H_
#define USMC_STATS_RECORD_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>

#include "engine/arena.h"

namespace usmc::stats {

// One TCP connection's outcome. Accelerated (st != nullptr): mode SHM, or RDMA
// with `rdma`; the engine keeps st->id.lgr and st->id.links of an RDMA
// connection current itself (relaxed stores, any time). Fallback: mode TCP
// with `reason` and `origin`.
struct Decision {
  int fd = -1;
  RecordRole role = kRoleClient;
  uint32_t reason = 0;              // 0: accelerated
  Origin origin = kOriginLocal;     // a fallback the peer declined
  engine::ConnState* st = nullptr;  // accelerated: the connection's record
  bool rdma = false;  // accelerated across hosts (RDMA link group), not SHM
  const sockaddr* local = nullptr;
  const sockaddr* peer = nullptr;
};

void RecordDecision(const Decision& d);
void RecordListener(int fd, const sockaddr* local);

// The application closes fd (close, dup2 over it, close_range). Cheap for fds
// without a record.
extern std::atomic<bool> g_fd_records_used;
void FdClosedSlow(int fd);
inline void FdClosed(int fd) {
  if (g_fd_records_used.load(std::memory_order_relaxed)) FdClosedSlow(fd);
}

// Around fork, in the parent: the child will hold every fd record too, so the
// holders are counted before it exists (a parent closing its copy right after
// fork must not free a record the child still uses); -1 if fork failed.
void CountFdRecordHolders(int delta);
// In a fork child: its thread counters start afresh.
void AfterForkChild();

}  // namespace usmc::stats

#endif  // USMC_STATS_RECORD_H_
