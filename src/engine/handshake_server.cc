// The server half of the CLC handshake.
#include <errno.h>

#include <algorithm>

#include "engine/handshake.h"
#include "engine/links.h"
#include "util/log.h"
#include "util/sys.h"
#include "wire/decline.h"

namespace usmc::engine {

ServerHandshake::ServerHandshake(int tcp_fd, uint32_t ring_bytes)
    : fd_(tcp_fd), ring_bytes_(ring_bytes) {}

ServerHandshake::~ServerHandshake() {
  ReleaseRemote();
  if (conn_) {
    conn_->Close();
    return;
  }
  if (!granted_ || st_ == nullptr) return;
  if (st_->flags.load(std::memory_order_acquire) & kConfirmed) {
    // A forked holder finished the handshake: this copy leaves as any holder
    // of the connection does (the last one closes it and releases the slot).
    Conn::Setup s{fd_, shm::Side::kServer, st_, seg_, slot_};
    Conn(s).Close();
    return;
  }
  // A forked holder may still be finishing this handshake: only the last one
  // gives the slot back.
  if (st_->holders.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  seg_->ReleaseSlot(slot_, shm::Side::kClient);
  seg_->ReleaseSlot(slot_, shm::Side::kServer);
  Arena::Get().Free(st_);
}

HsResult ServerHandshake::Decline(uint32_t code) {
  reason_ = code;
  return SendDecline(fd_, code) ? HsResult::kFallback : HsResult::kReset;
}

HsResult ServerHandshake::Step() {
  uint8_t buf[wire::kClcMaxSize];
  size_t len = 0;
  wire::ClcHeader hdr;
  wire::ParseStatus s = ReadClc(fd_, buf, sizeof buf, &len, &hdr);
  if (s == wire::ParseStatus::kNeedMore) return HsResult::kWantRead;
  if (s == wire::ParseStatus::kNotClc && !granted_) {
    reason_ = wire::kDeclPeerNoSmc;  // application data at the head: the client
                                     // is plain TCP
    return HsResult::kFallback;
  }
  if (s != wire::ParseStatus::kOk) {
    reason_ = wire::kDeclClcMalformed;
    return HsResult::kReset;
  }
  if (hdr.type == wire::ClcType::kDecline) {
    // Before a grant: a client whose rules say tcp declines a peer the BPF
    // signal made expect a Proposal. After: the destructor returns the slot.
    reason_ = wire::kDeclPeerDecl;
    return HsResult::kFallback;
  }
  if (!granted_ && hdr.type == wire::ClcType::kProposal) {
    wire::Proposal p;
    wire::ParseStatus ds = wire::Decode({buf, len}, &p);
    if (ds == wire::ParseStatus::kUnsupportedVersion)
      return Decline(wire::kDeclVersMismat);
    if (ds != wire::ParseStatus::kOk) return Decline(wire::kDeclCnfErr);
    return OnProposal(p);
  }
  if (granted_ && hdr.type == wire::ClcType::kConfirm) {
    wire::Confirm c;
    if (wire::Decode({buf, len}, &c) != wire::ParseStatus::kOk) {
      reason_ = wire::kDeclClcMalformed;
      return HsResult::kReset;
    }
    return OnConfirm(c);
  }
  reason_ = wire::kDeclClcMalformed;  // a message out of order
  return HsResult::kReset;
}

HsResult ServerHandshake::OnProposal(const wire::Proposal& p) {
  if (p.smcr) return OnProposalRemote(p);
  if (p.peer_id != HostPeerId()) return Decline(wire::kDeclNoSmcdDev);
  uint32_t want = std::max(wire::DecompressRingSize(p.rx_size_code),
                           wire::DecompressRingSize(p.tx_size_code));
  uint32_t ring = std::clamp(std::max(want, ring_bytes_), shm::kMinRingBytes,
                             shm::kMaxRingBytes);
  token_ = static_cast<uint32_t>(sys::FastRandom64()) | 1u;
  // The arena record comes first: it counts the holders of the granted slot
  // across fork.
  st_ = Arena::Get().Alloc();
  if (st_ == nullptr) return Decline(wire::kDeclMem);
  SlotGrant g;
  if (!GrantSlot(static_cast<pid_t>(p.pid), p.station_nonce, ring, token_,
                 &g)) {
    Arena::Get().Free(st_);
    st_ = nullptr;
    return Decline(errno == ENOMEM ? wire::kDeclMem : wire::kDeclNoSmcdDev);
  }
  granted_ = true;
  seg_ = g.seg;
  slot_ = g.slot;
  link_nonce_ = g.link_nonce;
  wire::Accept a;
  a.peer_id = HostPeerId();
  a.server_pid = static_cast<uint32_t>(sys::CachedPid());
  a.link_nonce = g.link_nonce;
  a.segment_id = g.seg->id();
  a.slot = g.slot;
  a.conn_token = token_;
  a.c2s_size_code = wire::CompressRingSize(ring);
  a.s2c_size_code = a.c2s_size_code;
  a.first_contact = g.first_contact;
  if (!SendClcMessage(fd_, a)) {
    reason_ = wire::kDeclIntErr;
    return HsResult::kReset;
  }
  return HsResult::kWantRead;
}

HsResult ServerHandshake::OnConfirm(const wire::Confirm& c) {
  if (remote_ || c.smcr) {
    if (remote_ && c.smcr) return OnConfirmRemote(c);
    reason_ = wire::kDeclSyncErr;
    return HsResult::kReset;
  }
  if (c.link_nonce != link_nonce_ || c.segment_id != seg_->id() ||
      c.slot != slot_ || c.conn_token != token_) {
    reason_ = wire::kDeclSyncErr;
    return HsResult::kReset;
  }
  st_->flags.fetch_or(kConfirmed, std::memory_order_acq_rel);
  Conn::Setup s;
  s.tcp_fd = fd_;
  s.side = shm::Side::kServer;
  s.st = st_;
  s.seg = seg_;
  s.slot = slot_;
  conn_ = std::make_unique<Conn>(s);
  return HsResult::kDone;
}

}  // namespace usmc::engine
