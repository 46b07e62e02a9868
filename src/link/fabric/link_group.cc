// LinkGroup: creation, regions, and setting up the first link.
#include "link/fabric/link_group.h"

#include <cerrno>
#include <cstdlib>

#include "link/fabric/bytes.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::fabric {

namespace {

uint32_t EnvMs(const char* name, uint32_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long n = std::strtoul(v, &end, 10);
  if (*end != '\0' || n == 0 || n > 3600u * 1000u) return fallback;
  return static_cast<uint32_t>(n);
}

}  // namespace

LinkGroup::LinkGroup(const GroupOptions& opt, GroupHandler* handler)
    : opt_(opt), h_(handler), policy_(PolicyFromEnv(opt.provider)) {
  keepalive_ms_ = opt.keepalive_ms != 0
                      ? opt.keepalive_ms
                      : EnvMs("USMC_FABRIC_KEEPALIVE_MS", 30000);
  const uint32_t wait_default = keepalive_ms_ < 2000 ? keepalive_ms_ : 2000;
  probe_wait_ms_ = opt.probe_wait_ms != 0
                       ? opt.probe_wait_ms
                       : EnvMs("USMC_FABRIC_PROBE_WAIT_MS", wait_default);
  readd_ms_ =
      opt.readd_ms != 0 ? opt.readd_ms : EnvMs("USMC_FABRIC_READD_MS", 1000);
}

LinkGroup::~LinkGroup() {
  for (Slot& s : slots_) s.link.reset();
}

std::unique_ptr<LinkGroup> LinkGroup::Create(const GroupOptions& opt,
                                             GroupHandler* handler,
                                             std::string* err) {
  if (handler == nullptr || opt.local_addrs[0].empty()) {
    *err = "a handler and the address of link 0 are required";
    return nullptr;
  }
  for (const std::string& a : opt.local_addrs) {
    EpAddr probe;
    if (!a.empty() && !ParseIp(a, 0, &probe)) {
      *err = "bad local address '" + a + "'";
      return nullptr;
    }
  }
  std::unique_ptr<LinkGroup> g(new LinkGroup(opt, handler));
  if (g->policy_.candidates.empty()) {
    *err = g->policy_.rejected.empty()
               ? "no fabric provider allowed"
               : g->policy_.rejected +
                     ": software provider refused (USMC_FABRIC_ALLOW_TCP=1)";
    return nullptr;
  }
  g->token_ = opt.role == Role::kServer ? sys::Random64() : 0;
  return g;
}

int LinkGroup::RegisterRegion(void* addr, size_t len, bool remote,
                              uint32_t* id) {
  if (addr == nullptr || len == 0 || len > kMaxRegionBytes) return -EINVAL;
  if (regions_.size() >= kMaxRegions) return -ENOSPC;
  const uint32_t rid = static_cast<uint32_t>(regions_.size());
  regions_.push_back({addr, len, remote, true, 0});
  for (Slot& s : slots_) {
    std::string err;
    if (s.link && !s.link->RegisterRegion(rid, addr, len, remote, &err)) {
      USMC_LOG("fabric: region %u: %s", rid, err.c_str());
      for (Slot& u : slots_) {
        if (u.link) u.link->UnregisterRegion(rid);
      }
      regions_.back().live = false;
      return -ENOMEM;
    }
  }
  if (remote) {
    for (int i = 0; i < kMaxLinks; ++i) {
      if (slots_[i].phase != Phase::kConfirming &&
          slots_[i].phase != Phase::kActive) {
        continue;
      }
      const LocalMr* mr = slots_[i].link->Mr(rid);
      LlcMsg m{.type = MsgType::kConfirmRkey,
               .link_id = static_cast<uint8_t>(i)};
      m.region_id = rid;
      m.rkey = mr->key;
      m.base = mr->base;
      m.length = len;
      SendLlc(m, i);
    }
  }
  *id = rid;
  return 0;
}

void LinkGroup::UnregisterRegion(uint32_t id) {
  if (id >= regions_.size() || !regions_[id].live) return;
  regions_[id].live = false;
  if (regions_[id].remote) {
    LlcMsg m{.type = MsgType::kDeleteRkey};
    m.region_id = id;
    const int via = AnyActive();
    if (via >= 0) SendLlc(m, via);
  }
  for (Slot& s : slots_) {
    if (s.link) s.link->UnregisterRegion(id);
  }
}

bool LinkGroup::RegionConfirmed(uint32_t id) const {
  if (id >= regions_.size() || !regions_[id].live) return false;
  for (int i = 0; i < kMaxLinks; ++i) {
    if (slots_[i].phase == Phase::kActive &&
        (regions_[id].confirmed & (1u << i)) == 0) {
      return false;
    }
  }
  return true;
}

bool LinkGroup::PeerRegionOnLink(uint32_t id, int i) const {
  auto it = remote_.find(id);
  return it != remote_.end() && i >= 0 && i < kMaxLinks &&
         (it->second.mask & (1u << i)) != 0;
}

bool LinkGroup::RegisterAll(FabricLink& link, std::string* err) {
  for (uint32_t id = 0; id < regions_.size(); ++id) {
    const LocalRegion& r = regions_[id];
    if (r.live && !link.RegisterRegion(id, r.addr, r.len, r.remote, err)) {
      return false;
    }
  }
  return true;
}

// Opens link i on local interface i: listening (peer == nullptr) or
// connecting toward `peer` (the connect itself is up to the caller).
bool LinkGroup::OpenSlot(int i, const EpAddr* peer, std::string* err) {
  EpAddr src;
  if (opt_.local_addrs[i].empty() || !ParseIp(opt_.local_addrs[i], 0, &src)) {
    *err = "no local address for link " + std::to_string(i);
    return false;
  }
  fi_info* info = nullptr;
  if (provider_.empty()) {
    info = SelectInfo(policy_, src, peer, &provider_, err);
  } else {
    info = GetInfo(provider_, src, peer, err);
  }
  if (info == nullptr) return false;
  auto link =
      FabricLink::Open(info, static_cast<uint8_t>(i), opt_.wait_fd, err);
  if (!link || !RegisterAll(*link, err)) return false;
  Slot& s = slots_[i];
  s = Slot{};
  s.link = std::move(link);
  s.phase = Phase::kSetup;
  s.deadline_ns = sys::NowNs() + opt_.connect_timeout_ms * 1000000ull;
  eq_due_ = true;
  return true;
}

// After a link connected: our keys for it, before anything that makes the
// peer use it (the link delivers in order).
void LinkGroup::AnnounceRegions(int i) {
  FabricLink& link = *slots_[i].link;
  for (uint32_t id = 0; id < regions_.size(); ++id) {
    const LocalRegion& r = regions_[id];
    const LocalMr* mr = link.Mr(id);
    if (!r.live || !r.remote || mr == nullptr) continue;
    LlcMsg m{.type = MsgType::kConfirmRkey, .link_id = static_cast<uint8_t>(i)};
    m.region_id = id;
    m.rkey = mr->key;
    m.base = mr->base;
    m.length = r.len;
    SendLlc(m, i);
  }
}

void LinkGroup::Activate(int i) {
  Slot& s = slots_[i];
  s.phase = Phase::kActive;
  s.probe_ns = 0;
  ++counters_.links_added;
  if (primary_ < 0 || !LinkActive(primary_)) primary_ = i;
  USMC_LOG("fabric: link %d up (%s, %s), %d active", i, provider_.c_str(),
           s.link->local_addr().ToString().c_str(), ActiveLinks());
  if (opt_.role == Role::kServer) next_add_ns_ = sys::NowNs();
  h_->OnLinkUp(static_cast<uint8_t>(i));
}

bool LinkGroup::FillAddress(int i, LinkAddress* out, std::string* err) const {
  for (uint32_t id = 0; id < regions_.size(); ++id) {
    const LocalMr* mr = slots_[i].link->Mr(id);
    if (!regions_[id].live || !regions_[id].remote || mr == nullptr) continue;
    out->link_id = static_cast<uint8_t>(i);
    out->provider = ProviderFromName(provider_);
    out->region_id = id;
    out->token = token_;
    out->rkey = mr->key;
    out->base = mr->base;
    out->length = regions_[id].len;
    if (out->provider == Provider::kNone) {
      *err = "provider " + provider_ + " has no wire id";
      return false;
    }
    return true;
  }
  *err = "no remote-writable region registered";
  return false;
}

bool LinkGroup::LearnRegion(const LinkAddress& a) {
  RemoteRegion& rr = remote_[a.region_id];
  if (rr.mask != 0 && rr.length != a.length) return false;
  rr.length = a.length;
  rr.keys[a.link_id] = {a.rkey, a.base, a.length};
  rr.mask |= static_cast<uint8_t>(1u << a.link_id);
  return true;
}

bool LinkGroup::Offer(LinkAddress* out, std::string* err) {
  if (opt_.role != Role::kServer || slots_[0].link) {
    *err = "Offer: not a fresh server group";
    return false;
  }
  if (!OpenSlot(0, nullptr, err)) return false;
  Slot& s = slots_[0];
  s.nonce = token_;
  s.deadline_ns = UINT64_MAX;  // Accept() bounds the wait
  if (!s.link->Listen(&out->addr, err)) return false;
  return FillAddress(0, out, err);
}

bool LinkGroup::Accept(const LinkAddress& answer, int timeout_ms,
                       std::string* err) {
  if (answer.provider != ProviderFromName(provider_) || answer.link_id != 0 ||
      answer.token != token_ || !LearnRegion(answer)) {
    *err = "client answer does not match the offer";
    return false;
  }
  return WaitActive(0, timeout_ms, err);
}

bool LinkGroup::Answer(const LinkAddress& offer, LinkAddress* out,
                       std::string* err) {
  if (opt_.role != Role::kClient || slots_[0].link || offer.link_id != 0 ||
      !offer.addr.Routable()) {
    *err = "Answer: not a fresh client group";
    return false;
  }
  const std::string prov = ProviderName(offer.provider);
  bool allowed = false;
  for (const std::string& c : policy_.candidates) allowed |= c == prov;
  if (!allowed) {
    *err = "server offers provider " + prov + ", which policy refuses";
    return false;
  }
  provider_ = prov;
  token_ = offer.token;
  if (!OpenSlot(0, &offer.addr, err) || !LearnRegion(offer)) return false;
  slots_[0].nonce = token_;
  if (!FillAddress(0, out, err)) return false;
  out->addr = slots_[0].link->local_addr();
  return true;
}

bool LinkGroup::Join(int timeout_ms, std::string* err) {
  Slot& s = slots_[0];
  if (!s.link || s.phase != Phase::kSetup) {
    *err = "Join without Answer";
    return false;
  }
  uint8_t cm[16] = {};
  bytes::Put32(cm, kLinkAddressMagic);
  cm[4] = kLinkAddressVersion;
  cm[5] = 0;
  bytes::Put64(cm + 8, s.nonce);
  if (!s.link->Connect(cm, err)) return false;
  s.deadline_ns = UINT64_MAX;
  return WaitActive(0, timeout_ms, err);
}

bool LinkGroup::WaitActive(int i, int timeout_ms, std::string* err) {
  const uint64_t end = sys::NowNs() + uint64_t(timeout_ms) * 1000000ull;
  while (slots_[i].phase != Phase::kActive) {
    if (down_ || !slots_[i].link) {
      *err = "link failed while being set up";
      return false;
    }
    if (sys::NowNs() >= end) {
      *err = "timed out setting up the link";
      return false;
    }
    Wait(10);
  }
  return true;
}

bool LinkGroup::EstablishOverFd(int fd, int timeout_ms, std::string* err) {
  LinkAddress mine;
  LinkAddress peer;
  if (opt_.role == Role::kServer) {
    return Offer(&mine, err) && SendLinkAddress(fd, mine, timeout_ms, err) &&
           RecvLinkAddress(fd, &peer, timeout_ms, err) &&
           Accept(peer, timeout_ms, err);
  }
  return RecvLinkAddress(fd, &peer, timeout_ms, err) &&
         Answer(peer, &mine, err) &&
         SendLinkAddress(fd, mine, timeout_ms, err) && Join(timeout_ms, err);
}

}  // namespace usmc::fabric
