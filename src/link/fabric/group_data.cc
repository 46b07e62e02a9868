// LinkGroup: the data path (writes, completions, remote CQ data) and the
// polling / sleeping loop.
#include <rdma/fi_errno.h>

#include <algorithm>
#include <cerrno>

#include "link/fabric/link_group.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::fabric {

namespace {

constexpr uint64_t kSlowPassNs = 1000000;  // EQs and timers: every 1 ms

}  // namespace

int LinkGroup::ActiveLinks() const {
  int n = 0;
  for (const Slot& s : slots_) n += s.phase == Phase::kActive ? 1 : 0;
  return n;
}

bool LinkGroup::LinkActive(int i) const {
  return i >= 0 && i < kMaxLinks && slots_[i].phase == Phase::kActive;
}

bool LinkGroup::DeathPending() const {
  for (const Slot& s : slots_) {
    if (s.link && s.down_reason != 0) return true;
  }
  return false;
}

int LinkGroup::PickLink(const WriteRequest& w, const RemoteRegion& rr) const {
  auto usable = [&](int i) {
    return LinkActive(i) && (rr.mask & (1u << i)) != 0 &&
           slots_[i].down_reason == 0 &&
           slots_[i].link->Mr(w.local_region) != nullptr;
  };
  if (usable(w.link_hint)) return w.link_hint;
  if (usable(primary_)) return primary_;
  for (int i = 0; i < kMaxLinks; ++i) {
    if (usable(i)) return i;
  }
  return -1;
}

bool LinkGroup::LocalRangeOk(const WriteRequest& w) const {
  if (w.local_region >= regions_.size() || !regions_[w.local_region].live) {
    return false;
  }
  const LocalRegion& r = regions_[w.local_region];
  const auto* p = static_cast<const uint8_t*>(w.local);
  const auto* base = static_cast<const uint8_t*>(r.addr);
  return p >= base && w.len <= r.len &&
         static_cast<size_t>(p - base) <= r.len - w.len;
}

int LinkGroup::Write(const WriteRequest& w) {
  if (down_) return -ECONNABORTED;
  auto rr = remote_.find(w.remote_region);
  if (rr == remote_.end() || !LocalRangeOk(w) || w.len == 0 ||
      w.remote_offset > rr->second.length ||
      w.len > rr->second.length - w.remote_offset) {
    ++counters_.bounds_rejects;
    return -EINVAL;
  }
  // Nothing may overtake the writes a dying link still has to hand back.
  if (DeathPending()) return -EAGAIN;
  if (!backlog_.empty()) {
    DrainBacklog();
    if (!backlog_.empty()) return -EAGAIN;
  }
  const int rc = PostOne(w);
  if (rc == 0) {
    ++counters_.writes;
    counters_.write_bytes += w.len;
  }
  return rc;
}

// Posts on the best link. A hard post error condemns that link; the caller
// just sees -EAGAIN and retries on whatever survives.
int LinkGroup::PostOne(const WriteRequest& w) {
  auto rr = remote_.find(w.remote_region);
  if (rr == remote_.end()) return -EINVAL;
  const int i = PickLink(w, rr->second);
  if (i < 0) return -EAGAIN;
  const int rc = slots_[i].link->PostWrite(w, rr->second.keys[i]);
  if (rc == 0) return 0;
  if (rc != -FI_EAGAIN) {
    USMC_LOG("fabric: link %d: write post failed: %s", i, fi_strerror(-rc));
    RequestDown(i, kReasonLostPath, true);
  }
  return -EAGAIN;
}

void LinkGroup::DrainBacklog() {
  while (!backlog_.empty() && !down_) {
    if (PostOne(backlog_.front()) != 0) return;
    backlog_.pop_front();
  }
  while (!ctrl_backlog_.empty() && !down_) {
    int via = LinkActive(primary_) ? primary_ : AnyActive();
    if (via < 0 || slots_[via].link->PostCtrl(ctrl_backlog_.front()) != 0)
      return;
    ++counters_.ctrl_sent;
    ctrl_backlog_.pop_front();
  }
}

int LinkGroup::SendCdc(const CdcMsg& m, int link_hint) {
  if (down_) return -ECONNABORTED;
  if (DeathPending() || !backlog_.empty() || !ctrl_backlog_.empty())
    return -EAGAIN;
  int via = LinkActive(link_hint) ? link_hint : primary_;
  if (!LinkActive(via)) via = AnyActive();
  if (via < 0) return -EAGAIN;
  CtrlBytes b;
  EncodeCdc(m, b);
  const int rc = slots_[via].link->PostCtrl(b);
  if (rc == 0) ++counters_.ctrl_sent;
  return rc == 0 ? 0 : -EAGAIN;
}

bool LinkGroup::Quiet() const {
  if (!backlog_.empty() || !ctrl_backlog_.empty()) return false;
  for (const Slot& s : slots_) {
    if (s.link && s.link->state() == FabricLink::State::kUp &&
        (s.link->writes_in_flight() != 0 || s.link->ctrl_in_flight() != 0)) {
      return false;
    }
  }
  return true;
}

int LinkGroup::Poll(int max_per_link) {
  int n = 0;
  for (Slot& s : slots_) {
    if (s.link) n += s.link->PollCq(*this, max_per_link);
  }
  const uint64_t now = sys::NowNs();
  if (eq_due_ || now >= next_slow_ns_) {
    eq_due_ = false;
    for (Slot& s : slots_) {
      if (!s.link) continue;
      while (s.link && s.link->PollEq(*this) > 0) {
      }
      if (s.link && s.link->state() != FabricLink::State::kUp &&
          s.link->state() != FabricLink::State::kDead) {
        eq_due_ = true;  // setting up: keep watching the EQ every pass
      }
    }
    Timers(now);
    next_slow_ns_ = now + kSlowPassNs;
  }
  ProcessDeaths();
  DrainBacklog();
  return n;
}

int LinkGroup::WaitFds(pollfd* fds, int max) const {
  int n = 0;
  for (const Slot& s : slots_) {
    if (!s.link) continue;
    for (int fd : {s.link->cq_fd(), s.link->eq_fd()}) {
      if (fd >= 0 && n < max) fds[n++] = {fd, POLLIN, 0};
    }
  }
  return n;
}

bool LinkGroup::PrepareSleep() {
  if (!backlog_.empty() || !ctrl_backlog_.empty() || eq_due_) return false;
  bool any = false;
  for (Slot& s : slots_) {
    if (!s.link) continue;
    if (!s.link->TryWait()) return false;
    any = true;
  }
  return any;
}

int LinkGroup::NextTimeoutMs() const {
  const uint64_t now = sys::NowNs();
  uint64_t next = now + 1000000000ull;
  for (const Slot& s : slots_) {
    if (s.phase == Phase::kActive) {
      const uint64_t t =
          s.probe_ns != 0 ? s.probe_ns + probe_wait_ms_ * 1000000ull
                          : s.link->last_rx_ns() + keepalive_ms_ * 1000000ull;
      next = std::min(next, t);
    } else if (s.phase != Phase::kEmpty) {
      next = std::min(next, s.deadline_ns);
    }
  }
  if (opt_.role == Role::kServer && next_add_ns_ != 0) {
    next = std::min(next, std::max(next_add_ns_, now));
  }
  next = std::max(next, next_slow_ns_);
  return next <= now ? 0 : static_cast<int>((next - now + 999999) / 1000000);
}

int LinkGroup::Wait(int max_ms) {
  pollfd fds[2 * kMaxLinks];
  const int n = WaitFds(fds, 2 * kMaxLinks);
  if (n > 0 && PrepareSleep()) {
    const int ms = std::min(max_ms, NextTimeoutMs());
    if (ms > 0 && sys::Poll(fds, static_cast<nfds_t>(n), ms) > 0) {
      for (int i = 0; i < n; ++i) {
        for (const Slot& s : slots_) {
          if (s.link && fds[i].fd == s.link->eq_fd() && fds[i].revents) {
            eq_due_ = true;
          }
        }
      }
    }
  }
  return Poll();
}

void LinkGroup::OnWriteDone(FabricLink& /*link*/, const WriteRequest& w) {
  ++counters_.writes_completed;
  h_->OnWriteComplete(w);
}

void LinkGroup::OnRemoteData(FabricLink& link, uint64_t data) {
  ++counters_.remote_data;
  h_->OnRemoteData(link.id(), data);
}

void LinkGroup::OnLinkError(FabricLink& link, int err, const std::string& why) {
  USMC_LOG("fabric: link %u error %d: %s", link.id(), err, why.c_str());
  RequestDown(link.id(), kReasonLostPath, true);
}

}  // namespace usmc::fabric
