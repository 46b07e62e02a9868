#include "link/fabric/fabric_link.h"

#include <rdma/fi_cm.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "util/log.h"
#include "util/sys.h"

namespace usmc::fabric {

namespace {

constexpr size_t kSlotBytes = 64;  // one control message, cache-line sized
constexpr uint32_t kCtrlSlots = 32;
constexpr uint32_t kRecvSlots = 64;
constexpr size_t kMaxCtrlQueue = 4096;
constexpr uint64_t kPoolKey = 0x100000;  // above every region key (id + 1)

std::string FiError(const char* what, int rc) {
  return std::string(what) + ": " + fi_strerror(rc < 0 ? -rc : rc);
}

}  // namespace

FabricLink::FabricLink(fi_info* info, uint8_t link_id)
    : info_(info),
      id_(link_id),
      provider_(info->fabric_attr->prov_name),
      traits_(TraitsOf(info)) {
  EpAddr::FromSockaddr(static_cast<const sockaddr*>(info->src_addr),
                       info->src_addrlen, &local_);
}

FabricLink::~FabricLink() { Close(); }

std::unique_ptr<FabricLink> FabricLink::Open(fi_info* info, uint8_t link_id,
                                             bool wait_fd, std::string* err) {
  std::unique_ptr<FabricLink> l(new FabricLink(info, link_id));
  int rc = fi_fabric(info->fabric_attr, &l->fabric_, nullptr);
  if (rc != 0) {
    *err = FiError("fi_fabric", rc);
    return nullptr;
  }
  rc = fi_domain(l->fabric_, info, &l->domain_, nullptr);
  if (rc != 0) {
    *err = FiError("fi_domain", rc);
    return nullptr;
  }
  if (!l->OpenQueues(wait_fd, err) || !l->SetUpPool(err)) return nullptr;
  l->last_rx_ns_ = sys::NowNs();
  return l;
}

bool FabricLink::OpenQueues(bool wait_fd, std::string* err) {
  fi_eq_attr eq_attr{};
  eq_attr.size = 16;
  eq_attr.wait_obj = wait_fd ? FI_WAIT_FD : FI_WAIT_NONE;
  int rc = fi_eq_open(fabric_, &eq_attr, &eq_, nullptr);
  if (rc != 0 && wait_fd) {
    eq_attr.wait_obj = FI_WAIT_NONE;
    rc = fi_eq_open(fabric_, &eq_attr, &eq_, nullptr);
  }
  if (rc != 0) {
    *err = FiError("fi_eq_open", rc);
    return false;
  }
  if (eq_attr.wait_obj == FI_WAIT_FD &&
      fi_control(&eq_->fid, FI_GETWAIT, &eq_fd_) != 0) {
    eq_fd_ = -1;
  }
  fi_cq_attr cq_attr{};
  cq_attr.size = traits_.tx_depth + traits_.rx_depth;
  cq_attr.format = FI_CQ_FORMAT_DATA;
  cq_attr.wait_obj = wait_fd ? FI_WAIT_FD : FI_WAIT_NONE;
  rc = fi_cq_open(domain_, &cq_attr, &cq_, nullptr);
  if (rc != 0 && wait_fd) {
    cq_attr.wait_obj = FI_WAIT_NONE;
    rc = fi_cq_open(domain_, &cq_attr, &cq_, nullptr);
  }
  if (rc != 0) {
    *err = FiError("fi_cq_open", rc);
    return false;
  }
  if (cq_attr.wait_obj == FI_WAIT_FD &&
      fi_control(&cq_->fid, FI_GETWAIT, &cq_fd_) != 0) {
    cq_fd_ = -1;
  }
  return true;
}

// Control send and receive buffers live in one page-aligned pool, registered
// once (verbs wants page-aligned registrations for fork safety).
bool FabricLink::SetUpPool(std::string* err) {
  const uint32_t recv_slots =
      traits_.rx_cq_data ? static_cast<uint32_t>(traits_.rx_depth)
                         : std::min<uint32_t>(kRecvSlots, traits_.rx_depth);
  const uint32_t ctrl_slots =
      std::min<uint32_t>(kCtrlSlots, traits_.tx_depth / 4);
  if (recv_slots == 0 || ctrl_slots == 0) {
    *err = "provider queues too small";
    return false;
  }
  pool_bytes_ = (recv_slots + ctrl_slots) * kSlotBytes;
  pool_bytes_ = (pool_bytes_ + 4095) & ~size_t{4095};
  void* p = mmap(nullptr, pool_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = "mmap control pool failed";
    return false;
  }
  pool_ = static_cast<uint8_t*>(p);
  if (traits_.mr_local) {
    const int rc = fi_mr_reg(domain_, pool_, pool_bytes_, FI_SEND | FI_RECV, 0,
                             kPoolKey, 0, &pool_mr_, nullptr);
    if (rc != 0) {
      *err = FiError("fi_mr_reg(pool)", rc);
      return false;
    }
    pool_desc_ = fi_mr_desc(pool_mr_);
  }
  cslots_.resize(ctrl_slots);
  for (uint32_t i = 0; i < ctrl_slots; ++i) {
    cslots_[i].ctx = {{}, OpKind::kCtrl, i};
    cfree_.push_back(ctrl_slots - 1 - i);
  }
  rslots_.resize(recv_slots);
  for (uint32_t i = 0; i < recv_slots; ++i) rslots_[i] = {{}, OpKind::kRecv, i};
  const size_t writes = traits_.tx_depth - ctrl_slots;
  wslots_.resize(writes);
  for (uint32_t i = 0; i < writes; ++i) {
    wslots_[i].ctx = {{}, OpKind::kWrite, i};
    wfree_.push_back(static_cast<uint32_t>(writes - 1 - i));
  }
  return true;
}

uint8_t* FabricLink::CtrlBuf(uint32_t i) const {
  return pool_ + i * kSlotBytes;
}

uint8_t* FabricLink::RecvBuf(uint32_t i) const {
  return pool_ + (cslots_.size() + i) * kSlotBytes;
}

bool FabricLink::Listen(EpAddr* bound, std::string* err) {
  int rc = fi_passive_ep(fabric_, info_, &pep_, this);
  if (rc == 0) rc = fi_pep_bind(pep_, &eq_->fid, 0);
  if (rc == 0) rc = fi_listen(pep_);
  if (rc != 0) {
    *err = FiError("listen", rc);
    return false;
  }
  sockaddr_storage ss{};
  size_t len = sizeof ss;
  rc = fi_getname(&pep_->fid, &ss, &len);
  if (rc != 0 ||
      !EpAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len, bound)) {
    *err = FiError("fi_getname", rc != 0 ? rc : -FI_EINVAL);
    return false;
  }
  state_ = State::kListening;
  return true;
}

bool FabricLink::SetUpEndpoint(fid_ep* ep, std::string* err) {
  ep_ = ep;
  int rc = fi_ep_bind(ep_, &eq_->fid, 0);
  if (rc == 0) rc = fi_ep_bind(ep_, &cq_->fid, FI_TRANSMIT | FI_RECV);
  if (rc == 0) rc = fi_enable(ep_);
  if (rc != 0) {
    *err = FiError("endpoint", rc);
    return false;
  }
  for (uint32_t i = 0; i < rslots_.size(); ++i) {
    if (!PostRecv(i)) {
      *err = "cannot post receives";
      return false;
    }
  }
  return true;
}

bool FabricLink::Connect(std::span<const uint8_t> cm, std::string* err) {
  fid_ep* ep = nullptr;
  const int rc = fi_endpoint(domain_, info_, &ep, this);
  if (rc != 0) {
    *err = FiError("fi_endpoint", rc);
    return false;
  }
  if (!SetUpEndpoint(ep, err)) return false;
  const int crc = fi_connect(ep_, info_->dest_addr, cm.data(), cm.size());
  if (crc != 0) {
    *err = FiError("fi_connect", crc);
    return false;
  }
  state_ = State::kConnecting;
  return true;
}

bool FabricLink::RegisterRegion(uint32_t id, void* addr, size_t len,
                                bool remote, std::string* err) {
  if (mrs_.count(id) != 0) return true;
  const uint64_t access = FI_WRITE | (remote ? FI_REMOTE_WRITE : 0);
  const uint64_t want_key = traits_.mr_prov_key ? 0 : uint64_t{id} + 1;
  LocalMr m;
  const int rc =
      fi_mr_reg(domain_, addr, len, access, 0, want_key, 0, &m.mr, nullptr);
  if (rc != 0) {
    *err = FiError("fi_mr_reg", rc);
    return false;
  }
  m.key = fi_mr_key(m.mr);
  m.desc = fi_mr_desc(m.mr);
  m.base = traits_.mr_virt_addr ? reinterpret_cast<uint64_t>(addr) : 0;
  m.addr = addr;
  m.len = len;
  m.remote = remote;
  mrs_[id] = m;
  return true;
}

void FabricLink::UnregisterRegion(uint32_t id) {
  auto it = mrs_.find(id);
  if (it == mrs_.end()) return;
  fi_close(&it->second.mr->fid);
  mrs_.erase(it);
}

const LocalMr* FabricLink::Mr(uint32_t id) const {
  auto it = mrs_.find(id);
  return it == mrs_.end() ? nullptr : &it->second;
}

int FabricLink::PostWrite(const WriteRequest& w, const RemoteKey& rk) {
  if (state_ != State::kUp) return -FI_ENOTCONN;
  if (wfree_.empty()) return -FI_EAGAIN;
  const LocalMr* mr = Mr(w.local_region);
  if (mr == nullptr) return -FI_EINVAL;
  const uint32_t idx = wfree_.back();
  WriteSlot& s = wslots_[idx];
  iovec iov{const_cast<void*>(w.local), w.len};
  void* desc = mr->desc;
  fi_rma_iov rma{rk.base + w.remote_offset, w.len, rk.key};
  fi_msg_rma msg{&iov, &desc, 1, 0, &rma, 1, &s.ctx, w.cq_data};
  uint64_t flags = FI_COMPLETION | FI_REMOTE_CQ_DATA | traits_.completion;
  if (w.len <= traits_.inject_size) flags |= FI_INJECT;
  const ssize_t rc = fi_writemsg(ep_, &msg, flags);
  if (rc != 0) return static_cast<int>(rc);
  wfree_.pop_back();
  s.req = w;
  s.seq = next_seq_++;
  s.busy = true;
  return 0;
}

int FabricLink::PostCtrl(std::span<const uint8_t, kCtrlMsgSize> msg) {
  if (state_ == State::kDead) return -FI_ENOTCONN;
  if (state_ == State::kUp && ctrlq_.empty() && !cfree_.empty()) {
    const int rc = SendNow(msg);
    if (rc != -FI_EAGAIN) return rc;
  }
  if (ctrlq_.size() >= kMaxCtrlQueue) return -FI_EAGAIN;
  CtrlBytes b;
  std::memcpy(b.data(), msg.data(), kCtrlMsgSize);
  ctrlq_.push_back(b);
  return 0;
}

int FabricLink::SendNow(std::span<const uint8_t> msg) {
  const uint32_t idx = cfree_.back();
  CtrlSlot& s = cslots_[idx];
  uint8_t* buf = CtrlBuf(idx);
  std::memcpy(buf, msg.data(), msg.size());
  iovec iov{buf, msg.size()};
  void* desc = pool_desc_;
  fi_msg m{&iov, &desc, 1, 0, &s.ctx, 0};
  uint64_t flags = FI_COMPLETION | traits_.completion;
  if (msg.size() <= traits_.inject_size) flags |= FI_INJECT;
  const ssize_t rc = fi_sendmsg(ep_, &m, flags);
  if (rc != 0) return static_cast<int>(rc);
  cfree_.pop_back();
  s.seq = next_seq_++;
  s.busy = true;
  return 0;
}

void FabricLink::DrainCtrlQueue() {
  while (state_ == State::kUp && !ctrlq_.empty() && !cfree_.empty()) {
    if (SendNow(ctrlq_.front()) != 0) return;
    ctrlq_.pop_front();
  }
}

bool FabricLink::PostRecv(uint32_t index) {
  const ssize_t rc =
      fi_recv(ep_, RecvBuf(index), kSlotBytes, pool_desc_, 0, &rslots_[index]);
  return rc == 0;
}

}  // namespace usmc::fabric
