// libFuzzer target for the fabric link's peer-controlled parsers: every
// input goes through LinkAddress::Parse and ParseControl (at each length and
// as a 44-byte message); whatever parses must re-encode to something that
// parses to the same value, and what it promises (link id, address length,
// region bounds) must hold.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "link/fabric/link_address.h"
#include "link/fabric/llc.h"

namespace {

using usmc::fabric::AddrStatus;
using usmc::fabric::CtrlMsg;
using usmc::fabric::CtrlStatus;
using usmc::fabric::LinkAddress;
using usmc::fabric::MsgType;

void Require(bool condition) {
  if (!condition) std::abort();
}

void CheckAddress(std::span<const uint8_t> in) {
  LinkAddress a;
  const AddrStatus s = LinkAddress::Parse(in, &a);
  Require(usmc::fabric::AddrStatusName(s) != nullptr);
  if (s != AddrStatus::kOk) {
    Require(a == LinkAddress{});
    return;
  }
  Require(a.link_id < usmc::fabric::kMaxLinks);
  Require(a.addr.Valid() && a.addr.len <= usmc::fabric::kEpAddrMax);
  Require(usmc::fabric::ValidRegion(a.base, a.length));
  std::array<uint8_t, usmc::fabric::kLinkAddressMax> out;
  const size_t n = a.Serialize(out);
  Require(n == in.size());
  LinkAddress again;
  Require(LinkAddress::Parse(std::span(out.data(), n), &again) ==
          AddrStatus::kOk);
  Require(again == a);
}

void CheckControl(std::span<const uint8_t> in) {
  CtrlMsg m;
  const CtrlStatus s = usmc::fabric::ParseControl(in, &m);
  Require(usmc::fabric::CtrlStatusName(s) != nullptr);
  if (s != CtrlStatus::kOk) return;
  Require(in.size() == usmc::fabric::kCtrlMsgSize);
  std::array<uint8_t, usmc::fabric::kCtrlMsgSize> out;
  CtrlMsg again;
  if (m.type == MsgType::kCdc) {
    Require(usmc::fabric::EncodeCdc(m.cdc, out) == out.size());
    Require(usmc::fabric::ParseControl(out, &again) == CtrlStatus::kOk);
    Require(again.cdc == m.cdc);
    return;
  }
  Require(m.llc.link_id < usmc::fabric::kMaxLinks);
  Require(m.llc.addr.len <= usmc::fabric::kEpAddrMax);
  Require(usmc::fabric::EncodeLlc(m.llc, out) == out.size());
  Require(usmc::fabric::ParseControl(out, &again) == CtrlStatus::kOk);
  Require(again.type == m.type && again.llc == m.llc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  CheckAddress(in);
  CheckControl(in);
  if (size >= usmc::fabric::kCtrlMsgSize) {
    CheckControl(in.first(usmc::fabric::kCtrlMsgSize));
  }
  return 0;
}
