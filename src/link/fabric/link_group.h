// LinkGroup: up to kMaxLinks FabricLinks to one peer host, one per local /
// peer interface pair (SMC-R's link group).
//
// - The first link is set up with addresses and keys exchanged out of band
//   (Offer/Accept on the server, Answer/Join on the client; EstablishOverFd
//   does both over a TCP socket). The server then adds the other link with
//   LLC ADD_LINK over the first one, and re-adds a lost link the same way
//   every readd_ms until its interface works again.
// - Every region is registered on every link and announced per link with
//   CONFIRM_RKEY, so any link can write into any region.
// - A link is declared dead on a completion or connection error, on the
//   peer's DELETE_LINK, or when it has been silent for keepalive_ms and then
//   did not answer a TEST_LINK within probe_wait_ms. Its writes that did not
//   complete are posted again, in order and at the same remote offsets, on a
//   surviving link (after the handler trimmed what the peer already
//   consumed); its pending CDC and rkey messages are sent again there. With
//   no surviving link the group is down.
// - Single-threaded: one thread calls everything, including Poll/Wait, and
//   every handler callback runs inside one of these calls. A handler may
//   call Write/SendCdc but must not destroy the group.
#ifndef USMC_LINK_FABRIC_LINK_GROUP_H_
#define USMC_LINK_FABRIC_LINK_GROUP_H_

#include <poll.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "link/fabric/fabric_link.h"
#include "link/fabric/link_address.h"
#include "link/fabric/llc.h"
#include "link/fabric/provider.h"

namespace usmc::fabric {

enum class Role { kServer, kClient };

struct GroupOptions {
  Role role = Role::kClient;
  // Local interface address (IP literal) of link i; "" = no link i.
  std::array<std::string, kMaxLinks> local_addrs;
  std::string provider;        // "" = USMC_FABRIC_PROVIDER / default order
  bool wait_fd = true;         // FI_WAIT_FD queues, so Wait() can sleep
  uint32_t keepalive_ms = 0;   // 0: USMC_FABRIC_KEEPALIVE_MS, else 30000
  uint32_t probe_wait_ms = 0;  // 0: USMC_FABRIC_PROBE_WAIT_MS, else
                               //    min(keepalive, 2000)
  uint32_t readd_ms = 0;       // 0: USMC_FABRIC_READD_MS, else 1000
  uint32_t connect_timeout_ms = 3000;
};

struct GroupCounters {
  uint64_t link_failures = 0;  // an active link declared dead
  uint64_t failovers = 0;      // ... while another link took over
  uint64_t links_added = 0;    // links that became active, the first included
  uint64_t add_failures = 0;   // link set-ups that did not complete
  uint64_t writes = 0;
  uint64_t write_bytes = 0;
  uint64_t writes_completed = 0;
  uint64_t reissued_writes = 0;
  uint64_t reissued_bytes = 0;
  uint64_t remote_data = 0;  // remote CQ data received
  uint64_t ctrl_sent = 0;
  uint64_t ctrl_received = 0;
  uint64_t keepalives_sent = 0;
  uint64_t protocol_errors = 0;
  uint64_t bounds_rejects = 0;  // writes refused: region or range unknown
  uint64_t last_dead_ns = 0;    // CLOCK_MONOTONIC of the last link death
};

class GroupHandler {
 public:
  virtual ~GroupHandler() = default;
  // Exactly once per write (cookie): when its data is at the peer, or when
  // OnReissue dropped it. After a failover `w` may be the trimmed reissue.
  virtual void OnWriteComplete(const WriteRequest& w) = 0;
  virtual void OnRemoteData(uint8_t link_id, uint64_t cq_data) = 0;
  virtual void OnCdc(uint8_t link_id, const CdcMsg& m) = 0;
  // A write that did not complete on a dead link: how many leading bytes the
  // peer has already consumed and must not be written again (>= w.len drops
  // it). SMC's smc_switch_cursor: resume from the last confirmed position.
  virtual size_t OnReissue(const WriteRequest& /*w*/) { return 0; }
  virtual void OnLinkUp(uint8_t /*link_id*/) {}
  virtual void OnLinkDown(uint8_t /*link_id*/, uint32_t /*reason*/) {}
  // No link left: every connection on the group fails (ECONNABORTED).
  virtual void OnGroupDown(uint32_t reason) = 0;
};

class LinkGroup : private LinkSink {
 public:
  static std::unique_ptr<LinkGroup> Create(const GroupOptions& opt,
                                           GroupHandler* handler,
                                           std::string* err);
  ~LinkGroup() override;

  // Registers [addr, addr+len) on every link, now and later; `remote`
  // regions are announced to the peer as write targets. -errno or 0.
  int RegisterRegion(void* addr, size_t len, bool remote, uint32_t* id);
  void UnregisterRegion(uint32_t id);
  // The peer acknowledged the region's key on every active link.
  bool RegionConfirmed(uint32_t id) const;
  // The peer announced its region `id` on link i (writes to it may go there).
  bool PeerRegionOnLink(uint32_t id, int i) const;

  // Server: listens for the first link; *out describes it and the first
  // remote region. Then Accept() records the client's answer and waits
  // until the link is confirmed.
  bool Offer(LinkAddress* out, std::string* err);
  bool Accept(const LinkAddress& answer, int timeout_ms, std::string* err);
  // Client: opens the first link toward `offer`; *out goes back to the
  // server. Join() connects and waits until the link is confirmed.
  bool Answer(const LinkAddress& offer, LinkAddress* out, std::string* err);
  bool Join(int timeout_ms, std::string* err);
  // Both steps over a connected stream socket (raw syscalls), by role.
  bool EstablishOverFd(int fd, int timeout_ms, std::string* err);

  // 0, -EAGAIN (no room now: poll and retry), -EINVAL (unknown region,
  // range outside it), -ECONNABORTED (group down). Writes (and CDCs) are
  // ordered only within one link: everything of one stream must use the
  // same link_hint, normally -1 (the primary link, which changes only on
  // failover, after the re-issued writes).
  int Write(const WriteRequest& w);
  // A CDC message on the given or the primary link, after every write
  // posted there before it (FI_ORDER_SAW). 0, -EAGAIN or -ECONNABORTED.
  int SendCdc(const CdcMsg& m, int link_hint = -1);

  // Processes completions, events and timers; returns completions seen.
  int Poll(int max_per_link = 64);
  // Sleeps on the queues' fds until something arrives, a timer is due or
  // max_ms passes, then polls. Busy-polls once if the provider cannot sleep.
  int Wait(int max_ms);
  // For callers that sleep themselves: the fds to poll for POLLIN, whether
  // sleeping is safe now (fi_trywait), and when the next timer is due.
  int WaitFds(pollfd* fds, int max) const;
  bool PrepareSleep();
  int NextTimeoutMs() const;

  // Takes link i out of the group as an operator would (SMC's OP_INIT_TERM):
  // the peer is told, and traffic fails over as if the link had died.
  void DeleteLink(int i, uint32_t reason = kReasonOpInitTerm);

  int ActiveLinks() const;
  // Nothing posted or queued is still on its way (every write and control
  // message completed): what the owner sent is at the peer.
  bool Quiet() const;
  bool LinkActive(int i) const;
  int primary() const { return primary_; }
  bool down() const { return down_; }
  const std::string& provider() const { return provider_; }
  const GroupCounters& counters() const { return counters_; }
  uint32_t keepalive_ms() const { return keepalive_ms_; }
  uint32_t probe_wait_ms() const { return probe_wait_ms_; }

 private:
  enum class Phase { kEmpty, kSetup, kConfirming, kActive };
  struct Slot {
    std::unique_ptr<FabricLink> link;
    Phase phase = Phase::kEmpty;
    uint64_t nonce = 0;        // carried in the connect request
    uint64_t deadline_ns = 0;  // set-up must finish by then
    uint64_t probe_ns = 0;     // TEST_LINK outstanding since (0 = none)
    uint32_t down_reason = 0;  // death requested, handled after polling
    bool down_notify = false;
  };
  struct LocalRegion {
    void* addr = nullptr;
    size_t len = 0;
    bool remote = false;
    bool live = false;
    uint8_t confirmed = 0;  // link bits the peer acknowledged
  };
  struct RemoteRegion {
    uint64_t length = 0;
    std::array<RemoteKey, kMaxLinks> keys{};
    uint8_t mask = 0;
  };

  LinkGroup(const GroupOptions& opt, GroupHandler* handler);

  // link_group.cc: set-up and regions
  bool OpenSlot(int i, const EpAddr* peer, std::string* err);
  bool RegisterAll(FabricLink& link, std::string* err);
  void AnnounceRegions(int i);
  void Activate(int i);
  bool FillAddress(int i, LinkAddress* out, std::string* err) const;
  bool WaitActive(int i, int timeout_ms, std::string* err);
  bool LearnRegion(const LinkAddress& a);
  // group_data.cc: data path, failover, timers
  int PickLink(const WriteRequest& w, const RemoteRegion& rr) const;
  int PostOne(const WriteRequest& w);
  bool DeathPending() const;
  bool LocalRangeOk(const WriteRequest& w) const;
  void DrainBacklog();
  void RequestDown(int i, uint32_t reason, bool notify);
  void ProcessDeaths();
  void TakeDown(int i);
  void Failover(int dead, int survivor, std::vector<WriteRequest> writes,
                std::vector<CtrlBytes> ctrl);
  void GroupDown(uint32_t reason);
  void Timers(uint64_t now);
  void Keepalive(int i, uint64_t now);
  void StartAddLink(int i, uint64_t now);
  // group_llc.cc: control messages
  int SendLlc(const LlcMsg& m, int via);
  int AnyActive(int except = -1) const;
  void HandleLlc(FabricLink& link, const LlcMsg& m);
  void OnConfirmLink(FabricLink& link, const LlcMsg& m);
  void OnAddLink(FabricLink& link, const LlcMsg& m);
  void OnDeleteLink(FabricLink& link, const LlcMsg& m);
  void OnConfirmRkey(FabricLink& link, const LlcMsg& m);
  void ProtocolError(FabricLink& link, const char* why);

  // LinkSink
  void OnWriteDone(FabricLink& link, const WriteRequest& w) override;
  void OnRemoteData(FabricLink& link, uint64_t data) override;
  void OnControl(FabricLink& link, std::span<const uint8_t> msg) override;
  bool OnConnReq(FabricLink& link, std::span<const uint8_t> cm) override;
  void OnConnected(FabricLink& link) override;
  void OnLinkError(FabricLink& link, int err, const std::string& why) override;

  GroupOptions opt_;
  GroupHandler* h_;
  ProviderPolicy policy_;
  std::string provider_;
  uint64_t token_ = 0;
  uint32_t keepalive_ms_ = 30000;
  uint32_t probe_wait_ms_ = 2000;
  uint32_t readd_ms_ = 1000;
  std::array<Slot, kMaxLinks> slots_;
  std::array<bool, kMaxLinks> peer_lacks_{};  // peer has no interface i
  std::vector<LocalRegion> regions_;
  std::unordered_map<uint32_t, RemoteRegion> remote_;
  std::deque<WriteRequest> backlog_;
  // Control messages of a dead link, sent again only after backlog_: a CDC
  // must never overtake the re-issued writes whose data it announces.
  std::deque<CtrlBytes> ctrl_backlog_;
  int primary_ = -1;
  bool down_ = false;
  bool eq_due_ = true;
  uint64_t next_slow_ns_ = 0;
  uint64_t next_add_ns_ = 0;
  GroupCounters counters_;
};

// Length-prefixed exchange of one LinkAddress over a stream socket, with
// raw syscalls and a deadline. Used by EstablishOverFd.
bool SendLinkAddress(int fd, const LinkAddress& a, int timeout_ms,
                     std::string* err);
bool RecvLinkAddress(int fd, LinkAddress* a, int timeout_ms, std::string* err);

}  // namespace usmc::fabric

#endif  // USMC_LINK_FABRIC_LINK_GROUP_H_
