// The cross-host (SMC-R) steps of the CLC handshake. The Accept names the
// server's slot (region, slot, token) and the group (nonce); the Confirm
// names the client's. On first contact the two carry the fabric addresses of
// the group's first link, and both ends connect it before the connection is
// used; later connections reuse the group.
#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "engine/handshake.h"
#include "engine/remote.h"
#include "util/log.h"
#include "util/sys.h"
#include "wire/decline.h"

namespace usmc::engine {

namespace {

struct LocalAddr {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  explicit LocalAddr(int fd) {
    sys::GetSockName(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

// The handshake agreed: the reserved slot is bound to the peer's end and
// becomes a Conn. kDone, or kReset with *reason (the slot is given back).
HsResult BindConn(int fd, shm::Side side, const RemoteSlot& s,
                  const RemoteEnd& peer, bool* held, std::unique_ptr<Conn>* out,
                  uint32_t* reason) {
  RemoteConn* rc = BindRemote(s, peer, fd);
  if (rc == nullptr) {
    *reason = wire::kDeclErrRtok;
    return HsResult::kReset;
  }
  *out = MakeConn(fd, side, s.seg, s.end.slot, rc);
  if (!*out) {
    *reason = wire::kDeclMem;
    return HsResult::kReset;  // *held: the destructor gives the slot back
  }
  *held = false;
  return HsResult::kDone;
}

}  // namespace

HsResult ClientHandshake::OnHello(const uint8_t* msg, size_t len) {
  awaiting_hello_ = false;
  wire::Proposal hello;
  if (wire::Decode({msg, len}, &hello) != wire::ParseStatus::kOk ||
      !hello.smcr) {
    return Decline(wire::kDeclClcMalformed);
  }
  return SendProposal();
}

namespace {

// The SMC-R Proposal: the client's, and the server's hello.
bool SendRemoteProposal(int fd, uint32_t ring_bytes) {
  wire::Proposal p;
  p.smcr = true;
  p.peer_id = HostPeerId();
  p.pid = static_cast<uint32_t>(sys::CachedPid());
  p.station_nonce = sys::FastRandom64();
  p.rx_size_code = wire::CompressRingSize(ring_bytes);
  p.tx_size_code = p.rx_size_code;
  return SendClcMessage(fd, p);
}

}  // namespace

HsResult ClientHandshake::SendProposal() {
  if (SendRemoteProposal(fd_, ring_bytes_)) return HsResult::kWantRead;
  reason_ = wire::kDeclIntErr;
  return HsResult::kReset;
}

bool ServerHandshake::SendHello() {
  return SendRemoteProposal(fd_, ring_bytes_);
}

HsResult ClientHandshake::OnAcceptRemote(const wire::Accept& a) {
  uint32_t ring = wire::DecompressRingSize(a.c2s_size_code);
  if (!shm::Segment::ValidRingBytes(ring) ||
      wire::DecompressRingSize(a.s2c_size_code) != ring || a.conn_token == 0) {
    return Decline(wire::kDeclClcMalformed);
  }
  LocalAddr local(fd_);
  std::string err;
  RemoteGroup* g = ClientGroup(a.peer_id, a.server_pid, a.link_nonce,
                               local.sa(), local.len, &err);
  if (g == nullptr) {
    USMC_LOG("fd=%d no fabric for the cross-host link: %s", fd_, err.c_str());
    return Decline(wire::kDeclNoSmcrDev);
  }
  if (!ReserveRemoteSlot(g, ring, shm::Side::kClient, &rslot_))
    return Decline(wire::kDeclMem);
  rslot_held_ = true;
  wire::Confirm c;
  c.smcr = true;
  c.peer_id = HostPeerId();
  c.link_nonce = a.link_nonce;
  c.segment_id = rslot_.end.region;
  c.slot = rslot_.end.slot;
  c.conn_token = rslot_.end.token;
  if (a.first_contact &&
      !AnswerGroup(g, a.link.data(), a.link_len, c.link.data(), c.link.size(),
                   &c.link_len, &err)) {
    USMC_LOG("fd=%d first link not answered: %s", fd_, err.c_str());
    AbandonGroup(g);
    return Decline(wire::kDeclNoSmcrDev);
  }
  if (!SendClcMessage(fd_, c)) {
    reason_ = wire::kDeclIntErr;
    return HsResult::kReset;
  }
  if (a.first_contact && !JoinGroup(g, &err)) {
    USMC_LOG("fd=%d first link did not come up: %s", fd_, err.c_str());
    AbandonGroup(g);
    reason_ = wire::kDeclErrRdyLnk;
    return HsResult::kReset;
  }
  return BindConn(fd_, shm::Side::kClient, rslot_,
                  {a.segment_id, a.slot, a.conn_token}, &rslot_held_, &conn_,
                  &reason_);
}

HsResult ServerHandshake::OnProposalRemote(const wire::Proposal& p) {
  if (refuse_remote_ != 0) return Decline(refuse_remote_);
  uint32_t want = std::max(wire::DecompressRingSize(p.rx_size_code),
                           wire::DecompressRingSize(p.tx_size_code));
  uint32_t ring = std::clamp(std::max(want, ring_bytes_), shm::kMinRingBytes,
                             shm::kMaxRingBytes);
  LocalAddr local(fd_);
  std::string err;
  RemoteGroup* g = ServerGroup(p.peer_id, p.pid, local.sa(), local.len,
                               &first_contact_, &err);
  if (g == nullptr) {
    USMC_LOG("fd=%d no fabric for the cross-host link: %s", fd_, err.c_str());
    return Decline(wire::kDeclNoSmcrDev);
  }
  if (!ReserveRemoteSlot(g, ring, shm::Side::kServer, &rslot_))
    return Decline(wire::kDeclMem);
  rslot_held_ = true;
  remote_ = true;
  wire::Accept a;
  a.smcr = true;
  a.peer_id = HostPeerId();
  a.server_pid = static_cast<uint32_t>(sys::CachedPid());
  a.link_nonce = GroupNonce(g);
  a.segment_id = rslot_.end.region;
  a.slot = rslot_.end.slot;
  a.conn_token = rslot_.end.token;
  a.c2s_size_code = wire::CompressRingSize(ring);
  a.s2c_size_code = a.c2s_size_code;
  a.first_contact = first_contact_;
  if (first_contact_ &&
      !OfferGroup(g, a.link.data(), a.link.size(), &a.link_len, &err)) {
    USMC_LOG("fd=%d first link not offered: %s", fd_, err.c_str());
    ReleaseRemote();
    AbandonGroup(g);
    return Decline(wire::kDeclNoSmcrDev);
  }
  granted_ = true;
  link_nonce_ = a.link_nonce;
  if (!SendClcMessage(fd_, a)) {
    reason_ = wire::kDeclIntErr;
    return HsResult::kReset;
  }
  return HsResult::kWantRead;
}

HsResult ServerHandshake::OnConfirmRemote(const wire::Confirm& c) {
  if (c.link_nonce != link_nonce_ || c.conn_token == 0) {
    reason_ = wire::kDeclSyncErr;
    return HsResult::kReset;
  }
  std::string err;
  if (first_contact_ &&
      !AcceptGroup(rslot_.group, c.link.data(), c.link_len, &err)) {
    USMC_LOG("fd=%d first link did not come up: %s", fd_, err.c_str());
    AbandonGroup(rslot_.group);
    reason_ = wire::kDeclErrRdyLnk;
    return HsResult::kReset;
  }
  HsResult r = BindConn(fd_, shm::Side::kServer, rslot_,
                        {c.segment_id, c.slot, c.conn_token}, &rslot_held_,
                        &conn_, &reason_);
  if (r == HsResult::kDone) st_ = conn_->state();
  return r;
}

void ServerHandshake::ReleaseRemote() {
  if (!rslot_held_) return;
  rslot_held_ = false;
  ReleaseRemoteSlot(rslot_);
  if (first_contact_ && !conn_) AbandonGroup(rslot_.group);
}

}  // namespace usmc::engine
