// The engine-facing half of the cross-host link: first contact, slots, and
// the hooks Conn calls.
#include "engine/remote.h"

#include "engine/remote_group.h"
#include "link/fabric/link_address.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::engine {

namespace {

int SetupTimeoutMs() {
  return static_cast<int>(FabricSetupTimeoutNs() / 1000000);
}

bool Mine(const RemoteGroup* g) { return g->owner == sys::CachedPid(); }

bool ToBlob(const fabric::LinkAddress& a, uint8_t* out, size_t cap,
            uint8_t* len) {
  size_t n = a.Serialize({out, cap});
  *len = static_cast<uint8_t>(n);
  return n > 0 && n <= 255;
}

bool FromBlob(const uint8_t* in, uint8_t len, fabric::LinkAddress* a,
              std::string* err) {
  fabric::AddrStatus s = fabric::LinkAddress::Parse({in, len}, a);
  if (s == fabric::AddrStatus::kOk) return true;
  *err = std::string("bad link address: ") + fabric::AddrStatusName(s);
  return false;
}

// The first link is up: the progress thread takes the group over.
void GoLive(RemoteGroup* g) {
  g->phase = RemoteGroup::Phase::kUp;
  g->setup_deadline_ns = 0;
  g->PublishLinks();
  g->RetryDirty();
  KickPump();
}

}  // namespace

uint64_t GroupNonce(const RemoteGroup* g) { return g->nonce; }

bool OfferGroup(RemoteGroup* g, uint8_t* offer, size_t cap, uint8_t* len,
                std::string* err) {
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  fabric::LinkAddress a;
  if (!g->lg->Offer(&a, err)) return false;
  return ToBlob(a, offer, cap, len);
}

bool AcceptGroup(RemoteGroup* g, const uint8_t* answer, uint8_t len,
                 std::string* err) {
  fabric::LinkAddress a;
  if (!FromBlob(answer, len, &a, err)) return false;
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  if (g->phase != RemoteGroup::Phase::kSetup || g->offered) {
    *err = "group is not waiting for its first link";
    return false;
  }
  g->offered = true;
  if (!g->lg->Accept(a, SetupTimeoutMs(), err)) return false;
  GoLive(g);
  return true;
}

bool AnswerGroup(RemoteGroup* g, const uint8_t* offer, uint8_t offer_len,
                 uint8_t* answer, size_t cap, uint8_t* len, std::string* err) {
  fabric::LinkAddress a, mine;
  if (!FromBlob(offer, offer_len, &a, err)) return false;
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  if (g->phase != RemoteGroup::Phase::kSetup || g->offered) {
    *err = "a second first contact for one group";
    return false;
  }
  g->offered = true;
  return g->lg->Answer(a, &mine, err) && ToBlob(mine, answer, cap, len);
}

bool JoinGroup(RemoteGroup* g, std::string* err) {
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  if (!g->lg->Join(SetupTimeoutMs(), err)) return false;
  GoLive(g);
  return true;
}

void AbandonGroup(RemoteGroup* g) {
  std::lock_guard<std::mutex> l(g->mu);
  g->Fail(0);
}

bool ReserveRemoteSlot(RemoteGroup* g, uint32_t ring_bytes, shm::Side side,
                       RemoteSlot* out) {
  std::lock_guard<std::mutex> l(g->mu);
  if (g->phase == RemoteGroup::Phase::kDown) return false;
  FabricScope scope;
  return g->Reserve(ring_bytes, side, out);
}

void ReleaseRemoteSlot(const RemoteSlot& s) {
  std::lock_guard<std::mutex> l(s.group->mu);
  s.group->Unreserve(s.rc);
}

RemoteConn* BindRemote(const RemoteSlot& s, const RemoteEnd& peer, int tcp_fd) {
  std::lock_guard<std::mutex> l(s.group->mu);
  if (s.group->phase == RemoteGroup::Phase::kDown) return nullptr;
  return s.group->Bind(s.rc, peer, tcp_fd) ? s.rc : nullptr;
}

void AttachRecord(RemoteConn* rc, ConnState* st) {
  RemoteGroup* g = rc->g;
  std::lock_guard<std::mutex> l(g->mu);
  rc->st = st;
  st->id.lgr.store(g->id, std::memory_order_relaxed);
  g->PublishLinks();
}

void RemoteFlush(RemoteConn* rc) {
  RemoteGroup* g = rc->g;
  if (!Mine(g)) return;  // a forked child's copy
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  g->Flush(rc);
}

void RemoteSync(RemoteConn* rc) {
  RemoteGroup* g = rc->g;
  if (!Mine(g)) return;
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  if (g->phase != RemoteGroup::Phase::kUp) return;
  for (int i = 0; i < 64 && g->lg->Poll() > 0; ++i) {
  }
}

void RemoteClosed(RemoteConn* rc) {
  RemoteGroup* g = rc->g;
  if (!Mine(g)) return;
  std::lock_guard<std::mutex> l(g->mu);
  FabricScope scope;
  g->Closed(rc);
}

int RemoteWakeFd(const RemoteConn* rc) { return rc->wake_fd; }

bool RemoteMine(const RemoteConn* rc) { return Mine(rc->g); }

}  // namespace usmc::engine
