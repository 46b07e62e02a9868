// The data path of a cross-host connection: posting writes and CDCs for what
// the Conn published, applying what the peer sends, failover trimming, close.
#include "engine/remote_group.h"

#include <errno.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>

#include "util/log.h"
#include "util/sys.h"
#include "wire/cdc.h"

namespace usmc::engine {

using wire::Cursor;

namespace {

constexpr uint64_t kFenceOffsetInSlot = 2048;    // unused part of a SlotHeader
constexpr uint64_t kCloseLingerNs = 2000000000;  // at most 2 s per close()
constexpr uint32_t kPeerFlags = wire::kCdcPeerDoneWriting |
                                wire::kCdcPeerConnClosed |
                                wire::kCdcPeerConnAbort;
std::atomic<uint32_t> g_next_group_id{1};

// Drives the group from the calling thread (its lock held) until done() or
// the deadline: a close or an exit that waits for delivery.
template <typename Done>
void ProgressUntil(RemoteGroup* g, uint64_t deadline_ns, Done done) {
  while (g->phase == RemoteGroup::Phase::kUp && sys::NowNs() < deadline_ns &&
         !done()) {
    g->RetryDirty();
    if (g->lg->Poll() == 0) sched_yield();
  }
}

uint32_t StreamPos(Cursor c, uint32_t ring) {
  return static_cast<uint32_t>(uint64_t{c.wrap()} * ring + c.count());
}

// A CDC carries 16 bits of wrap: the full value is the one nearest above the
// last we applied. A hostile value just lands far away and fails validation.
uint64_t Rebuild(uint64_t last_word, uint16_t wrap16, uint32_t count) {
  Cursor last = Cursor::FromWord(last_word);
  uint32_t delta =
      static_cast<uint16_t>(wrap16 - static_cast<uint16_t>(last.wrap()));
  return Cursor(last.wrap() + delta, count).ToWord();
}

void Wake(int fd) {
  uint64_t one = 1;
  sys::Write(fd, &one, sizeof one);
  CountThread(stats::kTDoorbellsSent);
}

}  // namespace

RemoteGroup::RemoteGroup(fabric::Role r, uint64_t pid_host, uint32_t pid_peer,
                         uint64_t n)
    : role(r),
      peer_id(pid_host),
      peer_pid(pid_peer),
      nonce(n),
      id(g_next_group_id.fetch_add(1) ^ (sys::CachedPid() << 12)),
      owner(sys::CachedPid()) {}

RemoteGroup::~RemoteGroup() {
  lg.reset();  // unregisters before the segments go
}

bool RemoteGroup::Reserve(uint32_t ring_bytes, shm::Side side,
                          RemoteSlot* out) {
  uint32_t token = 0;
  do {
    token = static_cast<uint32_t>(sys::FastRandom64()) | 1u;
  } while (conns.count(token) != 0);
  Seg* where = nullptr;
  int slot = -1;
  for (Seg& s : segs) {
    if (s.seg->ring_bytes() != ring_bytes) continue;
    slot = s.seg->AllocSlot(token);
    if (slot >= 0) {
      where = &s;
      break;
    }
  }
  if (where == nullptr) {
    uint32_t slots = ring_bytes >= (1u << 20) ? 4 : 16;
    auto seg = shm::Segment::Create(static_cast<uint32_t>(segs.size()), slots,
                                    ring_bytes);
    uint32_t region = 0;
    if (!seg || lg->RegisterRegion(seg->base(), seg->bytes(), true, &region)) {
      return false;
    }
    Arena::Get().Count(stats::kSegmentsCreated);
    slot = seg->AllocSlot(token);
    segs.push_back({std::move(seg), region});
    where = &segs.back();
  }
  auto* rc = new RemoteConn;
  rc->g = this;
  rc->seg = where->seg.get();
  rc->slot = static_cast<uint32_t>(slot);
  rc->region = where->region;
  rc->token = token;
  rc->ring = ring_bytes;
  rc->side = side;
  bool client = side == shm::Side::kClient;
  shm::SlotHeader* h = rc->seg->slot(rc->slot);
  rc->tx = client ? &h->c2s : &h->s2c;
  rc->rx = client ? &h->s2c : &h->c2s;
  rc->tx_data =
      client ? rc->seg->ring_c2s(rc->slot) : rc->seg->ring_s2c(rc->slot);
  conns[token] = rc;
  *out = {this, rc->seg, rc, {rc->region, rc->slot, token}};
  return true;
}

void RemoteGroup::Unreserve(RemoteConn* rc) {
  rc->dead = true;
  Finish(rc);
}

bool RemoteGroup::Bind(RemoteConn* rc, const RemoteEnd& peer, int tcp_fd) {
  rc->peer = peer;
  // The peer's receive ring is the one we send into: c2s when we are the
  // client. Same layout on both ends.
  bool client = rc->side == shm::Side::kClient;
  rc->peer_rx_off = shm::Segment::RingOffset(peer.slot, rc->ring, client);
  rc->peer_fence_off =
      shm::Segment::SlotOffset(peer.slot, rc->ring) + kFenceOffsetInSlot;
  rc->dup_fd = sys::Fcntl(tcp_fd, F_DUPFD_CLOEXEC, 0);
  rc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (rc->dup_fd < 0 || rc->wake_fd < 0) return false;
  rc->bound = true;
  return true;
}

RemoteConn* RemoteGroup::Find(uint32_t token) const {
  auto it = conns.find(token);
  return it == conns.end() ? nullptr : it->second;
}

// Posts the bytes the Conn produced since the last call, at the same ring
// positions in the peer's slot. False when something must wait (dirty).
bool RemoteGroup::PostData(RemoteConn* rc) {
  Cursor prod =
      Cursor::FromWord(rc->tx->p.prod.load(std::memory_order_acquire));
  Cursor w = Cursor::FromWord(rc->written);
  int64_t n = Cursor::Distance(w, prod, rc->ring);
  if (n < 0) {  // our own cursor: cannot happen unless memory is corrupt
    Abort(rc);
    return false;
  }
  while (n > 0) {
    uint32_t pos = w.count();
    uint32_t chunk =
        static_cast<uint32_t>(std::min<int64_t>(n, rc->ring - pos));
    fabric::WriteRequest req;
    req.local = rc->tx_data + pos;
    req.len = chunk;
    req.local_region = rc->region;
    req.remote_region = rc->peer.region;
    req.remote_offset = rc->peer_rx_off + pos;
    req.cq_data = rc->peer.token;
    req.cookie = (uint64_t{rc->token} << 32) | StreamPos(w, rc->ring);
    int r = lg->Write(req);
    if (r == -EAGAIN) return false;
    if (r < 0) {
      USMC_LOG("fabric: conn %08x: write refused (%d): reset", rc->token, r);
      Abort(rc);
      return false;
    }
    w = w.Advance(chunk, rc->ring);
    rc->written = w.ToWord();
    n -= chunk;
  }
  return true;
}

bool RemoteGroup::PostCdc(RemoteConn* rc) {
  uint64_t cons = rc->rx->c.cons.load(std::memory_order_acquire);
  uint32_t flags =
      rc->tx->p.conn_flags.load(std::memory_order_acquire) & kPeerFlags;
  if (rc->written == rc->told_prod && cons == rc->told_cons &&
      flags == rc->told_flags) {
    return true;
  }
  Cursor p = Cursor::FromWord(rc->written), c = Cursor::FromWord(cons);
  fabric::CdcMsg m;
  m.seqno = ++rc->seq;
  m.token = rc->peer.token;
  m.prod_wrap = static_cast<uint16_t>(p.wrap());
  m.prod_count = p.count();
  m.cons_wrap = static_cast<uint16_t>(c.wrap());
  m.cons_count = c.count();
  m.conn_flags = static_cast<uint8_t>(flags);
  int r = lg->SendCdc(m);
  if (r == -EAGAIN) return false;
  if (r < 0) {
    Abort(rc);
    return false;
  }
  rc->told_prod = rc->written;
  rc->told_cons = cons;
  rc->told_flags = flags;
  return true;
}

// The last write of a closed connection: its completion means every write and
// CDC before it reached the peer, so the TCP connection may now end.
void RemoteGroup::PostFence(RemoteConn* rc) {
  fabric::WriteRequest req;
  req.local = &rc->seg->slot(rc->slot)->c2s_high;  // any registered word
  req.len = sizeof(uint64_t);
  req.local_region = rc->region;
  req.remote_region = rc->peer.region;
  req.remote_offset = rc->peer_fence_off;
  req.cq_data = rc->peer.token;
  req.cookie = uint64_t{rc->token} << 32;
  int r = lg->Write(req);
  if (r == -EAGAIN) return;
  if (r < 0) {
    Abort(rc);
    return;
  }
  rc->fence_posted = true;
}

void RemoteGroup::Flush(RemoteConn* rc) {
  if (rc->dead || !rc->bound) return;
  if (phase != Phase::kUp || lg->primary() < 0 ||
      !lg->PeerRegionOnLink(rc->peer.region, lg->primary())) {
    rc->dirty = phase != Phase::kDown;
    return;
  }
  bool ok = PostData(rc);
  if (rc->dead) return;
  ok = PostCdc(rc) && ok;
  if (rc->dead) return;
  rc->dirty = !ok;
  if (ok && rc->closing && !rc->fence_posted) {
    PostFence(rc);
    rc->dirty = !rc->fence_posted && conns.count(rc->token) != 0;
  }
}

void RemoteGroup::RetryDirty() {
  std::vector<RemoteConn*> todo;
  for (auto& [token, rc] : conns)
    if (rc->dirty) todo.push_back(rc);
  for (RemoteConn* rc : todo) Flush(rc);
}

void RemoteGroup::Apply(RemoteConn* rc, const fabric::CdcMsg& m) {
  uint64_t prod = Rebuild(rc->rx->p.prod.load(std::memory_order_relaxed),
                          m.prod_wrap, m.prod_count);
  uint64_t cons = Rebuild(rc->tx->c.cons.load(std::memory_order_relaxed),
                          m.cons_wrap, m.cons_count);
  rc->rx->p.prod.store(prod, std::memory_order_release);
  rc->tx->c.cons.store(cons, std::memory_order_release);
  rc->rx->p.conn_flags.fetch_or(m.conn_flags & kPeerFlags,
                                std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (rc->closing) {
    MaybeFinish(rc);
    return;
  }
  // As the ringing side on shared memory: only an exchange clears a flag.
  bool wake = false;
  if (rc->rx->c.waiting_for_data.load(std::memory_order_relaxed) != 0)
    wake |= rc->rx->c.waiting_for_data.exchange(0) != 0;
  if (rc->tx->p.waiting_for_space.load(std::memory_order_relaxed) != 0)
    wake |= rc->tx->p.waiting_for_space.exchange(0) != 0;
  if (wake && rc->wake_fd >= 0) Wake(rc->wake_fd);
}

void RemoteGroup::OnCdc(uint8_t, const fabric::CdcMsg& m) {
  RemoteConn* rc = Find(m.token);
  if (rc == nullptr || rc->dead) return;  // closed meanwhile, or forged
  if (rc->peer_seq_valid && static_cast<int16_t>(m.seqno - rc->peer_seq) <= 0) {
    return;  // sent again after a failover: already applied
  }
  rc->peer_seq = m.seqno;
  rc->peer_seq_valid = true;
  Apply(rc, m);
}

void RemoteGroup::OnWriteComplete(const fabric::WriteRequest& w) {
  RemoteConn* rc = Find(static_cast<uint32_t>(w.cookie >> 32));
  if (rc == nullptr || !rc->fence_posted ||
      w.remote_offset != rc->peer_fence_off) {
    return;
  }
  // Everything we sent is at the peer: the FIN may follow it now.
  rc->fence_done = true;
  sys::Close(rc->dup_fd);
  rc->dup_fd = -1;
  MaybeFinish(rc);
}

// The slot is reused only when neither side can write into it any more: our
// fence completed and the peer's close flags arrived (it writes nothing after
// them), or the connection died.
void RemoteGroup::MaybeFinish(RemoteConn* rc) {
  if (!rc->closing) return;
  uint32_t peer = rc->rx->p.conn_flags.load(std::memory_order_acquire);
  bool peer_closed =
      peer & (wire::kCdcPeerConnClosed | wire::kCdcPeerConnAbort);
  if (rc->dead || (rc->fence_done && peer_closed)) Finish(rc);
}

size_t RemoteGroup::OnReissue(const fabric::WriteRequest& w) {
  RemoteConn* rc = Find(static_cast<uint32_t>(w.cookie >> 32));
  if (rc == nullptr || rc->dead) return w.len;  // nobody waits for it
  if (w.remote_offset == rc->peer_fence_off) return 0;
  // The write began at stream position `start` (cookie) and may already have
  // been trimmed by an earlier failover; skip what the peer consumed.
  uint32_t orig_pos = static_cast<uint32_t>(w.cookie) % rc->ring;
  uint32_t now_pos = static_cast<uint32_t>(w.remote_offset - rc->peer_rx_off);
  uint32_t start = static_cast<uint32_t>(w.cookie) + (now_pos - orig_pos);
  Cursor cons =
      Cursor::FromWord(rc->tx->c.cons.load(std::memory_order_acquire));
  int32_t consumed = static_cast<int32_t>(StreamPos(cons, rc->ring) - start);
  if (consumed <= 0) return 0;
  return std::min<size_t>(static_cast<size_t>(consumed), w.len);
}

void RemoteGroup::OnLinkUp(uint8_t link_id) {
  USMC_LOG("fabric: group %08x link %u up (%d active)", id, link_id,
           lg->ActiveLinks());
  Arena::Get().Count(stats::kLinksAdded);
  PublishLinks();
}

void RemoteGroup::OnLinkDown(uint8_t link_id, uint32_t reason) {
  USMC_LOG("fabric: group %08x link %u down (reason %x, %d left)", id, link_id,
           reason, lg->ActiveLinks());
  Arena::Get().Count(stats::kLinkFailures);
  if (lg->ActiveLinks() > 0) {
    Arena::Get().Count(stats::kFailovers);
    Resync();
  }
  PublishLinks();
}

// After a failover, as SMC re-validates every connection: a CDC that completed
// on the dead link may never have been read, so each connection tells its
// current state again, once the re-issued writes are posted (SendCdc waits for
// them), by the next flush.
void RemoteGroup::Resync() {
  for (auto& [token, rc] : conns) {
    if (rc->dead || !rc->bound) continue;
    rc->told_prod = ~0ull;
    rc->dirty = true;
  }
}

void RemoteGroup::OnGroupDown(uint32_t reason) { Fail(reason); }

void RemoteGroup::PublishLinks() {
  uint32_t n = lg ? static_cast<uint32_t>(lg->ActiveLinks()) : 0;
  if (phase == Phase::kDown) n = 0;
  for (auto& [token, rc] : conns)
    if (rc->st != nullptr) rc->st->id.links.store(n, std::memory_order_relaxed);
}

// No way to reach the peer's memory: the connection fails as TCP fails, and
// the reset on the TCP connection wakes both ends.
void RemoteGroup::Abort(RemoteConn* rc) {
  if (rc->dead) return;
  rc->dead = true;
  rc->dirty = false;
  uint32_t peer = rc->rx->p.conn_flags.load(std::memory_order_acquire);
  if (peer & (wire::kCdcPeerConnClosed | wire::kCdcPeerConnAbort)) {
    // The peer closed before its links went (a process that exits after
    // closing): what it wrote stays readable, then EOF, as over TCP.
    if (rc->wake_fd >= 0) Wake(rc->wake_fd);
    MaybeFinish(rc);
    return;
  }
  rc->rx->p.conn_flags.fetch_or(wire::kCdcPeerConnAbort,
                                std::memory_order_release);
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  if (rc->dup_fd >= 0) sys::Connect(rc->dup_fd, &unspec, sizeof unspec);
  if (rc->wake_fd >= 0) Wake(rc->wake_fd);
  MaybeFinish(rc);
}

void RemoteGroup::Fail(uint32_t reason) {
  if (phase == Phase::kDown) return;
  USMC_LOG("fabric: group %08x down (reason %x): %zu connections abort", id,
           reason, conns.size());
  phase = Phase::kDown;
  std::vector<RemoteConn*> all;
  for (auto& [token, rc] : conns) all.push_back(rc);
  for (RemoteConn* rc : all) Abort(rc);
  PublishLinks();
}

// Like close() on TCP, which leaves the kernel to deliver what was sent: the
// bytes must reach the peer before this process may go, so the close waits
// (bounded) for its fence write, driving the group itself.
void RemoteGroup::Closed(RemoteConn* rc) {
  rc->st = nullptr;
  rc->closing = true;
  if (rc->dead || phase == Phase::kDown) {
    rc->dead = true;
    Finish(rc);
    return;
  }
  uint32_t token = rc->token;
  Flush(rc);
  ProgressUntil(this, sys::NowNs() + kCloseLingerNs, [&] {
    auto it = conns.find(token);  // Finish may have deleted it
    return it == conns.end() || it->second->fence_done || it->second->dead;
  });
}

void RemoteGroup::Drain(uint64_t deadline_ns) {
  ProgressUntil(this, deadline_ns, [&] {
    bool pending = std::any_of(conns.begin(), conns.end(), [](auto& e) {
      const RemoteConn* rc = e.second;
      return rc->bound && !rc->dead &&
             (rc->dirty ||
              rc->written != rc->tx->p.prod.load(std::memory_order_acquire));
    });
    return !pending && lg->Quiet();
  });
}

// The connection is over on both paths: the TCP connection may end and the
// slot is free for the next one.
void RemoteGroup::Finish(RemoteConn* rc) {
  conns.erase(rc->token);
  if (rc->dup_fd >= 0) sys::Close(rc->dup_fd);
  if (rc->wake_fd >= 0) sys::Close(rc->wake_fd);
  shm::SlotHeader* h = rc->seg->slot(rc->slot);
  h->c2s_high.store(0, std::memory_order_relaxed);
  h->s2c_high.store(0, std::memory_order_relaxed);
  rc->seg->ReleaseSlot(rc->slot, shm::Side::kClient);
  rc->seg->ReleaseSlot(rc->slot, shm::Side::kServer);
  delete rc;
}

}  // namespace usmc::engine
