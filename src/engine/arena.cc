#include "engine/arena.h"

#include <errno.h>
#include <sys/mman.h>

#include <cstring>

namespace usmc::engine {

namespace {
constexpr uint32_t kCapacity = 1u << 17;  // records per process family (virtual until touched)
}

Arena& Arena::Get() {
  static Arena* arena = new Arena();  // never destroyed: connections outlive static destructors
  return *arena;
}

Arena::Arena() {
  size_t bitmap_bytes = kCapacity / 8;
  size_t bytes = bitmap_bytes + static_cast<size_t>(kCapacity) * sizeof(ConnState);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) return;
  used_ = static_cast<std::atomic<uint64_t>*>(p);
  records_ = reinterpret_cast<ConnState*>(static_cast<uint8_t*>(p) + bitmap_bytes);
  capacity_ = kCapacity;
}

static void InitMutex(pthread_mutex_t* mu) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(mu, &attr);
  pthread_mutexattr_destroy(&attr);
}

ConnState* Arena::Alloc() {
  for (uint32_t w = 0; w < capacity_ / 64; ++w) {
    uint64_t used = used_[w].load(std::memory_order_relaxed);
    while (~used != 0) {
      int bit = __builtin_ctzll(~used);
      if (used_[w].compare_exchange_weak(used, used | (1ull << bit), std::memory_order_acq_rel)) {
        ConnState* st = &records_[w * 64 + static_cast<uint32_t>(bit)];
        std::memset(static_cast<void*>(st), 0, sizeof(*st));
        InitMutex(&st->tx_mu);
        InitMutex(&st->rx_mu);
        st->holders.store(1, std::memory_order_relaxed);
        st->in_use.store(1, std::memory_order_release);
        return st;
      }
    }
  }
  return nullptr;
}

void Arena::Free(ConnState* st) {
  size_t i = static_cast<size_t>(st - records_);
  if (i >= capacity_) return;
  pthread_mutex_destroy(&st->tx_mu);
  pthread_mutex_destroy(&st->rx_mu);
  st->in_use.store(0, std::memory_order_relaxed);
  used_[i / 64].fetch_and(~(1ull << (i % 64)), std::memory_order_release);
}

ArenaLock::ArenaLock(pthread_mutex_t* mu) : mu_(mu) {
  if (pthread_mutex_lock(mu_) == EOWNERDEAD) pthread_mutex_consistent(mu_);
}

ArenaLock::~ArenaLock() { pthread_mutex_unlock(mu_); }

}  // namespace usmc::engine
