#include "link/fabric/llc.h"

#include <cstring>

#include "link/fabric/bytes.h"

namespace usmc::fabric {

namespace {

constexpr size_t kAddrOffset = 16;

bool KnownLlcType(uint8_t t) {
  switch (static_cast<MsgType>(t)) {
    case MsgType::kConfirmLink:
    case MsgType::kAddLink:
    case MsgType::kDeleteLink:
    case MsgType::kConfirmRkey:
    case MsgType::kTestLink:
    case MsgType::kDeleteRkey:
      return true;
    default:
      return false;
  }
}

uint8_t AllowedFlags(MsgType t) {
  if (t == MsgType::kDeleteLink) return kLlcResp | kLlcDelAll | kLlcDelOrderly;
  return kLlcResp;
}

// Type-specific body fields; false if one is out of range.
bool ParseLlcBody(const uint8_t* p, LlcMsg* m) {
  switch (m->type) {
    case MsgType::kConfirmLink:
      m->token = bytes::Get64(p + 4);
      m->max_links = p[12];
      return m->max_links >= 1 && m->max_links <= kMaxLinks;
    case MsgType::kAddLink:
      m->token = bytes::Get64(p + 4);
      m->addr.format = static_cast<AddrFormat>(p[12]);
      m->addr.len = p[13];
      if (m->addr.len > kEpAddrMax) return false;
      std::memcpy(m->addr.bytes.data(), p + kAddrOffset, m->addr.len);
      return m->addr.Routable();
    case MsgType::kDeleteLink:
      m->reason = bytes::Get32(p + 4);
      return true;
    case MsgType::kConfirmRkey:
      m->region_id = bytes::Get32(p + 4);
      m->rkey = bytes::Get64(p + 8);
      m->base = bytes::Get64(p + 16);
      m->length = bytes::Get64(p + 24);
      return m->region_id < kMaxRegions && ValidRegion(m->base, m->length);
    case MsgType::kTestLink:
      std::memcpy(m->test_data.data(), p + 4, m->test_data.size());
      return true;
    case MsgType::kDeleteRkey:
      m->region_id = bytes::Get32(p + 4);
      return m->region_id < kMaxRegions;
    default:
      return false;
  }
}

void ParseCdc(const uint8_t* p, CdcMsg* c) {
  c->seqno = bytes::Get16(p + 2);
  c->token = bytes::Get32(p + 4);
  c->prod_wrap = bytes::Get16(p + 10);
  c->prod_count = bytes::Get32(p + 12);
  c->cons_wrap = bytes::Get16(p + 18);
  c->cons_count = bytes::Get32(p + 20);
  c->prod_flags = p[24];
  c->conn_flags = p[25];
}

}  // namespace

const char* CtrlStatusName(CtrlStatus s) {
  switch (s) {
    case CtrlStatus::kOk:
      return "ok";
    case CtrlStatus::kBadSize:
      return "bad size";
    case CtrlStatus::kUnknownType:
      return "unknown type";
    case CtrlStatus::kBadFlags:
      return "bad flags";
    case CtrlStatus::kBadField:
      return "bad field";
  }
  return "?";
}

CtrlStatus ParseControl(std::span<const uint8_t> in, CtrlMsg* out) {
  *out = CtrlMsg{};
  if (in.size() != kCtrlMsgSize || in[1] != kCtrlMsgSize) {
    return CtrlStatus::kBadSize;
  }
  const uint8_t* p = in.data();
  if (p[0] == static_cast<uint8_t>(MsgType::kCdc)) {
    out->type = MsgType::kCdc;
    ParseCdc(p, &out->cdc);
    return CtrlStatus::kOk;
  }
  if (!KnownLlcType(p[0])) return CtrlStatus::kUnknownType;
  LlcMsg m;
  m.type = static_cast<MsgType>(p[0]);
  m.flags = p[2];
  m.link_id = p[3];
  if ((m.flags & ~AllowedFlags(m.type)) != 0) return CtrlStatus::kBadFlags;
  if (m.link_id >= kMaxLinks || !ParseLlcBody(p, &m)) {
    return CtrlStatus::kBadField;
  }
  out->type = m.type;
  out->llc = m;
  return CtrlStatus::kOk;
}

size_t EncodeLlc(const LlcMsg& m, std::span<uint8_t, kCtrlMsgSize> out) {
  uint8_t* p = out.data();
  std::memset(p, 0, kCtrlMsgSize);
  p[0] = static_cast<uint8_t>(m.type);
  p[1] = kCtrlMsgSize;
  p[2] = m.flags;
  p[3] = m.link_id;
  switch (m.type) {
    case MsgType::kConfirmLink:
      bytes::Put64(p + 4, m.token);
      p[12] = m.max_links;
      break;
    case MsgType::kAddLink:
      bytes::Put64(p + 4, m.token);
      p[12] = static_cast<uint8_t>(m.addr.format);
      p[13] = m.addr.len;
      if (m.addr.len > kEpAddrMax) return 0;
      std::memcpy(p + kAddrOffset, m.addr.bytes.data(), m.addr.len);
      break;
    case MsgType::kDeleteLink:
      bytes::Put32(p + 4, m.reason);
      break;
    case MsgType::kConfirmRkey:
      bytes::Put32(p + 4, m.region_id);
      bytes::Put64(p + 8, m.rkey);
      bytes::Put64(p + 16, m.base);
      bytes::Put64(p + 24, m.length);
      break;
    case MsgType::kTestLink:
      std::memcpy(p + 4, m.test_data.data(), m.test_data.size());
      break;
    case MsgType::kDeleteRkey:
      bytes::Put32(p + 4, m.region_id);
      break;
    default:
      return 0;
  }
  CtrlMsg check;
  return ParseControl(out, &check) == CtrlStatus::kOk ? kCtrlMsgSize : 0;
}

size_t EncodeCdc(const CdcMsg& m, std::span<uint8_t, kCtrlMsgSize> out) {
  uint8_t* p = out.data();
  std::memset(p, 0, kCtrlMsgSize);
  p[0] = static_cast<uint8_t>(MsgType::kCdc);
  p[1] = kCtrlMsgSize;
  bytes::Put16(p + 2, m.seqno);
  bytes::Put32(p + 4, m.token);
  bytes::Put16(p + 10, m.prod_wrap);
  bytes::Put32(p + 12, m.prod_count);
  bytes::Put16(p + 18, m.cons_wrap);
  bytes::Put32(p + 20, m.cons_count);
  p[24] = m.prod_flags;
  p[25] = m.conn_flags;
  return kCtrlMsgSize;
}

}  // namespace usmc::fabric
