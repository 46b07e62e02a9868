// FabricLink: one libfabric FI_EP_MSG endpoint between two hosts (SMC-R's
// link: one RC QP between two ports), with its own fabric, domain, event
// queue and completion queue, the memory regions registered on its domain,
// a pool of posted receives and of send buffers for 44-byte control messages.
//
// Invariants:
// - A write stays "pending" from the post until its completion. With
//   FI_DELIVERY_COMPLETE (tcp) or FI_TRANSMIT_COMPLETE on reliable-connected
//   hardware that completion means the peer has the data, so the owner may
//   free the source only then (SMC's "send space is freed on completion").
//   When the link dies, TakePendingWrites() hands back every write that did
//   not complete, in post order, for the owner to post again elsewhere.
// - A link never destroys itself and never calls back into its owner for
//   anything but the LinkSink events; a fatal error only moves it to kDead.
// - Not thread-safe: one thread (the owner's) calls everything.
#ifndef USMC_LINK_FABRIC_FABRIC_LINK_H_
#define USMC_LINK_FABRIC_FABRIC_LINK_H_

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "link/fabric/link_address.h"
#include "link/fabric/llc.h"
#include "link/fabric/provider.h"

namespace usmc::fabric {

// A write as the owner tracks it: enough to post it again on another link.
struct WriteRequest {
  const void* local = nullptr;  // inside local region `local_region`
  size_t len = 0;
  uint32_t local_region = 0;
  uint32_t remote_region = 0;
  uint64_t remote_offset = 0;  // from the start of the remote region
  uint64_t cq_data = 0;        // delivered to the peer with the data
  uint64_t cookie = 0;         // the owner's; returned on completion
  int link_hint = -1;          // preferred link id, -1 = any
};

// Where a peer region is, as seen through one link.
struct RemoteKey {
  uint64_t key = 0;
  uint64_t base = 0;  // added to offsets: a VA, or 0 in offset mode
  uint64_t length = 0;
};

struct LocalMr {
  fid_mr* mr = nullptr;
  uint64_t key = 0;
  void* desc = nullptr;
  uint64_t base = 0;  // what the peer adds offsets to
  void* addr = nullptr;
  size_t len = 0;
  bool remote = false;
};

using CtrlBytes = std::array<uint8_t, kCtrlMsgSize>;

class FabricLink;

class LinkSink {
 public:
  virtual ~LinkSink() = default;
  virtual void OnWriteDone(FabricLink& link, const WriteRequest& w) = 0;
  virtual void OnRemoteData(FabricLink& link, uint64_t data) = 0;
  virtual void OnControl(FabricLink& link, std::span<const uint8_t> msg) = 0;
  // A connection request on a listening link; true accepts it.
  virtual bool OnConnReq(FabricLink& link, std::span<const uint8_t> cm) = 0;
  virtual void OnConnected(FabricLink& link) = 0;
  // The link just became kDead (CQ/EQ error, peer shutdown, failed connect).
  virtual void OnLinkError(FabricLink& link, int err,
                           const std::string& why) = 0;
};

class FabricLink {
 public:
  enum class State { kOpen, kListening, kConnecting, kAccepting, kUp, kDead };

  ~FabricLink();
  FabricLink(const FabricLink&) = delete;
  FabricLink& operator=(const FabricLink&) = delete;

  // Opens fabric, event queue, domain and completion queue for `info` (taken
  // over). wait_fd: ask for FI_WAIT_FD objects (falls back to none).
  static std::unique_ptr<FabricLink> Open(fi_info* info, uint8_t link_id,
                                          bool wait_fd, std::string* err);

  // Passive side: listens on the info's source address; *bound gets the
  // address (with the port) the peer must connect to.
  bool Listen(EpAddr* bound, std::string* err);
  // Active side: connects to the info's destination with `cm` as private
  // data (the peer's OnConnReq sees it).
  bool Connect(std::span<const uint8_t> cm, std::string* err);

  bool RegisterRegion(uint32_t id, void* addr, size_t len, bool remote,
                      std::string* err);
  void UnregisterRegion(uint32_t id);
  const LocalMr* Mr(uint32_t id) const;

  // 0, -FI_EAGAIN (no slot / provider busy) or another -FI_* error. Only
  // valid in kUp.
  int PostWrite(const WriteRequest& w, const RemoteKey& rk);
  // Sends a 44-byte control message, or queues it while no send slot is
  // free or the link is still connecting. -FI_EAGAIN if the queue is full.
  int PostCtrl(std::span<const uint8_t, kCtrlMsgSize> msg);

  // Processes up to `max` completions; returns how many.
  int PollCq(LinkSink& sink, int max);
  // Processes connection-management events; returns how many.
  int PollEq(LinkSink& sink);

  // Everything posted that did not complete, oldest first. Call after the
  // link died; the link forgets them.
  std::vector<WriteRequest> TakePendingWrites();
  std::vector<CtrlBytes> TakePendingCtrl();
  void MarkDead() { state_ = State::kDead; }

  int cq_fd() const { return cq_fd_; }
  int eq_fd() const { return eq_fd_; }
  // fi_trywait on this link's queues: true if it is safe to sleep on them.
  bool TryWait();

  State state() const { return state_; }
  uint8_t id() const { return id_; }
  const std::string& provider() const { return provider_; }
  const ProviderTraits& traits() const { return traits_; }
  const EpAddr& local_addr() const { return local_; }
  // When the peer last sent something on this link (CLOCK_MONOTONIC).
  uint64_t last_rx_ns() const { return last_rx_ns_; }
  size_t writes_in_flight() const { return wslots_.size() - wfree_.size(); }
  // Control messages posted or queued and not yet completed.
  size_t ctrl_in_flight() const {
    return cslots_.size() - cfree_.size() + ctrlq_.size();
  }
  size_t write_capacity() const { return wslots_.size(); }

 private:
  enum class OpKind : uint8_t { kWrite, kCtrl, kRecv };
  struct OpCtx {
    fi_context2 fi;  // first: the provider owns it while the op is posted
    OpKind kind;
    uint32_t index;
  };
  struct WriteSlot {
    OpCtx ctx;
    WriteRequest req;
    uint64_t seq = 0;
    bool busy = false;
  };
  struct CtrlSlot {
    OpCtx ctx;
    uint64_t seq = 0;
    bool busy = false;
  };

  FabricLink(fi_info* info, uint8_t link_id);
  bool OpenQueues(bool wait_fd, std::string* err);
  bool SetUpPool(std::string* err);
  bool SetUpEndpoint(fid_ep* ep, std::string* err);
  bool PostRecv(uint32_t index);
  int SendNow(std::span<const uint8_t> msg);
  void DrainCtrlQueue();
  bool HandleEntry(LinkSink& sink, const fi_cq_data_entry& e);
  void HandleRecv(LinkSink& sink, const fi_cq_data_entry& e, uint32_t index);
  void HandleCqError(LinkSink& sink);
  void HandleConnReq(LinkSink& sink, const fi_eq_cm_entry* cm, size_t len);
  void HandleEqError(LinkSink& sink);
  void Fail(LinkSink& sink, int err, const std::string& why);
  OpCtx* Owned(void* context);
  uint8_t* CtrlBuf(uint32_t i) const;
  uint8_t* RecvBuf(uint32_t i) const;
  void Close();

  fi_info* info_;
  uint8_t id_;
  std::string provider_;
  ProviderTraits traits_;
  EpAddr local_;
  State state_ = State::kOpen;
  fid_fabric* fabric_ = nullptr;
  fid_domain* domain_ = nullptr;
  fid_eq* eq_ = nullptr;
  fid_cq* cq_ = nullptr;
  fid_pep* pep_ = nullptr;
  fid_ep* ep_ = nullptr;
  int cq_fd_ = -1;
  int eq_fd_ = -1;
  std::unordered_map<uint32_t, LocalMr> mrs_;
  uint8_t* pool_ = nullptr;  // control send slots, then receive slots
  size_t pool_bytes_ = 0;
  fid_mr* pool_mr_ = nullptr;
  void* pool_desc_ = nullptr;
  std::vector<WriteSlot> wslots_;  // never resized once set up
  std::vector<uint32_t> wfree_;
  std::vector<CtrlSlot> cslots_;
  std::vector<uint32_t> cfree_;
  std::vector<OpCtx> rslots_;
  std::deque<CtrlBytes> ctrlq_;
  uint64_t next_seq_ = 1;
  uint64_t last_rx_ns_ = 0;
};

}  // namespace usmc::fabric

#endif  // USMC_LINK_FABRIC_FABRIC_LINK_H_
