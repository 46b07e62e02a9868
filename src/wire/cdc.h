// CDC cursors: a position in a ring as RFC 7609 carries it, a wrap count plus a
// byte count inside the ring. A cursor travels as one 64-bit word (wrap in the
// high half) so a reader sees both halves from the same write.
//
// Invariant: a cursor from the peer is trusted only after Follows() has checked
// that it moved forward from the last value seen and stays within one ring of
// the cursor it is compared with.
#ifndef USMC_WIRE_CDC_H_
#define USMC_WIRE_CDC_H_

#include <cstdint>

namespace usmc::wire {

// Connection state flags (conn_state_flags of the CDC message).
enum CdcConnFlags : uint32_t {
  kCdcPeerDoneWriting =
      1u << 0,  // shutdown(SHUT_WR): no more data after the producer cursor
  kCdcPeerConnClosed = 1u << 1,  // the last holder closed the connection
  kCdcPeerConnAbort = 1u << 2,   // closed with unread data / reset
};

class Cursor {
 public:
  constexpr Cursor() = default;
  constexpr Cursor(uint32_t wrap, uint32_t count)
      : wrap_(wrap), count_(count) {}
  static constexpr Cursor FromWord(uint64_t w) {
    return Cursor(static_cast<uint32_t>(w >> 32), static_cast<uint32_t>(w));
  }
  constexpr uint64_t ToWord() const {
    return (static_cast<uint64_t>(wrap_) << 32) | count_;
  }

  constexpr uint32_t wrap() const { return wrap_; }
  constexpr uint32_t count() const { return count_; }

  // Moves forward by n (n <= ring_size) in a ring of ring_size bytes.
  constexpr Cursor Advance(uint32_t n, uint32_t ring_size) const {
    uint64_t c = static_cast<uint64_t>(count_) + n;
    if (c >= ring_size)
      return Cursor(wrap_ + 1, static_cast<uint32_t>(c - ring_size));
    return Cursor(wrap_, static_cast<uint32_t>(c));
  }

  // Bytes from `from` to `to`, or -1 if `to` is not within one ring ahead of
  // `from` (or a count is out of range). Used both to validate and to measure.
  static constexpr int64_t Distance(Cursor from, Cursor to,
                                    uint32_t ring_size) {
    if (from.count_ >= ring_size || to.count_ >= ring_size) return -1;
    if (to.wrap_ == from.wrap_) {
      return to.count_ >= from.count_
                 ? static_cast<int64_t>(to.count_ - from.count_)
                 : -1;
    }
    if (to.wrap_ == from.wrap_ + 1u) {
      return to.count_ <= from.count_
                 ? static_cast<int64_t>(ring_size) - from.count_ + to.count_
                 : -1;
    }
    return -1;
  }

  constexpr bool operator==(const Cursor&) const = default;

 private:
  uint32_t wrap_ = 0;
  uint32_t count_ = 0;
};

}  // namespace usmc::wire

#endif  // USMC_WIRE_CDC_H_
