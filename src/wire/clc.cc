// CLC message codec.
//
// Header (all types), bytes 0..7:
//   0  eyecatcher[4]   E2 D4 C3 C4 (SMC-D) or, for an smcr message,
//                      E2 D4 C3 D9 (SMC-R) sent; either accepted
//   4  type            1 Proposal, 2 Accept, 3 Confirm, 4 Decline
//   5  be16 length     whole message, header and trailer included
//   7  version:4 | typev2:2 | typev1:2   (bit 7 .. bit 0)
//                      sent: version 2, typev1 = typev2 = 1 (SMC-D), for
//                      SMC-R too (only the eyecatcher tells them apart);
//                      typev2 bit 0b10 = first contact (Decline: out of sync)
// Trailer (all types): eyecatcher[4] in the last 4 bytes, the same one as the
// header on send; either accepted.
//
// Bodies (offsets from the start of the message). Field order follows the
// kernel's SMC-D v1 messages where a field has a counterpart there: peer_id
// first, then the endpoint identity (the ISM GID's place), then the DMB token,
// the buffer sizes and the link id. All integers big-endian; reserved bytes
// are zero on send and ignored on receive.
//
// Proposal, 40 bytes:
//   8  be64 peer_id
//  16  be32 pid              } client station, in the place of the
//  20  be32 reserved         } kernel's 16-byte gid
//  24  be64 station_nonce    }
//  32  be16 chid
//  34  u8   rx_size_code     (0..15)
//  35  u8   tx_size_code     (0..15)
//  36  trailer
//
// Accept, 52 bytes:
//   8  be64 peer_id
//  16  be32 server_pid       } the kernel's be64 gid
//  20  be32 reserved         }
//  24  be32 segment_id       } the kernel's be64 DMB token
//  28  be32 slot             }
//  32  u8   c2s_size_code    (0..15)
//  33  u8   s2c_size_code    (0..15)
//  34  be16 reserved
//  36  be64 link_nonce       (the kernel's be32 linkid, widened)
//  44  be32 conn_token
//  48  trailer               (SMC-D)
//  48  u8   link_len         } SMC-R only: 53 + link_len bytes;
//  49  link[link_len]        } link_len <= 80, then the trailer
//
// Confirm, 40 bytes:
//   8  be64 peer_id
//  16  be32 segment_id
//  20  be32 slot
//  24  be64 link_nonce
//  32  be32 conn_token
//  36  trailer               (SMC-D)
//  36  u8   link_len         } SMC-R only: 41 + link_len bytes;
//  37  link[link_len]        } link_len <= 80, then the trailer
//
// Decline, 28 bytes (same size and order as the kernel's v1 Decline):
//   8  be64 peer_id
//  16  be32 diagnosis
//  20  os_type:4 | reserved:4   (os_type 2 = Linux)
//  21  reserved[3]
//  24  trailer
//
// Proposal and Decline have the same body for SMC-D and SMC-R.
//
// A message longer than its type's size is accepted (a later version may
// append fields before the trailer); the extra bytes (after the link blob, for
// SMC-R) are ignored.
#include "wire/clc.h"

#include <cstring>

namespace usmc::wire {
namespace {

constexpr size_t kProposalSize = 40;
constexpr size_t kAcceptSize = 52;
constexpr size_t kConfirmSize = 40;
constexpr size_t kDeclineSize = 28;
constexpr size_t kAcceptLinkOffset = kAcceptSize - kClcTrailerSize;
constexpr size_t kConfirmLinkOffset = kConfirmSize - kClcTrailerSize;

constexpr size_t kTypeOffset = 4;
constexpr size_t kLengthOffset = 5;
constexpr size_t kVersionOffset = 7;
constexpr size_t kEyecatcherSize = 4;

constexpr uint8_t kTypeSmcd = 1;
constexpr uint8_t kFirstContactBit = 0b10;
constexpr uint8_t kOsTypeLinux = 2;
constexpr uint8_t kMaxSizeCode = 15;
constexpr unsigned kRingSizeShift = 14;  // code 0 = 16 KiB

void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void PutBe32(uint8_t* p, uint32_t v) {
  PutBe16(p, static_cast<uint16_t>(v >> 16));
  PutBe16(p + 2, static_cast<uint16_t>(v));
}

void PutBe64(uint8_t* p, uint64_t v) {
  PutBe32(p, static_cast<uint32_t>(v >> 32));
  PutBe32(p + 4, static_cast<uint32_t>(v));
}

uint16_t GetBe16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t GetBe32(const uint8_t* p) {
  return (static_cast<uint32_t>(GetBe16(p)) << 16) | GetBe16(p + 2);
}

uint64_t GetBe64(const uint8_t* p) {
  return (static_cast<uint64_t>(GetBe32(p)) << 32) | GetBe32(p + 4);
}

// True if the first `n` (<= 4) bytes at `p` start one of the eyecatchers.
bool StartsLikeEyecatcher(const uint8_t* p, size_t n) {
  return std::memcmp(p, kEyecatcherSmcd.data(), n) == 0 ||
         std::memcmp(p, kEyecatcherSmcr.data(), n) == 0;
}

bool IsEyecatcher(const uint8_t* p) {
  return StartsLikeEyecatcher(p, kEyecatcherSize);
}

bool IsSmcrEyecatcher(const uint8_t* p) {
  return std::memcmp(p, kEyecatcherSmcr.data(), kEyecatcherSize) == 0;
}

const uint8_t* EyecatcherFor(bool smcr) {
  return smcr ? kEyecatcherSmcr.data() : kEyecatcherSmcd.data();
}

// Bytes the SMC-R link blob section (u8 length + blob) adds to a body.
size_t LinkSectionSize(bool smcr, uint8_t link_len) {
  return smcr ? 1 + size_t{link_len} : 0;
}

void PutLink(uint8_t* p, uint8_t link_len,
             const std::array<uint8_t, kClcLinkBlobMax>& link) {
  p[0] = link_len;
  std::memcpy(p + 1, link.data(), link_len);
}

// Reads the link blob section at `offset` of `msg`; false unless the length
// byte and the whole blob lie before the trailer and the blob fits `link`.
// Zeroes the unused tail of `link` so decoded messages compare equal.
bool GetLink(std::span<const uint8_t> msg, size_t offset, uint8_t* link_len,
             std::array<uint8_t, kClcLinkBlobMax>* link) {
  const size_t body_end = msg.size() - kClcTrailerSize;
  if (offset >= body_end) return false;
  const uint8_t n = msg[offset];
  if (n > kClcLinkBlobMax || body_end - offset - 1 < n) return false;
  link->fill(0);
  std::memcpy(link->data(), msg.data() + offset + 1, n);
  *link_len = n;
  return true;
}

// Minimum length of a message of `type`, or 0 for an unknown type.
size_t MinLength(uint8_t type) {
  switch (static_cast<ClcType>(type)) {
    case ClcType::kProposal:
      return kProposalSize;
    case ClcType::kAccept:
      return kAcceptSize;
    case ClcType::kConfirm:
      return kConfirmSize;
    case ClcType::kDecline:
      return kDeclineSize;
  }
  return 0;
}

bool IsSupportedVersion(uint8_t version) {
  return version >= 1 && version <= kClcVersion;
}

bool IsValidSizeCode(uint8_t code) { return code <= kMaxSizeCode; }

// Writes header and trailer of a `size`-byte message and zeroes the body.
// Returns the start of the message, or nullptr if `out` is too small.
uint8_t* BeginMessage(std::span<uint8_t> out, ClcType type, size_t size,
                      bool first_contact, bool smcr) {
  if (out.size() < size) return nullptr;
  uint8_t* p = out.data();
  std::memset(p, 0, size);
  std::memcpy(p, EyecatcherFor(smcr), kEyecatcherSize);
  p[kTypeOffset] = static_cast<uint8_t>(type);
  PutBe16(p + kLengthOffset, static_cast<uint16_t>(size));
  const uint8_t typev2 = kTypeSmcd | (first_contact ? kFirstContactBit : 0);
  p[kVersionOffset] =
      static_cast<uint8_t>((kClcVersion << 4) | (typev2 << 2) | kTypeSmcd);
  std::memcpy(p + size - kClcTrailerSize, EyecatcherFor(smcr), kEyecatcherSize);
  return p;
}

// Checks everything about `msg` that does not depend on the body layout:
// header, exact type, length == msg.size(), trailer, version.
ParseStatus CheckFrame(std::span<const uint8_t> msg, ClcType type,
                       ClcHeader* hdr) {
  ParseStatus s = ParseHeader(msg, hdr);
  if (s != ParseStatus::kOk) return s;
  if (msg.size() < hdr->length) return ParseStatus::kNeedMore;
  if (msg.size() > hdr->length) return ParseStatus::kMalformed;
  if (hdr->type != type) return ParseStatus::kMalformed;
  if (!IsEyecatcher(msg.data() + msg.size() - kClcTrailerSize)) {
    return ParseStatus::kMalformed;
  }
  if (!IsSupportedVersion(hdr->version)) {
    return ParseStatus::kUnsupportedVersion;
  }
  return ParseStatus::kOk;
}

}  // namespace

const char* ParseStatusName(ParseStatus s) {
  switch (s) {
    case ParseStatus::kOk:
      return "ok";
    case ParseStatus::kNeedMore:
      return "need_more";
    case ParseStatus::kNotClc:
      return "not_clc";
    case ParseStatus::kMalformed:
      return "malformed";
    case ParseStatus::kUnsupportedVersion:
      return "unsupported_version";
  }
  return "unknown";
}

ParseStatus ParseHeader(std::span<const uint8_t> bytes, ClcHeader* out) {
  const uint8_t* p = bytes.data();
  if (bytes.size() < kEyecatcherSize) {
    // Decide early: a stream that cannot become an eyecatcher is app data.
    if (!bytes.empty() && !StartsLikeEyecatcher(p, bytes.size())) {
      return ParseStatus::kNotClc;
    }
    return ParseStatus::kNeedMore;
  }
  if (!IsEyecatcher(p)) return ParseStatus::kNotClc;
  if (bytes.size() < kClcHeaderSize) return ParseStatus::kNeedMore;

  const uint8_t type = p[kTypeOffset];
  const size_t min_length = MinLength(type);
  const uint16_t length = GetBe16(p + kLengthOffset);
  if (min_length == 0) return ParseStatus::kMalformed;
  if (length < min_length || length > kClcMaxSize) {
    return ParseStatus::kMalformed;
  }
  const uint8_t version_byte = p[kVersionOffset];
  out->type = static_cast<ClcType>(type);
  out->length = length;
  out->version = static_cast<uint8_t>(version_byte >> 4);
  out->first_contact = ((version_byte >> 2) & kFirstContactBit) != 0;
  out->smcr = IsSmcrEyecatcher(p);
  return ParseStatus::kOk;
}

uint8_t CompressRingSize(uint32_t bytes) {
  uint8_t code = 0;
  while (code < kMaxSizeCode && DecompressRingSize(code) < bytes) ++code;
  return code;
}

uint32_t DecompressRingSize(uint8_t code) {
  if (!IsValidSizeCode(code)) return 0;
  return uint32_t{1} << (code + kRingSizeShift);
}

size_t Encode(const Proposal& m, std::span<uint8_t> out) {
  uint8_t* p =
      BeginMessage(out, ClcType::kProposal, kProposalSize, false, m.smcr);
  if (p == nullptr) return 0;
  PutBe64(p + 8, m.peer_id);
  PutBe32(p + 16, m.pid);
  PutBe64(p + 24, m.station_nonce);
  PutBe16(p + 32, m.chid);
  p[34] = m.rx_size_code;
  p[35] = m.tx_size_code;
  return kProposalSize;
}

size_t Encode(const Accept& m, std::span<uint8_t> out) {
  if (m.smcr && m.link_len > kClcLinkBlobMax) return 0;
  const size_t size = kAcceptSize + LinkSectionSize(m.smcr, m.link_len);
  uint8_t* p =
      BeginMessage(out, ClcType::kAccept, size, m.first_contact, m.smcr);
  if (p == nullptr) return 0;
  PutBe64(p + 8, m.peer_id);
  PutBe32(p + 16, m.server_pid);
  PutBe32(p + 24, m.segment_id);
  PutBe32(p + 28, m.slot);
  p[32] = m.c2s_size_code;
  p[33] = m.s2c_size_code;
  PutBe64(p + 36, m.link_nonce);
  PutBe32(p + 44, m.conn_token);
  if (m.smcr) PutLink(p + kAcceptLinkOffset, m.link_len, m.link);
  return size;
}

size_t Encode(const Confirm& m, std::span<uint8_t> out) {
  if (m.smcr && m.link_len > kClcLinkBlobMax) return 0;
  const size_t size = kConfirmSize + LinkSectionSize(m.smcr, m.link_len);
  uint8_t* p = BeginMessage(out, ClcType::kConfirm, size, false, m.smcr);
  if (p == nullptr) return 0;
  PutBe64(p + 8, m.peer_id);
  PutBe32(p + 16, m.segment_id);
  PutBe32(p + 20, m.slot);
  PutBe64(p + 24, m.link_nonce);
  PutBe32(p + 32, m.conn_token);
  if (m.smcr) PutLink(p + kConfirmLinkOffset, m.link_len, m.link);
  return size;
}

size_t Encode(const Decline& m, std::span<uint8_t> out) {
  uint8_t* p =
      BeginMessage(out, ClcType::kDecline, kDeclineSize, m.out_of_sync, false);
  if (p == nullptr) return 0;
  PutBe64(p + 8, m.peer_id);
  PutBe32(p + 16, m.diagnosis);
  p[20] = kOsTypeLinux << 4;
  return kDeclineSize;
}

ParseStatus Decode(std::span<const uint8_t> msg, Proposal* out) {
  ClcHeader hdr;
  ParseStatus s = CheckFrame(msg, ClcType::kProposal, &hdr);
  if (s != ParseStatus::kOk) return s;
  const uint8_t* p = msg.data();
  Proposal m;
  m.peer_id = GetBe64(p + 8);
  m.pid = GetBe32(p + 16);
  m.station_nonce = GetBe64(p + 24);
  m.chid = GetBe16(p + 32);
  m.rx_size_code = p[34];
  m.tx_size_code = p[35];
  m.smcr = hdr.smcr;
  if (m.pid == 0 || !IsValidSizeCode(m.rx_size_code) ||
      !IsValidSizeCode(m.tx_size_code)) {
    return ParseStatus::kMalformed;
  }
  *out = m;
  return ParseStatus::kOk;
}

ParseStatus Decode(std::span<const uint8_t> msg, Accept* out) {
  ClcHeader hdr;
  ParseStatus s = CheckFrame(msg, ClcType::kAccept, &hdr);
  if (s != ParseStatus::kOk) return s;
  const uint8_t* p = msg.data();
  Accept m;
  m.peer_id = GetBe64(p + 8);
  m.server_pid = GetBe32(p + 16);
  m.segment_id = GetBe32(p + 24);
  m.slot = GetBe32(p + 28);
  m.c2s_size_code = p[32];
  m.s2c_size_code = p[33];
  m.link_nonce = GetBe64(p + 36);
  m.conn_token = GetBe32(p + 44);
  m.first_contact = hdr.first_contact;
  m.smcr = hdr.smcr;
  if (m.server_pid == 0 || !IsValidSizeCode(m.c2s_size_code) ||
      !IsValidSizeCode(m.s2c_size_code)) {
    return ParseStatus::kMalformed;
  }
  if (m.smcr && !GetLink(msg, kAcceptLinkOffset, &m.link_len, &m.link)) {
    return ParseStatus::kMalformed;
  }
  *out = m;
  return ParseStatus::kOk;
}

ParseStatus Decode(std::span<const uint8_t> msg, Confirm* out) {
  ClcHeader hdr;
  ParseStatus s = CheckFrame(msg, ClcType::kConfirm, &hdr);
  if (s != ParseStatus::kOk) return s;
  const uint8_t* p = msg.data();
  Confirm m;
  m.peer_id = GetBe64(p + 8);
  m.segment_id = GetBe32(p + 16);
  m.slot = GetBe32(p + 20);
  m.link_nonce = GetBe64(p + 24);
  m.conn_token = GetBe32(p + 32);
  m.smcr = hdr.smcr;
  if (m.smcr && !GetLink(msg, kConfirmLinkOffset, &m.link_len, &m.link)) {
    return ParseStatus::kMalformed;
  }
  *out = m;
  return ParseStatus::kOk;
}

ParseStatus Decode(std::span<const uint8_t> msg, Decline* out) {
  ClcHeader hdr;
  ParseStatus s = CheckFrame(msg, ClcType::kDecline, &hdr);
  if (s != ParseStatus::kOk) return s;
  const uint8_t* p = msg.data();
  Decline m;
  m.peer_id = GetBe64(p + 8);
  m.diagnosis = GetBe32(p + 16);
  m.out_of_sync = hdr.first_contact;
  *out = m;
  return ParseStatus::kOk;
}

}  // namespace usmc::wire
