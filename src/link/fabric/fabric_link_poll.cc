// FabricLink: completion and event processing, failover hand-back, teardown.
#include <rdma/fi_cm.h>
#include <rdma/fi_errno.h>
#include <sys/mman.h>

#include <algorithm>

#include "link/fabric/fabric_link.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::fabric {

namespace {

constexpr int kCqBatch = 16;
constexpr size_t kEqBuf = sizeof(fi_eq_cm_entry) + 256;

// Context pointers come back from the provider; only ones inside our own
// arrays are trusted.
template <typename T>
bool Inside(const std::vector<T>& v, const void* p) {
  if (v.empty()) return false;
  const auto* b = reinterpret_cast<const uint8_t*>(v.data());
  const auto* q = static_cast<const uint8_t*>(p);
  return q >= b && q < b + v.size() * sizeof(T) && (q - b) % sizeof(T) == 0;
}

}  // namespace

FabricLink::OpCtx* FabricLink::Owned(void* context) {
  if (context == nullptr) return nullptr;
  if (Inside(wslots_, context) || Inside(cslots_, context) ||
      Inside(rslots_, context)) {
    return static_cast<OpCtx*>(context);
  }
  return nullptr;
}

int FabricLink::PollCq(LinkSink& sink, int max) {
  if (cq_ == nullptr || state_ == State::kDead) return 0;
  fi_cq_data_entry e[kCqBatch];
  int total = 0;
  while (total < max && state_ != State::kDead) {
    const ssize_t n = fi_cq_read(cq_, e, std::min(kCqBatch, max - total));
    if (n == -FI_EAGAIN) break;
    if (n == -FI_EAVAIL) {
      HandleCqError(sink);
      break;
    }
    if (n < 0) {
      Fail(sink, static_cast<int>(n), "fi_cq_read");
      break;
    }
    bool inbound = false;
    for (ssize_t i = 0; i < n && state_ != State::kDead; ++i) {
      inbound |= HandleEntry(sink, e[i]);
    }
    if (inbound) last_rx_ns_ = sys::NowNs();
    total += static_cast<int>(n);
  }
  return total;
}

// Returns true for what the peer's software sent (a message, remote CQ
// data): only that proves the peer alive. Our own completions do not, since
// on hardware the peer's NIC acknowledges even when its process hangs.
bool FabricLink::HandleEntry(LinkSink& sink, const fi_cq_data_entry& e) {
  OpCtx* ctx = Owned(e.op_context);
  if (ctx == nullptr) {
    if ((e.flags & FI_REMOTE_CQ_DATA) == 0) return false;
    sink.OnRemoteData(*this, e.data);
    return true;
  }
  switch (ctx->kind) {
    case OpKind::kWrite: {
      WriteSlot& s = wslots_[ctx->index];
      if (!s.busy) return false;
      s.busy = false;
      wfree_.push_back(ctx->index);
      sink.OnWriteDone(*this, s.req);
      return false;
    }
    case OpKind::kCtrl:
      if (cslots_[ctx->index].busy) {
        cslots_[ctx->index].busy = false;
        cfree_.push_back(ctx->index);
      }
      DrainCtrlQueue();
      return false;
    case OpKind::kRecv:
      HandleRecv(sink, e, ctx->index);
      return true;
  }
  return false;
}

// With FI_RX_CQ_DATA (verbs) a remote write's CQ data arrives on a posted
// receive; either way the buffer goes straight back to the pool.
void FabricLink::HandleRecv(LinkSink& sink, const fi_cq_data_entry& e,
                            uint32_t index) {
  if (e.flags & FI_REMOTE_CQ_DATA) {
    sink.OnRemoteData(*this, e.data);
  } else if (e.flags & FI_RECV) {
    const size_t len = std::min<size_t>(e.len, 64);
    sink.OnControl(*this, std::span<const uint8_t>(RecvBuf(index), len));
  }
  if (state_ != State::kDead && !PostRecv(index)) {
    Fail(sink, -FI_EIO, "cannot re-post a receive");
  }
}

void FabricLink::HandleCqError(LinkSink& sink) {
  fi_cq_err_entry err{};
  const ssize_t rc = fi_cq_readerr(cq_, &err, 0);
  if (rc < 0) {
    Fail(sink, static_cast<int>(rc), "fi_cq_readerr");
    return;
  }
  const OpCtx* ctx = Owned(err.op_context);
  const char* what = ctx == nullptr                ? "completion"
                     : ctx->kind == OpKind::kWrite ? "write"
                     : ctx->kind == OpKind::kCtrl  ? "send"
                                                   : "receive";
  const char* detail =
      fi_cq_strerror(cq_, err.prov_errno, err.err_data, nullptr, 0);
  Fail(sink, -err.err,
       std::string(what) + " failed: " + fi_strerror(err.err) +
           (detail != nullptr ? std::string(" (") + detail + ")" : ""));
}

void FabricLink::Fail(LinkSink& sink, int err, const std::string& why) {
  if (state_ == State::kDead) return;
  state_ = State::kDead;
  USMC_LOG("fabric link %u (%s): dead: %s", id_, local_.ToString().c_str(),
           why.c_str());
  sink.OnLinkError(*this, err, why);
}

int FabricLink::PollEq(LinkSink& sink) {
  if (eq_ == nullptr || state_ == State::kDead) return 0;
  alignas(fi_eq_cm_entry) uint8_t buf[kEqBuf];
  uint32_t event = 0;
  const ssize_t n = fi_eq_read(eq_, &event, buf, sizeof buf, 0);
  if (n == -FI_EAGAIN) return 0;
  if (n == -FI_EAVAIL) {
    HandleEqError(sink);
    return 1;
  }
  if (n < 0) {
    Fail(sink, static_cast<int>(n), "fi_eq_read");
    return 1;
  }
  const auto* cm = reinterpret_cast<const fi_eq_cm_entry*>(buf);
  if (static_cast<size_t>(n) < sizeof *cm) return 1;
  switch (event) {
    case FI_CONNREQ:
      HandleConnReq(sink, cm, static_cast<size_t>(n) - sizeof *cm);
      break;
    case FI_CONNECTED:
      if (ep_ != nullptr && cm->fid == &ep_->fid &&
          (state_ == State::kConnecting || state_ == State::kAccepting)) {
        state_ = State::kUp;
        last_rx_ns_ = sys::NowNs();
        if (pep_ != nullptr) fi_close(&pep_->fid);
        pep_ = nullptr;
        DrainCtrlQueue();
        sink.OnConnected(*this);
      }
      break;
    case FI_SHUTDOWN:
      Fail(sink, -FI_ECONNRESET, "peer shut the connection down");
      break;
    default:
      break;
  }
  return 1;
}

void FabricLink::HandleConnReq(LinkSink& sink, const fi_eq_cm_entry* cm,
                               size_t len) {
  fi_info* req = cm->info;
  bool accepted = false;
  if (state_ == State::kListening && ep_ == nullptr &&
      sink.OnConnReq(*this, std::span<const uint8_t>(cm->data, len))) {
    fid_ep* ep = nullptr;
    std::string err;
    if (fi_endpoint(domain_, req, &ep, this) == 0 && SetUpEndpoint(ep, &err) &&
        fi_accept(ep_, nullptr, 0) == 0) {
      state_ = State::kAccepting;
      accepted = true;
    } else {
      USMC_LOG("fabric link %u: accept failed: %s", id_, err.c_str());
      if (ep != nullptr) fi_close(&ep->fid);
      ep_ = nullptr;
    }
  }
  if (!accepted && pep_ != nullptr) fi_reject(pep_, req->handle, nullptr, 0);
  fi_freeinfo(req);
}

void FabricLink::HandleEqError(LinkSink& sink) {
  fi_eq_err_entry err{};
  const ssize_t rc = fi_eq_readerr(eq_, &err, 0);
  if (rc < 0) {
    Fail(sink, static_cast<int>(rc), "fi_eq_readerr");
    return;
  }
  // A listener keeps listening when one incoming attempt fails.
  if (state_ == State::kListening) {
    USMC_LOG("fabric link %u: incoming connection failed: %s", id_,
             fi_strerror(err.err));
    return;
  }
  Fail(sink, -err.err,
       std::string("connection failed: ") + fi_strerror(err.err));
}

std::vector<WriteRequest> FabricLink::TakePendingWrites() {
  std::vector<WriteSlot*> busy;
  for (WriteSlot& s : wslots_) {
    if (s.busy) busy.push_back(&s);
  }
  std::sort(
      busy.begin(), busy.end(),
      [](const WriteSlot* a, const WriteSlot* b) { return a->seq < b->seq; });
  std::vector<WriteRequest> out;
  out.reserve(busy.size());
  for (WriteSlot* s : busy) {
    out.push_back(s->req);
    s->busy = false;
    wfree_.push_back(s->ctx.index);
  }
  return out;
}

std::vector<CtrlBytes> FabricLink::TakePendingCtrl() {
  std::vector<CtrlSlot*> busy;
  for (CtrlSlot& s : cslots_) {
    if (s.busy) busy.push_back(&s);
  }
  std::sort(busy.begin(), busy.end(), [](const CtrlSlot* a, const CtrlSlot* b) {
    return a->seq < b->seq;
  });
  std::vector<CtrlBytes> out;
  for (CtrlSlot* s : busy) {
    CtrlBytes b;
    std::copy_n(CtrlBuf(s->ctx.index), kCtrlMsgSize, b.begin());
    out.push_back(b);
    s->busy = false;
    cfree_.push_back(s->ctx.index);
  }
  out.insert(out.end(), ctrlq_.begin(), ctrlq_.end());
  ctrlq_.clear();
  return out;
}

bool FabricLink::TryWait() {
  fid* fids[2];
  int n = 0;
  if (cq_ != nullptr && cq_fd_ >= 0) fids[n++] = &cq_->fid;
  if (eq_ != nullptr && eq_fd_ >= 0) fids[n++] = &eq_->fid;
  if (n == 0) return false;
  return fi_trywait(fabric_, fids, n) == FI_SUCCESS;
}

void FabricLink::Close() {
  if (ep_ != nullptr) fi_close(&ep_->fid);
  if (pep_ != nullptr) fi_close(&pep_->fid);
  ep_ = nullptr;
  pep_ = nullptr;
  for (auto& [id, m] : mrs_) fi_close(&m.mr->fid);
  mrs_.clear();
  if (pool_mr_ != nullptr) fi_close(&pool_mr_->fid);
  pool_mr_ = nullptr;
  if (cq_ != nullptr) fi_close(&cq_->fid);
  if (eq_ != nullptr) fi_close(&eq_->fid);
  if (domain_ != nullptr) fi_close(&domain_->fid);
  if (fabric_ != nullptr) fi_close(&fabric_->fid);
  cq_ = nullptr;
  eq_ = nullptr;
  domain_ = nullptr;
  fabric_ = nullptr;
  if (pool_ != nullptr) munmap(pool_, pool_bytes_);
  pool_ = nullptr;
  if (info_ != nullptr) fi_freeinfo(info_);
  info_ = nullptr;
  state_ = State::kDead;
}

}  // namespace usmc::fabric
