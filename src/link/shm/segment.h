// A segment: one memfd shared by exactly the two processes of a same-host link
// (and their forks), divided into slots. A slot holds one connection: a header
// with the two rings' control words, then the client->server ring, then the
// server->client ring (the RMBs / DMBs of SMC-D).
//
//   segment: [SegmentHeader, 4 KiB][slot 0][slot 1]...
//   slot:    [SlotHeader, 4 KiB][ring c2s: ring_bytes][ring s2c: ring_bytes]
//
// The server side creates the segment and allocates slots; both sides free
// them. Every field here can be written by the peer, so the geometry is copied
// out once (Attach validates it against the memfd's real size) and cursors are
// validated by the engine before use.
#ifndef USMC_LINK_SHM_SEGMENT_H_
#define USMC_LINK_SHM_SEGMENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace usmc::shm {

inline constexpr uint64_t kSegmentMagic = 0x31474553434d5355ull;  // "USMCSEG1"
inline constexpr uint32_t kMinRingBytes = 16 * 1024;
inline constexpr uint32_t kMaxRingBytes = 8 * 1024 * 1024;
inline constexpr uint32_t kMaxSlots = 4096;
inline constexpr size_t kPageBytes = 4096;

// Written by the producer of a ring.
struct alignas(64) ProducerCtl {
  std::atomic<uint64_t> prod;        // wire::Cursor word
  std::atomic<uint32_t> conn_flags;  // wire::CdcConnFlags
  std::atomic<uint32_t>
      waiting_for_space;  // producer sleeps until the consumer frees space
};

// Written by the consumer of a ring.
struct alignas(64) ConsumerCtl {
  std::atomic<uint64_t> cons;  // wire::Cursor word
  std::atomic<uint32_t>
      waiting_for_data;  // consumer sleeps until the producer writes
};

struct RingCtl {
  ProducerCtl p;
  ConsumerCtl c;
};

struct alignas(64) SlotHeader {
  std::atomic<uint32_t> token;  // conn token of the current tenant (0 = free)
  std::atomic<uint32_t>
      released;  // bit 0: client side released, bit 1: server side released
  std::atomic<uint64_t>
      c2s_high;  // bytes ever produced c2s (for zeroing on reuse)
  std::atomic<uint64_t> s2c_high;
  alignas(64) RingCtl c2s;
  RingCtl s2c;
};
static_assert(sizeof(SlotHeader) <= kPageBytes);

struct SegmentHeader {
  uint64_t magic;
  uint32_t slot_count;
  uint32_t ring_bytes;
  std::atomic<uint64_t> used[kMaxSlots / 64];  // slot allocation bitmap
};
static_assert(sizeof(SegmentHeader) <= kPageBytes);

enum class Side { kClient = 0, kServer = 1 };

class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Server: a new memfd segment of `slot_count` slots with rings of
  // `ring_bytes` (power of two).
  static std::unique_ptr<Segment> Create(uint32_t id, uint32_t slot_count,
                                         uint32_t ring_bytes);
  // Client: maps a received memfd (takes ownership of `memfd`) after checking
  // its size and header.
  static std::unique_ptr<Segment> Attach(uint32_t id, int memfd,
                                         uint64_t bytes);

  static uint64_t BytesFor(uint32_t slot_count, uint32_t ring_bytes);
  static bool ValidRingBytes(uint32_t ring_bytes);

  // Allocates a free slot and stamps it with `token`; -1 when full. *reused:
  // the slot had a tenant before (for `usmc stats`).
  int AllocSlot(uint32_t token, bool* reused = nullptr);
  // Marks `side` as done with slot i. The side that completes the pair zeroes
  // and frees the slot. Returns true if this call freed it.
  bool ReleaseSlot(uint32_t i, Side side);

  SlotHeader* slot(uint32_t i) const;
  uint8_t* ring_c2s(uint32_t i) const;
  uint8_t* ring_s2c(uint32_t i) const;

  // Where slot i's header / ring sits from the start of a segment with rings
  // of ring_bytes (the same in every process: the cross-host link writes into
  // a peer's segment by these offsets).
  static uint64_t SlotOffset(uint32_t i, uint32_t ring_bytes);
  static uint64_t RingOffset(uint32_t i, uint32_t ring_bytes, bool c2s);

  uint8_t* base() const { return base_; }
  uint32_t id() const { return id_; }
  int fd() const { return fd_; }
  uint64_t bytes() const { return bytes_; }
  uint32_t slot_count() const { return slot_count_; }
  uint32_t ring_bytes() const { return ring_bytes_; }
  uint32_t slots_in_use() const;

 private:
  Segment(uint32_t id, int fd, uint8_t* base, uint64_t bytes,
          uint32_t slot_count, uint32_t ring_bytes);
  SegmentHeader* header() const {
    return reinterpret_cast<SegmentHeader*>(base_);
  }
  void ZeroRing(uint8_t* ring, uint64_t high_water);

  uint32_t id_;
  int fd_;
  uint8_t* base_;
  uint64_t bytes_;
  uint32_t slot_count_;  // copied once; never re-read from shared memory
  uint32_t ring_bytes_;
  uint64_t slot_bytes_;
};

}  // namespace usmc::shm

#endif  // USMC_LINK_SHM_SEGMENT_H_
