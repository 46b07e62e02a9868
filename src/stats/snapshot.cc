#include "stats/snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <unordered_set>

#include "engine/arena.h"

namespace usmc::stats {
namespace {

using engine::ConnState;
constexpr char kArenaLink[] = "/memfd:usmc-arena";

struct ProcScan {
  std::map<pid_t, std::unordered_set<uint64_t>>
      sockets;  // pid -> socket inodes it holds
  std::vector<std::pair<pid_t, int>> arena_fds;  // (pid, fd) of arena memfds
};

bool IsNumber(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

void ScanPid(pid_t pid, ProcScan* out) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;  // gone, or not ours to see
  while (dirent* e = readdir(d)) {
    if (!IsNumber(e->d_name)) continue;
    char target[256];
    ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strncmp(target, "socket:[", 8) == 0) {
      out->sockets[pid].insert(strtoull(target + 8, nullptr, 10));
    } else if (strncmp(target, kArenaLink, sizeof kArenaLink - 1) == 0) {
      out->arena_fds.emplace_back(pid, atoi(e->d_name));
    }
  }
  closedir(d);
}

ProcScan ScanProc() {
  ProcScan scan;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return scan;
  while (dirent* e = readdir(proc)) {
    if (IsNumber(e->d_name))
      ScanPid(static_cast<pid_t>(atoi(e->d_name)), &scan);
  }
  closedir(proc);
  return scan;
}

// A read-only mapping of one arena, unmapped when the scan is done.
struct Mapping {
  const uint8_t* base = nullptr;
  size_t size = 0;
  ArenaSnapshot snap;
  ~Mapping() {
    if (base != nullptr) munmap(const_cast<uint8_t*>(base), size);
  }
  const ArenaHeader* header() const {
    return reinterpret_cast<const ArenaHeader*>(base);
  }
};

bool Fits(uint64_t off, uint64_t bytes, size_t size) {
  return off <= size && bytes <= size - off;
}

bool ValidHeader(const ArenaHeader* h, size_t size) {
  if (size < sizeof(ArenaHeader)) return false;
  if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != kArenaMagic) return false;
  if (h->version != kArenaVersion || h->header_bytes != sizeof(ArenaHeader) ||
      h->record_bytes != sizeof(ConnState) || h->total_bytes > size) {
    return false;
  }
  return Fits(h->counters_off, sizeof(ProcCounters), size) &&
         Fits(h->baseline_off, sizeof(Baseline), size) &&
         Fits(h->thread_bitmap_off, h->thread_capacity / 8, size) &&
         Fits(h->threads_off,
              uint64_t{h->thread_capacity} * sizeof(ThreadBlock), size) &&
         Fits(h->record_bitmap_off, h->record_capacity / 8, size) &&
         Fits(h->records_off, uint64_t{h->record_capacity} * sizeof(ConnState),
              size);
}

// Maps an open arena memfd read-only and checks its header. key identifies the
// memfd (shared by forks).
bool MapFd(int f, Mapping* m, uint64_t* key) {
  struct stat sb;
  if (fstat(f, &sb) != 0 || sb.st_size <= 0) return false;
  *key = (static_cast<uint64_t>(sb.st_dev) << 40) ^ sb.st_ino;
  void* p = mmap(nullptr, static_cast<size_t>(sb.st_size), PROT_READ,
                 MAP_SHARED, f, 0);
  if (p == MAP_FAILED) return false;
  m->base = static_cast<const uint8_t*>(p);
  m->size = static_cast<size_t>(sb.st_size);
  return ValidHeader(m->header(), m->size);
}

std::string FdPath(pid_t pid, int fd) {
  return "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
}

bool MapArena(pid_t pid, int fd, Mapping* m, uint64_t* key) {
  int f = open(FdPath(pid, fd).c_str(), O_RDONLY | O_CLOEXEC);
  if (f < 0) return false;
  bool ok = MapFd(f, m, key);
  close(f);
  return ok;
}

ConnRecord CopyRecord(const ConnState* st) {
  ConnRecord r;
  const ConnIdentity& id = st->id;
  r.mode = id.mode.load(std::memory_order_acquire);
  r.role = id.role;
  r.origin = id.origin;
  r.reason = id.reason;
  r.ring_bytes = id.ring_bytes;
  r.fd = id.fd;
  r.pid = id.pid;
  r.inode = id.inode;
  r.created_ns = id.created_ns;
  r.local = id.local;
  r.peer = id.peer;
  r.flags = st->flags.load(std::memory_order_relaxed);
  r.holders = st->holders.load(std::memory_order_relaxed);
  r.tx_prod = st->tx_prod.load(std::memory_order_relaxed);
  r.tx_peer_cons = st->tx_peer_cons.load(std::memory_order_relaxed);
  r.rx_cons = st->rx_cons.load(std::memory_order_relaxed);
  r.rx_peer_prod = st->rx_peer_prod.load(std::memory_order_relaxed);
  r.bytes_out = st->bytes_out.load(std::memory_order_relaxed);
  r.bytes_in = st->bytes_in.load(std::memory_order_relaxed);
  r.send_calls = st->tx.calls.load(std::memory_order_relaxed);
  r.recv_calls = st->rx.calls.load(std::memory_order_relaxed);
  r.ring_full_local = st->tx.full.load(std::memory_order_relaxed);
  r.ring_full_peer = st->rx.full.load(std::memory_order_relaxed);
  r.lgr = id.lgr.load(std::memory_order_relaxed);
  r.links = id.links.load(std::memory_order_relaxed);
  return r;
}

// Calls fn(index) for every set bit below `limit` of a bitmap in the mapping.
template <typename Fn>
void ForEachBit(const uint8_t* bitmap, uint32_t limit, Fn fn) {
  const auto* words = reinterpret_cast<const std::atomic<uint64_t>*>(bitmap);
  for (uint32_t w = 0; w * 64 < limit; ++w) {
    uint64_t bits = words[w].load(std::memory_order_acquire);
    while (bits != 0) {
      uint32_t i = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
      bits &= bits - 1;
      if (i < limit) fn(i);
    }
  }
}

void ReadRecords(const Mapping& m, ArenaSnapshot* s) {
  const ArenaHeader* h = m.header();
  const auto* records =
      reinterpret_cast<const ConnState*>(m.base + h->records_off);
  uint32_t high = std::min(h->record_high.load(std::memory_order_acquire),
                           h->record_capacity);
  ForEachBit(m.base + h->record_bitmap_off, high, [&](uint32_t i) {
    const ConnState* st = &records[i];
    uint32_t gen = st->gen.load(std::memory_order_acquire);
    if (st->in_use.load(std::memory_order_acquire) == 0) return;
    ConnRecord r = CopyRecord(st);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (r.mode == kModeNone || st->gen.load(std::memory_order_relaxed) != gen)
      return;
    s->records.push_back(r);
  });
}

void ReadCounters(const Mapping& m, ArenaSnapshot* s) {
  const ArenaHeader* h = m.header();
  const auto* pc =
      reinterpret_cast<const ProcCounters*>(m.base + h->counters_off);
  s->totals.assign(kNumCounters, 0);
  for (int i = 0; i < kCounterCount; ++i)
    s->totals[i] = pc->v[i].load(std::memory_order_relaxed);
  const auto* blocks =
      reinterpret_cast<const ThreadBlock*>(m.base + h->threads_off);
  uint32_t high = std::min(h->thread_high.load(std::memory_order_acquire),
                           h->thread_capacity);
  ForEachBit(m.base + h->thread_bitmap_off, high, [&](uint32_t i) {
    for (uint32_t k = 0; k < kThreadCounters; ++k) {
      s->totals[kDoorbellsSent + k] +=
          blocks[i].v[k].load(std::memory_order_relaxed);
    }
  });
  for (const ConnRecord& r : s->records) {
    if (!IsAccelerated(r.mode)) continue;
    s->totals[kBytesOut] += r.bytes_out;
    s->totals[kBytesIn] += r.bytes_in;
    s->totals[kSendCalls] += r.send_calls;
    s->totals[kRecvCalls] += r.recv_calls;
    s->totals[kRingFullLocal] += r.ring_full_local;
    s->totals[kRingFullPeer] += r.ring_full_peer;
  }
}

void ReadBaseline(const Mapping& m, ArenaSnapshot* s) {
  const auto* b =
      reinterpret_cast<const Baseline*>(m.base + m.header()->baseline_off);
  s->baseline.assign(kNumCounters, 0);
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint64_t seq = b->seq.load(std::memory_order_acquire);
    if (seq & 1) continue;
    s->reset_ns = b->reset_ns;
    for (int i = 0; i < kCounterCount; ++i) s->baseline[i] = b->v[i];
    std::atomic_thread_fence(std::memory_order_acquire);
    if (b->seq.load(std::memory_order_relaxed) == seq) return;
  }
}

void Fill(Mapping& m, const ProcScan& scan) {
  ArenaSnapshot& s = m.snap;
  const ArenaHeader* h = m.header();
  s.creator = h->pid;
  s.program.assign(h->comm, strnlen(h->comm, sizeof h->comm));
  s.start_ns = h->start_ns;
  s.counters_compiled = h->counters_compiled != 0;
  struct stat sb;
  std::string dir = "/proc/" + std::to_string(s.open_pid);
  if (stat(dir.c_str(), &sb) == 0) s.uid = sb.st_uid;
  ReadRecords(m, &s);
  ReadCounters(m, &s);
  ReadBaseline(m, &s);
  std::unordered_set<uint64_t> held;
  for (pid_t pid : s.pids) {
    auto it = scan.sockets.find(pid);
    if (it != scan.sockets.end())
      held.insert(it->second.begin(), it->second.end());
  }
  for (ConnRecord& r : s.records)
    r.live = r.inode == 0 || held.count(r.inode) != 0;
}

}  // namespace

CounterArray SinceReset(const ArenaSnapshot& a) {
  CounterArray out(kNumCounters, 0);
  for (int i = 0; i < kCounterCount; ++i) {
    uint64_t t = i < static_cast<int>(a.totals.size()) ? a.totals[i] : 0;
    uint64_t b = i < static_cast<int>(a.baseline.size()) ? a.baseline[i] : 0;
    out[i] = t > b ? t - b : 0;
  }
  return out;
}

std::vector<ArenaSnapshot> ScanArenas(pid_t only_pid) {
  ProcScan scan = ScanProc();
  std::map<uint64_t, std::unique_ptr<Mapping>> arenas;
  std::vector<uint64_t> order;
  for (auto [pid, fd] : scan.arena_fds) {
    auto m = std::make_unique<Mapping>();
    uint64_t key = 0;
    bool ok = MapArena(pid, fd, m.get(), &key);
    if (key == 0) continue;
    auto it = arenas.find(key);
    if (it != arenas.end()) {
      it->second->snap.pids.push_back(pid);  // a fork sharing the arena
      continue;
    }
    if (!ok) continue;
    m->snap.open_pid = pid;
    m->snap.open_fd = fd;
    m->snap.pids.push_back(pid);
    order.push_back(key);
    arenas.emplace(key, std::move(m));
  }
  std::vector<ArenaSnapshot> out;
  for (uint64_t key : order) {
    Mapping& m = *arenas[key];
    if (only_pid > 0 && std::find(m.snap.pids.begin(), m.snap.pids.end(),
                                  only_pid) == m.snap.pids.end()) {
      continue;
    }
    Fill(m, scan);
    out.push_back(std::move(m.snap));
  }
  return out;
}

bool ResetArena(const ArenaSnapshot& a, std::string* error) {
  std::string path = FdPath(a.open_pid, a.open_fd);
  int f = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (f < 0) {
    *error = path + ": " + strerror(errno);
    return false;
  }
  Mapping m;
  uint64_t key = 0;
  void* p = MAP_FAILED;
  if (MapFd(f, &m, &key)) {
    p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f,
             static_cast<off_t>(m.header()->baseline_off));
  }
  int err = errno;
  close(f);
  if (p == MAP_FAILED) {
    *error =
        path + ": " + (m.base != nullptr ? strerror(err) : "not a usmc arena");
    return false;
  }
  auto* b = static_cast<Baseline*>(p);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seq = b->seq.load(std::memory_order_relaxed) | 1;
  b->seq.store(seq, std::memory_order_relaxed);  // odd: readers retry
  std::atomic_thread_fence(std::memory_order_release);
  b->reset_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
                static_cast<uint64_t>(ts.tv_nsec);
  for (int i = 0; i < kCounterCount; ++i)
    b->v[i] = i < static_cast<int>(a.totals.size()) ? a.totals[i] : 0;
  b->seq.store(seq + 1, std::memory_order_release);
  munmap(p, 4096);
  return true;
}

}  // namespace usmc::stats
