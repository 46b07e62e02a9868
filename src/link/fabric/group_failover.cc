// LinkGroup: link death, failover, keepalive and (re-)adding links.
#include <algorithm>

#include "link/fabric/link_group.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::fabric {

// Deaths found inside a callback are only recorded: the link that reported
// them may still be on the stack. ProcessDeaths() acts after polling.
void LinkGroup::RequestDown(int i, uint32_t reason, bool notify) {
  Slot& s = slots_[i];
  if (!s.link || s.down_reason != 0) return;
  s.down_reason = reason;
  s.down_notify = notify;
  s.link->MarkDead();
}

void LinkGroup::DeleteLink(int i, uint32_t reason) {
  if (i >= 0 && i < kMaxLinks) RequestDown(i, reason, true);
}

void LinkGroup::ProcessDeaths() {
  for (int i = 0; i < kMaxLinks; ++i) {
    if (slots_[i].link && slots_[i].down_reason != 0) TakeDown(i);
  }
}

void LinkGroup::TakeDown(int i) {
  Slot& s = slots_[i];
  const uint32_t reason = s.down_reason;
  const bool notify = s.down_notify;
  const bool was_active = s.phase == Phase::kActive;
  std::vector<WriteRequest> writes = s.link->TakePendingWrites();
  std::vector<CtrlBytes> ctrl = s.link->TakePendingCtrl();
  s.link.reset();
  s = Slot{};
  for (auto& [id, rr] : remote_) rr.mask &= static_cast<uint8_t>(~(1u << i));
  for (LocalRegion& r : regions_) {
    r.confirmed &= static_cast<uint8_t>(~(1u << i));
  }
  const uint64_t now = sys::NowNs();
  next_add_ns_ = now + readd_ms_ * 1000000ull;
  const int survivor = AnyActive();
  if (!was_active) {
    ++counters_.add_failures;
    if (notify && survivor >= 0) {
      LlcMsg m{.type = MsgType::kDeleteLink,
               .link_id = static_cast<uint8_t>(i)};
      m.reason = reason;
      SendLlc(m, survivor);
    }
    // The first link failing to come up leaves nothing to fail over to.
    if (survivor < 0 && ActiveLinks() == 0 && counters_.links_added > 0) {
      GroupDown(reason);
    }
    return;
  }
  ++counters_.link_failures;
  counters_.last_dead_ns = now;
  USMC_LOG("fabric: link %d down (reason 0x%x), %zu writes in flight", i,
           reason, writes.size());
  if (survivor < 0) {
    GroupDown(reason);
    return;
  }
  if (notify) {
    LlcMsg m{.type = MsgType::kDeleteLink, .link_id = static_cast<uint8_t>(i)};
    m.reason = reason;
    SendLlc(m, survivor);
  }
  Failover(i, survivor, std::move(writes), std::move(ctrl));
}

// SMC's smc_switch_conns: what did not complete on the dead link is written
// again on the survivor at the same offsets, minus what the peer consumed.
void LinkGroup::Failover(int dead, int survivor,
                         std::vector<WriteRequest> writes,
                         std::vector<CtrlBytes> ctrl) {
  ++counters_.failovers;
  if (primary_ == dead || !LinkActive(primary_)) primary_ = survivor;
  for (WriteRequest w : writes) {
    const size_t skip = std::min(h_->OnReissue(w), w.len);
    if (skip == w.len) {
      ++counters_.writes_completed;
      h_->OnWriteComplete(w);
      continue;
    }
    w.local = static_cast<const uint8_t*>(w.local) + skip;
    w.len -= skip;
    w.remote_offset += skip;
    if (w.link_hint == dead) w.link_hint = -1;
    ++counters_.reissued_writes;
    counters_.reissued_bytes += w.len;
    backlog_.push_back(w);
  }
  for (const CtrlBytes& b : ctrl) {
    const auto type = static_cast<MsgType>(b[0]);
    if (type == MsgType::kCdc || type == MsgType::kDeleteRkey)
      ctrl_backlog_.push_back(b);
  }
  h_->OnLinkDown(static_cast<uint8_t>(dead), kReasonLostPath);
  DrainBacklog();
}

void LinkGroup::GroupDown(uint32_t reason) {
  if (down_) return;
  down_ = true;
  backlog_.clear();
  ctrl_backlog_.clear();
  for (Slot& s : slots_) {
    s.link.reset();
    s = Slot{};
  }
  primary_ = -1;
  USMC_LOG("fabric: link group down (reason 0x%x)", reason);
  h_->OnGroupDown(reason);
}

void LinkGroup::Timers(uint64_t now) {
  if (down_) return;
  for (int i = 0; i < kMaxLinks; ++i) {
    Slot& s = slots_[i];
    if (!s.link || s.down_reason != 0) continue;
    if (s.phase == Phase::kActive) {
      Keepalive(i, now);
    } else if (now >= s.deadline_ns) {
      USMC_LOG("fabric: link %d set-up timed out", i);
      RequestDown(i, kReasonLostPath, true);
    }
  }
  if (opt_.role != Role::kServer || AnyActive() < 0 || now < next_add_ns_) {
    return;
  }
  for (int i = 0; i < kMaxLinks; ++i) {
    if (slots_[i].phase != Phase::kEmpty) {
      if (slots_[i].phase != Phase::kActive) return;  // one set-up at a time
      continue;
    }
    if (!opt_.local_addrs[i].empty() && !peer_lacks_[i]) {
      StartAddLink(i, now);
      return;
    }
  }
}

// Silence for keepalive_ms -> TEST_LINK; nothing from the peer within
// probe_wait_ms after it -> dead. Any message or remote write counts.
void LinkGroup::Keepalive(int i, uint64_t now) {
  Slot& s = slots_[i];
  const uint64_t last = s.link->last_rx_ns();
  if (s.probe_ns != 0 && last > s.probe_ns) s.probe_ns = 0;
  if (s.probe_ns == 0) {
    if (now - std::min(now, last) < keepalive_ms_ * 1000000ull) return;
    LlcMsg m{.type = MsgType::kTestLink, .link_id = static_cast<uint8_t>(i)};
    const uint64_t stamp = now;
    std::copy_n(reinterpret_cast<const uint8_t*>(&stamp), sizeof stamp,
                m.test_data.begin());
    SendLlc(m, i);
    ++counters_.keepalives_sent;
    s.probe_ns = now;
    return;
  }
  if (now - s.probe_ns >= probe_wait_ms_ * 1000000ull) {
    USMC_LOG("fabric: link %d silent for %u ms after TEST_LINK", i,
             probe_wait_ms_);
    RequestDown(i, kReasonLostPath, true);
  }
}

// Server: listen on interface i and tell the client over a working link.
void LinkGroup::StartAddLink(int i, uint64_t now) {
  std::string err;
  LlcMsg m{.type = MsgType::kAddLink, .link_id = static_cast<uint8_t>(i)};
  if (!OpenSlot(i, nullptr, &err) || !slots_[i].link->Listen(&m.addr, &err)) {
    USMC_LOG("fabric: cannot add link %d: %s", i, err.c_str());
    slots_[i] = Slot{};
    ++counters_.add_failures;
    next_add_ns_ = now + readd_ms_ * 1000000ull;
    return;
  }
  slots_[i].nonce = sys::Random64();
  m.token = slots_[i].nonce;
  const int via = AnyActive();
  if (via < 0 || SendLlc(m, via) != 0) {
    slots_[i] = Slot{};
    next_add_ns_ = now + readd_ms_ * 1000000ull;
    return;
  }
  USMC_LOG("fabric: ADD_LINK %d at %s", i, m.addr.ToString().c_str());
}

}  // namespace usmc::fabric
