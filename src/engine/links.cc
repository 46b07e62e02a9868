#include "engine/links.h"

#include <errno.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "engine/arena.h"
#include "util/log.h"
#include "util/once.h"
#include "util/sys.h"

namespace usmc::engine {

namespace {

constexpr uint32_t kSlotsPerSegment = 64;

struct ServerLink {
  pid_t owner = 0;  // our pid when the link was made
  int conn_fd = -1;
  uint64_t nonce = 0;
  std::vector<std::unique_ptr<shm::Segment>> segments;
};

using ClientKey = std::tuple<pid_t, uint64_t,
                             uint32_t>;  // server pid, link nonce, segment id

struct Links {
  std::mutex mu;
  std::map<std::tuple<pid_t, pid_t, uint64_t>, ServerLink>
      server;  // (owner, client pid, nonce)
  std::map<ClientKey, std::unique_ptr<shm::Segment>> client;
  shm::Station station;
  pid_t station_pid = 0;
};

Links& L() {
  static constinit util::Once<Links*> links;
  return *links.Get(
      [] { return new Links(); });  // never destroyed: segments outlive exit
}

shm::Segment* SegmentWithRoom(ServerLink& link, uint32_t ring_bytes,
                              uint32_t token, int* slot) {
  for (auto& seg : link.segments) {
    if (seg->ring_bytes() != ring_bytes) continue;
    bool reused = false;
    if (int s = seg->AllocSlot(token, &reused); s >= 0) {
      if (reused) Arena::Get().Count(stats::kSlotsReused);
      *slot = s;
      return seg.get();
    }
  }
  auto seg = shm::Segment::Create(static_cast<uint32_t>(link.segments.size()),
                                  kSlotsPerSegment, ring_bytes);
  if (!seg) return nullptr;
  if (!shm::SendOffer(link.conn_fd, link.nonce, seg->id(), seg->bytes(),
                      seg->fd())) {
    USMC_LOG("link: offering a segment failed: errno %d", errno);
    return nullptr;
  }
  Arena::Get().Count(stats::kSegmentsCreated);
  *slot = seg->AllocSlot(token);
  link.segments.push_back(std::move(seg));
  return *slot >= 0 ? link.segments.back().get() : nullptr;
}

}  // namespace

bool GrantSlot(pid_t client_pid, uint64_t client_nonce, uint32_t ring_bytes,
               uint32_t token, SlotGrant* out) {
  Links& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  pid_t me = sys::CachedPid();
  auto key = std::make_tuple(me, client_pid, client_nonce);
  auto it = l.server.find(key);
  out->first_contact = it == l.server.end();
  if (out->first_contact) {
    int fd = shm::ConnectStation(client_pid, client_nonce);
    if (fd < 0) return false;
    ServerLink link;
    link.owner = me;
    link.conn_fd = fd;
    link.nonce = sys::Random64();
    it = l.server.emplace(key, std::move(link)).first;
  }
  int slot = -1;
  shm::Segment* seg = SegmentWithRoom(it->second, ring_bytes, token, &slot);
  if (seg == nullptr) return false;
  out->seg = seg;
  out->slot = static_cast<uint32_t>(slot);
  out->link_nonce = it->second.nonce;
  return true;
}

shm::Segment* FindOfferedSegment(pid_t server_pid, uint64_t link_nonce,
                                 uint32_t segment_id, int timeout_ms) {
  Links& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  ClientKey key{server_pid, link_nonce, segment_id};
  if (auto it = l.client.find(key); it != l.client.end())
    return it->second.get();
  if (!l.station.is_open() || l.station_pid != sys::CachedPid()) return nullptr;
  shm::Offer offer;
  if (!l.station.TakeOffer(link_nonce, segment_id, server_pid, timeout_ms,
                           &offer))
    return nullptr;
  auto seg = shm::Segment::Attach(segment_id, offer.memfd, offer.segment_bytes);
  if (!seg) return nullptr;
  shm::Segment* raw = seg.get();
  l.client.emplace(key, std::move(seg));
  return raw;
}

shm::Station* LocalStation() {
  Links& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  pid_t me = sys::CachedPid();
  if (l.station.is_open() && l.station_pid == me) return &l.station;
  if (l.station.is_open())
    l.station.ForgetAfterFork();  // the parent's: not ours to serve
  if (!l.station.Open()) return nullptr;
  l.station_pid = me;
  return &l.station;
}

void LinksAfterForkChild() {
  // The mutexes may have been held by another thread of the parent at fork
  // time.
  new (&L().mu) std::mutex();
  L().station.ForgetAfterFork();
  L().station_pid = 0;
}

uint32_t LinkCount() {
  Links& l = L();
  std::lock_guard<std::mutex> lock(l.mu);
  return static_cast<uint32_t>(l.server.size() + l.client.size());
}

}  // namespace usmc::engine
