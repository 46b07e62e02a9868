// Links: the same-host link groups of this process, one per peer process
// (SMC-D's link group).
//
// Server role: for each client station (pid, nonce) a link owns the segments
// this process created for that client and the station connection they were
// offered on; a new connection takes a free slot of a segment with the right
// ring size, and a new segment is offered first when none has room. Client
// role: the segments peers offered to this process's station, found by (server
// pid, link nonce, segment id) — the identity the CLC Accept carries.
//
// Invariant: a Segment is never unmapped while a Conn may point into it
// (segments live as long as the process; their freed slots hold no memory).
#ifndef USMC_ENGINE_LINKS_H_
#define USMC_ENGINE_LINKS_H_

#include <sys/types.h>

#include <cstdint>

#include "link/shm/segment.h"
#include "link/shm/station.h"

namespace usmc::engine {

struct SlotGrant {
  shm::Segment* seg = nullptr;
  uint32_t slot = 0;
  uint64_t link_nonce = 0;
  bool first_contact = false;
};

// Server role. False if the client's station cannot be reached or memory is
// exhausted.
bool GrantSlot(pid_t client_pid, uint64_t client_nonce, uint32_t ring_bytes,
               uint32_t token, SlotGrant* out);

// Client role: the segment an Accept names; waits up to timeout_ms for its
// offer to be read.
shm::Segment* FindOfferedSegment(pid_t server_pid, uint64_t link_nonce,
                                 uint32_t segment_id, int timeout_ms);

// This process's station (opened on first use; re-opened in a forked child).
// Null if it cannot open.
shm::Station* LocalStation();

// After fork, in the child: links made by the parent stay usable for inherited
// connections, but new connections must get links of their own (they carry the
// child's pid).
void LinksAfterForkChild();

// Counts for `usmc ss`/stats.
uint32_t LinkCount();

}  // namespace usmc::engine

#endif  // USMC_ENGINE_LINKS_H_
