// CLC (Connection Layer Control) messages, framed as RFC 7609 frames them.
//
// Every message is: an 8-byte header {eyecatcher[4], type, be16 length, version
// byte}, a body, and a 4-byte trailer eyecatcher; `length` counts all of it.
// usmc sends the SMC-D eyecatcher (E2 D4 C3 C4, "SMCD" in EBCDIC) for the
// same-host path and the SMC-R eyecatcher (E2 D4 C3 D9, "SMCR") for the
// cross-host (RDMA) path, and accepts either on receive; the header eyecatcher
// is what sets `smcr` in a decoded message. The bodies follow the kernel's
// SMC-D v1 layouts where a field has a kernel counterpart and add the link
// fields usmc needs. An SMC-R Accept or Confirm also carries an opaque link
// address blob: the sender's fabric LinkAddress, which the engine serializes
// and parses; the wire layer only frames it.
//
// Invariant: decoding never reads outside the given span and never trusts
// `length`; every message that decodes passes the checks its type needs. A
// stream whose first bytes are not a CLC header is reported as kNotClc so
// callers can tell application data from a malformed handshake.
#ifndef USMC_WIRE_CLC_H_
#define USMC_WIRE_CLC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace usmc::wire {

inline constexpr std::array<uint8_t, 4> kEyecatcherSmcd = {0xE2, 0xD4, 0xC3,
                                                           0xC4};
inline constexpr std::array<uint8_t, 4> kEyecatcherSmcr = {0xE2, 0xD4, 0xC3,
                                                           0xD9};
inline constexpr size_t kClcHeaderSize = 8;
inline constexpr size_t kClcTrailerSize = 4;
inline constexpr size_t kClcMaxSize = 512;  // usmc never sends or accepts more
inline constexpr uint8_t kClcVersion = 2;   // version nibble usmc speaks
inline constexpr size_t kClcLinkBlobMax = 80;  // SMC-R link address blob

enum class ClcType : uint8_t {
  kProposal = 1,
  kAccept = 2,
  kConfirm = 3,
  kDecline = 4,
};

enum class ParseStatus {
  kOk,
  kNeedMore,   // fewer bytes than the header (or than `length`) so far
  kNotClc,     // first bytes are not an eyecatcher: application data
  kMalformed,  // eyecatcher matched but type/length/trailer/body is wrong
  kUnsupportedVersion,  // well-framed, but a version nibble usmc does not speak
};

const char* ParseStatusName(ParseStatus s);

struct ClcHeader {
  ClcType type = ClcType::kProposal;
  uint16_t length = 0;         // whole message including header and trailer
  uint8_t version = 0;         // high nibble of byte 7
  bool first_contact = false;  // typev2 bit 1 (in a Decline: "out of sync")
  bool smcr = false;           // the eyecatcher is the SMC-R one
};

// Parses the 8-byte header at the start of `bytes` (a peek of the stream).
// kNeedMore if fewer than 8 bytes; kNotClc if the eyecatcher does not match;
// kMalformed for an unknown type or a length outside [header+trailer,
// kClcMaxSize] or below the minimum size of its type.
ParseStatus ParseHeader(std::span<const uint8_t> bytes, ClcHeader* out);

// Ring sizes travel compressed as in SMC: size = 2^(code + 14), code 0..15 (16
// KiB .. 512 MiB).
uint8_t CompressRingSize(
    uint32_t bytes);  // smallest code whose size >= bytes (clamped to 0..15)
uint32_t DecompressRingSize(uint8_t code);  // 0 for a code > 15

// Client -> server. Offers the same-host link (SMC-D loopback, CHID 0xFFFF) and
// names the client's station so the server can hand it a segment.
struct Proposal {
  uint64_t peer_id =
      0;  // host identity (same value on both ends of a same-host connection)
  uint32_t pid = 0;  // client process id (station name part)
  uint64_t station_nonce =
      0;                     // client station nonce (station name part, random)
  uint8_t rx_size_code = 0;  // ring size the client wants to receive into
  uint8_t tx_size_code = 0;  // ring size the client wants to send from
  uint16_t chid = 0xFFFF;    // ISM CHID; 0xFFFF = loopback
  bool smcr = false;         // sent/received with the SMC-R eyecatcher

  friend bool operator==(const Proposal&, const Proposal&) = default;
};

// Server -> client. Names the slot (DMB token) both rings live in.
struct Accept {
  uint64_t peer_id = 0;
  uint32_t server_pid = 0;  // must equal SO_PEERCRED.pid of the station
                            // connection that brought the segment
  uint64_t link_nonce = 0;  // random per link; matches the station offer
  uint32_t segment_id = 0;  // segment within the link
  uint32_t slot =
      0;  // slot within the segment (with segment_id: the DMB token)
  uint32_t conn_token = 0;     // RMBE alert token, echoed in the Confirm
  uint8_t c2s_size_code = 0;   // ring the client writes
  uint8_t s2c_size_code = 0;   // ring the server writes
  bool first_contact = false;  // this Accept created the link
  bool smcr = false;           // SMC-R eyecatcher; only then the blob travels
  uint8_t link_len = 0;        // bytes of `link` in use (<= kClcLinkBlobMax)
  std::array<uint8_t, kClcLinkBlobMax> link{};  // opaque; zero past link_len

  friend bool operator==(const Accept&, const Accept&) = default;
};

// Client -> server. Echoes the Accept's identity so both ends agree on the
// slot.
struct Confirm {
  uint64_t peer_id = 0;
  uint64_t link_nonce = 0;
  uint32_t segment_id = 0;
  uint32_t slot = 0;
  uint32_t conn_token = 0;
  bool smcr = false;     // SMC-R eyecatcher; only then the blob travels
  uint8_t link_len = 0;  // bytes of `link` in use (<= kClcLinkBlobMax)
  std::array<uint8_t, kClcLinkBlobMax> link{};  // opaque; zero past link_len

  friend bool operator==(const Confirm&, const Confirm&) = default;
};

// Either direction. `diagnosis` is a DeclineCode (decline.h).
struct Decline {
  uint64_t peer_id = 0;
  uint32_t diagnosis = 0;
  bool out_of_sync = false;

  friend bool operator==(const Decline&, const Decline&) = default;
};

// Encoders write one whole message into `out` and return its length, or 0 if
// `out` is too small or an smcr Accept/Confirm has link_len > kClcLinkBlobMax.
// An smcr message uses the SMC-R eyecatcher in header and trailer; an smcr
// Accept or Confirm appends u8 link_len and link_len bytes of `link` to its
// body.
size_t Encode(const Proposal& m, std::span<uint8_t> out);
size_t Encode(const Accept& m, std::span<uint8_t> out);
size_t Encode(const Confirm& m, std::span<uint8_t> out);
size_t Encode(const Decline& m, std::span<uint8_t> out);

// Decoders take one whole message (exactly header.length bytes) and check
// header, type, length, trailer and field ranges (size codes <= 15, pid != 0,
// ...). Statuses: kNeedMore if `msg` is shorter than the header or than
// `length`, kNotClc for a bad header eyecatcher, kMalformed for anything else
// wrong in the framing (type other than the one asked for, `msg` longer than
// `length`, bad trailer), then kUnsupportedVersion for a version nibble other
// than 1..kClcVersion, then kMalformed for bad fields. `*out` is written only
// on kOk. Bytes beyond the type's fields (before the trailer) are ignored.
// `smcr` is set from the header eyecatcher (either trailer is accepted); an
// smcr Accept or Confirm whose body lacks the length byte or the link_len bytes
// it announces, or announces more than kClcLinkBlobMax, is kMalformed.
ParseStatus Decode(std::span<const uint8_t> msg, Proposal* out);
ParseStatus Decode(std::span<const uint8_t> msg, Accept* out);
ParseStatus Decode(std::span<const uint8_t> msg, Confirm* out);
ParseStatus Decode(std::span<const uint8_t> msg, Decline* out);

}  // namespace usmc::wire

#endif  // USMC_WIRE_CLC_H_
