#include "engine/arena.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include <cstring>

#include "util/once.h"
#include "util/sys.h"

namespace usmc::engine {

__thread stats::ThreadBlock* t_thread_counters
    __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

constexpr uint32_t kCapacity =
    1u << 17;  // records per process family (virtual until touched)
constexpr uint32_t kThreadCapacity = 1u
                                     << 12;  // counter blocks of live threads
constexpr int kHighFd =
    512;  // out of the way of programs that manage low fd numbers themselves

pthread_key_t g_thread_key;
bool g_thread_key_made = false;
stats::ThreadBlock g_spare_block;  // when the arena is missing or out of
                                   // blocks: counts are lost
stats::ProcCounters g_spare_counters;

uint64_t PageUp(uint64_t n) { return (n + 4095) & ~uint64_t{4095}; }

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

void ReadComm(char* out, size_t cap) {
  int fd = sys::Open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = sys::Read(fd, out, cap - 1);
  sys::Close(fd);
  if (n <= 0) return;
  out[n] = '\0';
  if (char* nl = strchr(out, '\n')) *nl = '\0';
}

void InitMutex(pthread_mutex_t* mu) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(mu, &attr);
  pthread_mutexattr_destroy(&attr);
}

// Sets a free bit of `words` (n bits) and returns its index, or -1.
int64_t TakeBit(std::atomic<uint64_t>* words, uint32_t n) {
  for (uint32_t w = 0; w < n / 64; ++w) {
    uint64_t used = words[w].load(std::memory_order_relaxed);
    while (~used != 0) {
      int bit = __builtin_ctzll(~used);
      if (words[w].compare_exchange_weak(used, used | (1ull << bit),
                                         std::memory_order_acq_rel)) {
        return int64_t{w} * 64 + bit;
      }
    }
  }
  return -1;
}

void RaiseHigh(std::atomic<uint32_t>& high, uint32_t at_least) {
  uint32_t h = high.load(std::memory_order_relaxed);
  while (h < at_least &&
         !high.compare_exchange_weak(h, at_least, std::memory_order_release)) {
  }
}

void ThreadExit(void* block) {
  Arena::Get().RetireThreadBlock(static_cast<stats::ThreadBlock*>(block));
}

}  // namespace

Arena& Arena::Get() {
  static constinit util::Once<Arena*> arena;
  return *arena.Get(
      [] { return new Arena(); });  // never destroyed: connections outlive exit
}

Arena::Arena() {
  counters_ = &g_spare_counters;
  g_thread_key_made = pthread_key_create(&g_thread_key, &ThreadExit) == 0;
  uint64_t off = 3 * 4096;  // header, counters, baseline: a page each (the CLI
                            // writes the baseline)
  uint64_t thread_bitmap_off = off;
  off = PageUp(off + kThreadCapacity / 8);
  uint64_t threads_off = off;
  off = PageUp(off + uint64_t{kThreadCapacity} * sizeof(stats::ThreadBlock));
  uint64_t record_bitmap_off = off;
  off = PageUp(off + kCapacity / 8);
  uint64_t records_off = off;
  off = PageUp(off + uint64_t{kCapacity} * sizeof(ConnState));
  if (!Map(off)) return;
  auto* base = reinterpret_cast<uint8_t*>(header_);
  counters_ = reinterpret_cast<stats::ProcCounters*>(base + 4096);
  threads_used_ =
      reinterpret_cast<std::atomic<uint64_t>*>(base + thread_bitmap_off);
  threads_ = reinterpret_cast<stats::ThreadBlock*>(base + threads_off);
  used_ = reinterpret_cast<std::atomic<uint64_t>*>(base + record_bitmap_off);
  records_ = reinterpret_cast<ConnState*>(base + records_off);
  capacity_ = kCapacity;
  header_->counters_off = 4096;
  header_->baseline_off = 2 * 4096;
  header_->thread_bitmap_off = thread_bitmap_off;
  header_->threads_off = threads_off;
  header_->record_bitmap_off = record_bitmap_off;
  header_->records_off = records_off;
  header_->total_bytes = off;
  InitHeader();
}

bool Arena::Map(uint64_t total_bytes) {
  int fd = sys::MemfdCreate(stats::kArenaName, MFD_CLOEXEC);
  if (fd < 0) return false;
  if (sys::Ftruncate(fd, static_cast<off_t>(total_bytes)) != 0) {
    sys::Close(fd);
    return false;
  }
  void* p = mmap(nullptr, total_bytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    sys::Close(fd);
    return false;
  }
  int high = sys::Fcntl(fd, F_DUPFD_CLOEXEC, kHighFd);
  if (high >= 0) {
    sys::Close(fd);
    fd = high;
  }
  fd_ = fd;
  header_ = static_cast<stats::ArenaHeader*>(p);
  return true;
}

void Arena::InitHeader() {
  header_->version = stats::kArenaVersion;
  header_->header_bytes = sizeof(stats::ArenaHeader);
  header_->record_bytes = sizeof(ConnState);
  header_->record_capacity = kCapacity;
  header_->thread_capacity = kThreadCapacity;
  header_->counters_compiled = stats::kCountersCompiled ? 1 : 0;
  header_->pid = sys::GetPid();
  ReadComm(header_->comm, sizeof header_->comm);
  header_->start_ns = RealtimeNs();
  // The magic last: a reader that sees it sees the whole header.
  std::atomic_ref<uint64_t>(header_->magic)
      .store(stats::kArenaMagic, std::memory_order_release);
}

ConnState* Arena::Alloc() {
  if (records_ == nullptr) return nullptr;
  int64_t i = TakeBit(used_, capacity_);
  if (i < 0) return nullptr;
  ConnState* st = &records_[i];
  uint32_t gen = st->gen.load(std::memory_order_relaxed);
  std::memset(static_cast<void*>(st), 0, sizeof(*st));
  st->gen.store(gen + 1, std::memory_order_relaxed);
  InitMutex(&st->tx_mu);
  InitMutex(&st->rx_mu);
  st->holders.store(1, std::memory_order_relaxed);
  st->in_use.store(1, std::memory_order_release);
  RaiseHigh(header_->record_high, static_cast<uint32_t>(i) + 1);
  return st;
}

void Arena::Free(ConnState* st) {
  size_t i = static_cast<size_t>(st - records_);
  if (records_ == nullptr || i >= capacity_) return;
  if (stats::IsAccelerated(st->id.mode.load(std::memory_order_relaxed))) {
    Count(stats::kBytesOut, st->bytes_out.load(std::memory_order_relaxed));
    Count(stats::kBytesIn, st->bytes_in.load(std::memory_order_relaxed));
    Count(stats::kSendCalls, st->tx.calls.load(std::memory_order_relaxed));
    Count(stats::kRecvCalls, st->rx.calls.load(std::memory_order_relaxed));
    Count(stats::kRingFullLocal, st->tx.full.load(std::memory_order_relaxed));
    Count(stats::kRingFullPeer, st->rx.full.load(std::memory_order_relaxed));
  }
  pthread_mutex_destroy(&st->tx_mu);
  pthread_mutex_destroy(&st->rx_mu);
  st->gen.fetch_add(1, std::memory_order_release);
  st->id.mode.store(stats::kModeNone, std::memory_order_relaxed);
  st->in_use.store(0, std::memory_order_relaxed);
  used_[i / 64].fetch_and(~(1ull << (i % 64)), std::memory_order_release);
}

void Arena::Count(stats::Counter c, uint64_t n) {
  if (n != 0) counters_->v[c].fetch_add(n, std::memory_order_relaxed);
}

stats::ThreadBlock* Arena::NewThreadBlock() {
  if (threads_ == nullptr) return nullptr;
  int64_t i = TakeBit(threads_used_, kThreadCapacity);
  if (i < 0) return nullptr;
  stats::ThreadBlock* b = &threads_[i];
  for (auto& v : b->v) v.store(0, std::memory_order_relaxed);
  RaiseHigh(header_->thread_high, static_cast<uint32_t>(i) + 1);
  return b;
}

void Arena::RetireThreadBlock(stats::ThreadBlock* b) {
  size_t i = static_cast<size_t>(b - threads_);
  if (threads_ == nullptr || i >= kThreadCapacity) return;
  for (uint32_t k = 0; k < stats::kThreadCounters; ++k) {
    Count(static_cast<stats::Counter>(stats::kDoorbellsSent + k),
          b->v[k].load(std::memory_order_relaxed));
    b->v[k].store(0, std::memory_order_relaxed);
  }
  threads_used_[i / 64].fetch_and(~(1ull << (i % 64)),
                                  std::memory_order_release);
}

stats::ThreadBlock* ThreadCountersSlow() {
  stats::ThreadBlock* b = Arena::Get().NewThreadBlock();
  if (b == nullptr || !g_thread_key_made) {
    t_thread_counters =
        &g_spare_block;  // shared by such threads: their counts are approximate
    return &g_spare_block;
  }
  pthread_setspecific(g_thread_key, b);
  t_thread_counters = b;
  return b;
}

void ArenaAfterForkChild() {
  t_thread_counters = nullptr;
  if (g_thread_key_made) pthread_setspecific(g_thread_key, nullptr);
}

ArenaLock::ArenaLock(pthread_mutex_t* mu) : mu_(mu) {
  if (pthread_mutex_lock(mu_) == EOWNERDEAD) pthread_mutex_consistent(mu_);
}

ArenaLock::~ArenaLock() { pthread_mutex_unlock(mu_); }

}  // namespace usmc::engine
