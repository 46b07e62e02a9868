#include "link/shm/segment.h"

#include <errno.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>
#include <new>

#include "util/sys.h"

namespace usmc::shm {

namespace {

uint64_t SlotBytes(uint32_t ring_bytes) {
  return kPageBytes + 2ull * ring_bytes;
}

}  // namespace

bool Segment::ValidRingBytes(uint32_t ring_bytes) {
  return ring_bytes >= kMinRingBytes && ring_bytes <= kMaxRingBytes &&
         (ring_bytes & (ring_bytes - 1)) == 0;
}

uint64_t Segment::BytesFor(uint32_t slot_count, uint32_t ring_bytes) {
  return kPageBytes + slot_count * SlotBytes(ring_bytes);
}

uint64_t Segment::SlotOffset(uint32_t i, uint32_t ring_bytes) {
  return kPageBytes + i * SlotBytes(ring_bytes);
}

uint64_t Segment::RingOffset(uint32_t i, uint32_t ring_bytes, bool c2s) {
  return SlotOffset(i, ring_bytes) + kPageBytes + (c2s ? 0 : ring_bytes);
}

Segment::Segment(uint32_t id, int fd, uint8_t* base, uint64_t bytes,
                 uint32_t slot_count, uint32_t ring_bytes)
    : id_(id),
      fd_(fd),
      base_(base),
      bytes_(bytes),
      slot_count_(slot_count),
      ring_bytes_(ring_bytes),
      slot_bytes_(SlotBytes(ring_bytes)) {}

Segment::~Segment() {
  if (base_ != nullptr) munmap(base_, bytes_);
  if (fd_ >= 0) sys::Close(fd_);
}

std::unique_ptr<Segment> Segment::Create(uint32_t id, uint32_t slot_count,
                                         uint32_t ring_bytes) {
  if (!ValidRingBytes(ring_bytes) || slot_count == 0 ||
      slot_count > kMaxSlots) {
    errno = EINVAL;
    return nullptr;
  }
  uint64_t bytes = BytesFor(slot_count, ring_bytes);
  int fd = sys::MemfdCreate("usmc-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return nullptr;
  if (sys::Ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      sys::Fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
          0) {
    sys::Close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    sys::Close(fd);
    return nullptr;
  }
  auto* hdr = static_cast<SegmentHeader*>(p);
  hdr->magic = kSegmentMagic;
  hdr->slot_count = slot_count;
  hdr->ring_bytes = ring_bytes;
  return std::unique_ptr<Segment>(new Segment(id, fd, static_cast<uint8_t*>(p),
                                              bytes, slot_count, ring_bytes));
}

std::unique_ptr<Segment> Segment::Attach(uint32_t id, int memfd,
                                         uint64_t bytes) {
  struct stat st;
  int seals = sys::Fcntl(memfd, F_GET_SEALS);
  // The seals guarantee the peer cannot shrink the file under our mapping
  // (SIGBUS).
  bool sealed = seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_SEAL);
  if (!sealed || fstat(memfd, &st) != 0 ||
      static_cast<uint64_t>(st.st_size) != bytes || bytes < kPageBytes) {
    sys::Close(memfd);
    errno = EINVAL;
    return nullptr;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (p == MAP_FAILED) {
    sys::Close(memfd);
    return nullptr;
  }
  const auto* hdr = static_cast<const SegmentHeader*>(p);
  uint32_t slots = hdr->slot_count;  // read once
  uint32_t ring = hdr->ring_bytes;
  if (hdr->magic != kSegmentMagic || !ValidRingBytes(ring) || slots == 0 ||
      slots > kMaxSlots || BytesFor(slots, ring) != bytes) {
    munmap(p, bytes);
    sys::Close(memfd);
    errno = EINVAL;
    return nullptr;
  }
  return std::unique_ptr<Segment>(
      new Segment(id, memfd, static_cast<uint8_t*>(p), bytes, slots, ring));
}

int Segment::AllocSlot(uint32_t token, bool* reused) {
  SegmentHeader* hdr = header();
  for (uint32_t w = 0; w * 64 < slot_count_; ++w) {
    uint64_t used = hdr->used[w].load(std::memory_order_relaxed);
    while (true) {
      uint64_t free_bits = ~used;
      uint32_t limit = slot_count_ - w * 64;
      if (limit < 64) free_bits &= (1ull << limit) - 1;
      if (free_bits == 0) break;
      int bit = __builtin_ctzll(free_bits);
      if (hdr->used[w].compare_exchange_weak(used, used | (1ull << bit),
                                             std::memory_order_acq_rel)) {
        uint32_t i = w * 64 + static_cast<uint32_t>(bit);
        SlotHeader* s = slot(i);
        if (reused != nullptr)
          *reused = s->released.load(std::memory_order_relaxed) != 0;
        s->released.store(0, std::memory_order_relaxed);
        s->c2s_high.store(0, std::memory_order_relaxed);
        s->s2c_high.store(0, std::memory_order_relaxed);
        s->token.store(token, std::memory_order_release);
        return static_cast<int>(i);
      }
    }
  }
  return -1;
}

bool Segment::ReleaseSlot(uint32_t i, Side side) {
  if (i >= slot_count_) return false;
  SlotHeader* s = slot(i);
  uint32_t bit = 1u << static_cast<uint32_t>(side);
  uint32_t prev = s->released.fetch_or(bit, std::memory_order_acq_rel);
  if ((prev | bit) != 3u || (prev & bit) != 0) return false;
  ZeroRing(ring_c2s(i), s->c2s_high.load(std::memory_order_relaxed));
  ZeroRing(ring_s2c(i), s->s2c_high.load(std::memory_order_relaxed));
  std::memset(static_cast<void*>(&s->c2s), 0, sizeof(RingCtl));
  std::memset(static_cast<void*>(&s->s2c), 0, sizeof(RingCtl));
  s->token.store(0, std::memory_order_relaxed);
  header()->used[i / 64].fetch_and(~(1ull << (i % 64)),
                                   std::memory_order_release);
  return true;
}

void Segment::ZeroRing(uint8_t* ring, uint64_t high_water) {
  // Small tenants touched a prefix only; big ones get their pages dropped (they
  // read back as zero).
  if (high_water <= 4 * kPageBytes) {
    std::memset(ring, 0, high_water);
  } else if (madvise(ring, ring_bytes_, MADV_REMOVE) != 0) {
    std::memset(ring, 0, ring_bytes_);
  }
}

SlotHeader* Segment::slot(uint32_t i) const {
  return reinterpret_cast<SlotHeader*>(base_ + kPageBytes + i * slot_bytes_);
}
uint8_t* Segment::ring_c2s(uint32_t i) const {
  return base_ + kPageBytes + i * slot_bytes_ + kPageBytes;
}
uint8_t* Segment::ring_s2c(uint32_t i) const {
  return ring_c2s(i) + ring_bytes_;
}

uint32_t Segment::slots_in_use() const {
  uint32_t n = 0;
  for (uint32_t w = 0; w * 64 < slot_count_; ++w) {
    n += static_cast<uint32_t>(__builtin_popcountll(
        header()->used[w].load(std::memory_order_relaxed)));
  }
  return n;
}

}  // namespace usmc::shm
