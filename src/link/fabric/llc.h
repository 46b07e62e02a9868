// Control messages on a fabric link: 44 bytes each, sent with fi_send into the
// peer's posted receive pool (SMC-R's LLC and CDC messages).
//
// LLC layout: u8 type | u8 length (44) | u8 flags | u8 link_id | 40-byte body
//   CONFIRM_LINK 0x01  be64 token, u8 max_links
//   ADD_LINK     0x02  be64 token (nonce of the new link), u8 addr format,
//                      u8 addr_len, u8 rsvd[2], addr[22]
//   DELETE_LINK  0x04  be32 reason                  flags: ALL, ORDERLY
//   CONFIRM_RKEY 0x06  be32 region_id, be64 rkey, be64 base, be64 length
//   TEST_LINK    0x07  16 bytes user data
//   DELETE_RKEY  0x09  be32 region_id
// link_id is the link the message is about (which may not be the link that
// carries it). Flag 0x80 marks a response.
// CDC layout (as SMC-R): u8 0xFE | u8 44 | be16 seqno | be32 token |
//   producer {be16 rsvd, be16 wrap, be32 count} | consumer {same} |
//   u8 prod_flags | u8 conn_state_flags | rsvd[18]
//
// Invariant: ParseControl reads at most 44 bytes of its span, rejects any
// other size, unknown types, flags a type does not define, link ids >=
// kMaxLinks, invalid addresses and out-of-range regions. Reserved bytes are
// ignored on input and zero on output.
#ifndef USMC_LINK_FABRIC_LLC_H_
#define USMC_LINK_FABRIC_LLC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "link/fabric/link_address.h"

namespace usmc::fabric {

inline constexpr size_t kCtrlMsgSize = 44;

enum class MsgType : uint8_t {
  kConfirmLink = 0x01,
  kAddLink = 0x02,
  kDeleteLink = 0x04,
  kConfirmRkey = 0x06,
  kTestLink = 0x07,
  kDeleteRkey = 0x09,
  kCdc = 0xFE,
};

enum LlcFlags : uint8_t {
  kLlcResp = 0x80,
  kLlcDelAll = 0x40,
  kLlcDelOrderly = 0x20,
};

enum DeleteReason : uint32_t {
  kReasonLostPath = 0x00010000,
  kReasonOpInitTerm = 0x00020000,
  kReasonProgInitTerm = 0x00030000,
  kReasonProtViol = 0x00040000,
  kReasonNoAsym = 0x00050000,
};

// CDC prod_flags (SMC-R).
enum CdcProdFlags : uint8_t {
  kCdcWriteBlocked = 0x80,
  kCdcUrgPending = 0x40,
  kCdcUrgPresent = 0x20,
  kCdcConsUpdReq = 0x10,
  kCdcFailoverValidation = 0x08,
};

struct LlcMsg {
  MsgType type = MsgType::kTestLink;
  uint8_t flags = 0;
  uint8_t link_id = 0;
  uint64_t token = 0;                   // CONFIRM_LINK, ADD_LINK
  uint8_t max_links = 0;                // CONFIRM_LINK
  EpAddr addr;                          // ADD_LINK
  uint32_t reason = 0;                  // DELETE_LINK
  std::array<uint8_t, 16> test_data{};  // TEST_LINK
  uint32_t region_id = 0;               // CONFIRM_RKEY, DELETE_RKEY
  uint64_t rkey = 0;                    // CONFIRM_RKEY
  uint64_t base = 0;
  uint64_t length = 0;
  bool operator==(const LlcMsg& o) const = default;
};

struct CdcMsg {
  uint16_t seqno = 0;
  uint32_t token = 0;
  uint16_t prod_wrap = 0;
  uint32_t prod_count = 0;
  uint16_t cons_wrap = 0;
  uint32_t cons_count = 0;
  uint8_t prod_flags = 0;
  uint8_t conn_flags = 0;
  bool operator==(const CdcMsg& o) const = default;
};

enum class CtrlStatus {
  kOk,
  kBadSize,  // not exactly 44 bytes, or the length byte is not 44
  kUnknownType,
  kBadFlags,
  kBadField,  // link id, address, region or region id out of range
};
const char* CtrlStatusName(CtrlStatus s);

// A parsed control message: exactly one of llc / cdc is meaningful, by `type`.
struct CtrlMsg {
  MsgType type = MsgType::kTestLink;
  LlcMsg llc;
  CdcMsg cdc;
};

CtrlStatus ParseControl(std::span<const uint8_t> in, CtrlMsg* out);
// Both return kCtrlMsgSize, or 0 if the message would not parse.
size_t EncodeLlc(const LlcMsg& m, std::span<uint8_t, kCtrlMsgSize> out);
size_t EncodeCdc(const CdcMsg& m, std::span<uint8_t, kCtrlMsgSize> out);

}  // namespace usmc::fabric

#endif  // USMC_LINK_FABRIC_LLC_H_
