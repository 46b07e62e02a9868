// libFuzzer target for the CLC codec: every input goes through ParseHeader and
// the decoder of every type, whichever eyecatcher (SMC-D or SMC-R) it carries;
// whatever decodes must agree with the header on `smcr`, and re-encode to a
// message that decodes to the same value and encodes to the same bytes.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "wire/clc.h"
#include "wire/decline.h"

namespace {

using usmc::wire::ClcHeader;
using usmc::wire::ParseStatus;

void Require(bool condition) {
  if (!condition) std::abort();
}

template <typename Message>
void CheckDecode(std::span<const uint8_t> in, ParseStatus header_status,
                 const ClcHeader& hdr) {
  Message m;
  const ParseStatus s = usmc::wire::Decode(in, &m);
  Require(usmc::wire::ParseStatusName(s) != nullptr);
  if (header_status == ParseStatus::kNotClc) Require(s == ParseStatus::kNotClc);
  if (s != ParseStatus::kOk) return;
  Require(header_status == ParseStatus::kOk && hdr.length == in.size());
  if constexpr (requires { m.smcr; }) Require(m.smcr == hdr.smcr);
  if constexpr (requires { m.link_len; }) {
    Require(m.link_len <= usmc::wire::kClcLinkBlobMax);
  }

  std::array<uint8_t, usmc::wire::kClcMaxSize> first;
  const size_t n = usmc::wire::Encode(m, first);
  Require(n != 0);
  Message again;
  Require(usmc::wire::Decode(std::span(first.data(), n), &again) ==
          ParseStatus::kOk);
  Require(again == m);
  std::array<uint8_t, usmc::wire::kClcMaxSize> second;
  Require(usmc::wire::Encode(again, second) == n);
  Require(std::memcmp(first.data(), second.data(), n) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  ClcHeader hdr;
  const ParseStatus header_status = usmc::wire::ParseHeader(in, &hdr);
  if (header_status == ParseStatus::kOk) {
    Require(hdr.length >=
                usmc::wire::kClcHeaderSize + usmc::wire::kClcTrailerSize &&
            hdr.length <= usmc::wire::kClcMaxSize);
  }
  CheckDecode<usmc::wire::Proposal>(in, header_status, hdr);
  CheckDecode<usmc::wire::Accept>(in, header_status, hdr);
  CheckDecode<usmc::wire::Confirm>(in, header_status, hdr);
  CheckDecode<usmc::wire::Decline>(in, header_status, hdr);

  if (size >= 4) {
    uint32_t bytes;
    std::memcpy(&bytes, data, sizeof(bytes));
    const uint8_t code = usmc::wire::CompressRingSize(bytes);
    Require(code <= 15);
    Require(usmc::wire::DecompressRingSize(code) >= bytes || code == 15);
    Require(code == 0 || usmc::wire::DecompressRingSize(code - 1) < bytes);
    Require(usmc::wire::DeclineName(bytes) != nullptr);
  }
  return 0;
}
