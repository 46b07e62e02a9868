// RemoteGroup: this process's link group to one peer process, the local
// segments registered on it, and the connections bound to it (remote.h has
// the scheme). Internal to the engine.
//
// Invariants:
// - `mu` guards every member and every call into `lg`, including Poll, so
//   the handler callbacks below run with `mu` held; lock order is a Conn's
//   tx_mu/rx_mu, or the process's group registry (remote_pump.cc), then `mu`.
// - A RemoteConn is in `conns` (by its local token) from the reservation of
//   its slot until its close completed (Finish) or the reservation was given
//   back (Unreserve); only then is it deleted. Until Bind it only receives:
//   the peer's CDCs are applied to the slot, nothing is sent.
// - The group is deleted by the progress thread once it is down and has no
//   connection left.
#ifndef USMC_ENGINE_REMOTE_GROUP_H_
#define USMC_ENGINE_REMOTE_GROUP_H_

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/arena.h"
#include "engine/remote.h"
#include "link/fabric/link_group.h"
#include "link/shm/segment.h"

namespace usmc::engine {

struct RemoteConn {
  RemoteGroup* g = nullptr;
  ConnState* st = nullptr;  // for `usmc ss`; null once closed
  shm::Segment* seg = nullptr;
  uint32_t slot = 0;
  uint32_t region = 0;  // local region of seg
  uint32_t token = 0;   // local token
  RemoteEnd peer;
  uint64_t peer_rx_off = 0;     // peer's receive ring in its region
  uint64_t peer_fence_off = 0;  // a scratch word in the peer's slot header
  uint32_t ring = 0;
  shm::Side side = shm::Side::kClient;
  shm::RingCtl* tx = nullptr;
  shm::RingCtl* rx = nullptr;
  uint8_t* tx_data = nullptr;
  uint64_t fence_word = 0;  // source of the fence write (inside seg)
  uint64_t written = 0;     // cursor word: data posted up to here
  uint64_t told_prod = 0, told_cons = 0;
  uint32_t told_flags = 0;
  uint16_t seq = 0;
  uint16_t peer_seq = 0;  // last CDC applied (a failover may resend older)
  bool peer_seq_valid = false;
  int dup_fd = -1;     // the TCP connection, open until our close completed
  int wake_fd = -1;    // eventfd: bumped when a local waiter may proceed
  bool dirty = false;  // something could not be posted yet
  bool closing = false;
  bool fence_posted = false;
  bool fence_done = false;
  bool dead = false;   // aborted locally: nothing more is sent
  bool bound = false;  // the handshake named the peer's end
};

class RemoteGroup : public fabric::GroupHandler {
 public:
  enum class Phase { kSetup, kUp, kDown };

  RemoteGroup(fabric::Role role, uint64_t peer_id, uint32_t peer_pid,
              uint64_t nonce);
  ~RemoteGroup() override;

  std::mutex mu;
  std::unique_ptr<fabric::LinkGroup> lg;
  Phase phase = Phase::kSetup;
  fabric::Role role;
  uint64_t peer_id;
  uint32_t peer_pid;
  uint64_t nonce;
  uint32_t id;  // for `usmc ss`
  pid_t owner;
  uint64_t setup_deadline_ns = 0;
  bool offered = false;  // first contact already handled on this side
  struct Seg {
    std::unique_ptr<shm::Segment> seg;
    uint32_t region = 0;
  };
  std::vector<Seg> segs;
  std::unordered_map<uint32_t, RemoteConn*> conns;

  // Under mu.
  bool Reserve(uint32_t ring_bytes, shm::Side side, RemoteSlot* out);
  void Unreserve(RemoteConn* rc);
  bool Bind(RemoteConn* rc, const RemoteEnd& peer, int tcp_fd);
  void Flush(RemoteConn* rc);
  void RetryDirty();
  void Fail(uint32_t reason);  // group down: every connection aborts
  void Closed(RemoteConn* rc);
  // Until everything the connections published reached the peer (exit).
  void Drain(uint64_t deadline_ns);
  void PublishLinks();  // active link count into each record
  void Resync();        // after a failover: every connection re-tells

  // fabric::GroupHandler (called inside lg calls, mu held)
  void OnWriteComplete(const fabric::WriteRequest& w) override;
  void OnRemoteData(uint8_t, uint64_t) override {}
  void OnCdc(uint8_t link_id, const fabric::CdcMsg& m) override;
  size_t OnReissue(const fabric::WriteRequest& w) override;
  void OnLinkUp(uint8_t link_id) override;
  void OnLinkDown(uint8_t link_id, uint32_t reason) override;
  void OnGroupDown(uint32_t reason) override;

 private:
  bool PostData(RemoteConn* rc);
  bool PostCdc(RemoteConn* rc);
  void PostFence(RemoteConn* rc);
  void Apply(RemoteConn* rc, const fabric::CdcMsg& m);
  void Abort(RemoteConn* rc);
  void MaybeFinish(RemoteConn* rc);
  void Finish(RemoteConn* rc);
  RemoteConn* Find(uint32_t token) const;
};

// remote_pump.cc
void StartPump();  // idempotent
void KickPump();   // a group changed phase: look again
uint64_t FabricSetupTimeoutNs();

}  // namespace usmc::engine

#endif  // USMC_ENGINE_REMOTE_GROUP_H_
