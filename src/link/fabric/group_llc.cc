// LinkGroup: LLC flows (confirm / add / delete / test link, rkeys) and the
// connection-management callbacks. Everything here comes from the peer and
// is checked before use; a message that breaks the protocol costs the link
// it came on (DELETE_LINK with PROT_VIOL), never memory safety.
#include <algorithm>

#include "link/fabric/bytes.h"
#include "link/fabric/link_group.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::fabric {

int LinkGroup::SendLlc(const LlcMsg& m, int via) {
  CtrlBytes b;
  if (via < 0 || !slots_[via].link || EncodeLlc(m, b) == 0) return -EINVAL;
  const int rc = slots_[via].link->PostCtrl(b);
  if (rc == 0) ++counters_.ctrl_sent;
  return rc;
}

int LinkGroup::AnyActive(int except) const {
  for (int i = 0; i < kMaxLinks; ++i) {
    if (i != except && LinkActive(i) && slots_[i].down_reason == 0) return i;
  }
  return -1;
}

void LinkGroup::ProtocolError(FabricLink& link, const char* why) {
  ++counters_.protocol_errors;
  USMC_LOG("fabric: link %u: protocol violation: %s", link.id(), why);
  RequestDown(link.id(), kReasonProtViol, true);
}

void LinkGroup::OnControl(FabricLink& link, std::span<const uint8_t> msg) {
  ++counters_.ctrl_received;
  CtrlMsg m;
  const CtrlStatus st = ParseControl(msg, &m);
  if (st != CtrlStatus::kOk) {
    ProtocolError(link, CtrlStatusName(st));
    return;
  }
  if (m.type == MsgType::kCdc) {
    if (slots_[link.id()].phase != Phase::kActive) {
      ProtocolError(link, "CDC before the link was confirmed");
      return;
    }
    h_->OnCdc(link.id(), m.cdc);
    return;
  }
  HandleLlc(link, m.llc);
}

void LinkGroup::HandleLlc(FabricLink& link, const LlcMsg& m) {
  const bool resp = (m.flags & kLlcResp) != 0;
  switch (m.type) {
    case MsgType::kConfirmLink:
      OnConfirmLink(link, m);
      return;
    case MsgType::kAddLink:
      OnAddLink(link, m);
      return;
    case MsgType::kDeleteLink:
      OnDeleteLink(link, m);
      return;
    case MsgType::kConfirmRkey:
      OnConfirmRkey(link, m);
      return;
    case MsgType::kTestLink:
      if (!resp) {
        LlcMsg r = m;
        r.flags = kLlcResp;
        SendLlc(r, link.id());
      }
      return;
    case MsgType::kDeleteRkey:
      if (!resp) remote_.erase(m.region_id);
      return;
    default:
      ProtocolError(link, "unexpected LLC type");
  }
}

void LinkGroup::OnConfirmLink(FabricLink& link, const LlcMsg& m) {
  const int i = link.id();
  const bool resp = (m.flags & kLlcResp) != 0;
  const bool server = opt_.role == Role::kServer;
  if (m.token != token_ || m.link_id != i || resp != server) {
    ProtocolError(link, "CONFIRM_LINK does not match this link");
    return;
  }
  if (slots_[i].phase == Phase::kConfirming) {
    Activate(i);
  } else if (slots_[i].phase != Phase::kActive) {
    ProtocolError(link, "CONFIRM_LINK out of order");
    return;
  }
  if (!server) {
    LlcMsg r = m;
    r.flags = kLlcResp;
    SendLlc(r, i);
  }
}

// Client: the server listens for link i at m.addr; connect from interface i.
void LinkGroup::OnAddLink(FabricLink& link, const LlcMsg& m) {
  const int i = m.link_id;
  if (opt_.role != Role::kClient || (m.flags & kLlcResp) != 0 ||
      i == link.id()) {
    ProtocolError(link, "unexpected ADD_LINK");
    return;
  }
  LlcMsg reject{.type = MsgType::kDeleteLink, .link_id = m.link_id};
  reject.reason = kReasonNoAsym;
  if (opt_.local_addrs[i].empty()) {
    SendLlc(reject, link.id());
    return;
  }
  if (slots_[i].link) {  // the server gave up on it before we noticed
    RequestDown(i, kReasonLostPath, false);
    TakeDown(i);
  }
  std::string err;
  uint8_t cm[16] = {};
  bytes::Put32(cm, kLinkAddressMagic);
  cm[4] = kLinkAddressVersion;
  cm[5] = static_cast<uint8_t>(i);
  bytes::Put64(cm + 8, m.token);
  if (!OpenSlot(i, &m.addr, &err) || !slots_[i].link->Connect(cm, &err)) {
    USMC_LOG("fabric: cannot join link %d at %s: %s", i,
             m.addr.ToString().c_str(), err.c_str());
    slots_[i] = Slot{};
    ++counters_.add_failures;
    reject.reason = kReasonLostPath;
    SendLlc(reject, link.id());
    return;
  }
  slots_[i].nonce = m.token;
}

void LinkGroup::OnDeleteLink(FabricLink& link, const LlcMsg& m) {
  if ((m.flags & kLlcResp) != 0) return;
  if ((m.flags & kLlcDelAll) != 0) {
    for (int i = 0; i < kMaxLinks; ++i) RequestDown(i, m.reason, false);
    return;
  }
  USMC_LOG("fabric: peer deletes link %u (reason 0x%x) via link %u", m.link_id,
           m.reason, link.id());
  if (m.reason == kReasonNoAsym && opt_.role == Role::kServer) {
    peer_lacks_[m.link_id] = true;  // an asymmetric group: stop adding it
  }
  if (slots_[m.link_id].link) RequestDown(m.link_id, m.reason, false);
}

void LinkGroup::OnConfirmRkey(FabricLink& link, const LlcMsg& m) {
  if ((m.flags & kLlcResp) != 0) {
    if (m.region_id < regions_.size()) {
      regions_[m.region_id].confirmed |= static_cast<uint8_t>(1u << m.link_id);
    }
    return;
  }
  RemoteRegion& rr = remote_[m.region_id];
  if (rr.mask != 0 && rr.length != m.length) {
    ProtocolError(link, "CONFIRM_RKEY changes a region's length");
    return;
  }
  rr.length = m.length;
  rr.keys[m.link_id] = {m.rkey, m.base, m.length};
  rr.mask |= static_cast<uint8_t>(1u << m.link_id);
  LlcMsg r = m;
  r.flags = kLlcResp;
  SendLlc(r, link.id());
}

// Server: only the connection the current set-up of this link announced
// (same link id and nonce) is accepted.
bool LinkGroup::OnConnReq(FabricLink& link, std::span<const uint8_t> cm) {
  const int i = link.id();
  if (opt_.role != Role::kServer || cm.size() < 16 ||
      slots_[i].phase != Phase::kSetup) {
    return false;
  }
  const bool ok = bytes::Get32(cm.data()) == kLinkAddressMagic &&
                  cm[4] == kLinkAddressVersion && cm[5] == i &&
                  bytes::Get64(cm.data() + 8) == slots_[i].nonce;
  if (!ok) {
    ++counters_.protocol_errors;
    USMC_LOG("fabric: link %d: connection request with a wrong nonce", i);
  }
  return ok;
}

void LinkGroup::OnConnected(FabricLink& link) {
  const int i = link.id();
  slots_[i].phase = Phase::kConfirming;
  AnnounceRegions(i);
  if (opt_.role == Role::kServer) {
    LlcMsg m{.type = MsgType::kConfirmLink, .link_id = static_cast<uint8_t>(i)};
    m.token = token_;
    m.max_links = kMaxLinks;
    SendLlc(m, i);
  }
}

}  // namespace usmc::fabric
