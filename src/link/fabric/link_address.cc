#include "link/fabric/link_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "link/fabric/bytes.h"

namespace usmc::fabric {

namespace {

constexpr uint8_t kLenIn = 6;
constexpr uint8_t kLenIn6 = 22;

uint8_t ExpectedLen(AddrFormat f) {
  switch (f) {
    case AddrFormat::kIn:
      return kLenIn;
    case AddrFormat::kIn6:
      return kLenIn6;
    default:
      return 0;
  }
}

}  // namespace

const char* ProviderName(Provider p) {
  switch (p) {
    case Provider::kVerbs:
      return "verbs";
    case Provider::kEfa:
      return "efa";
    case Provider::kTcp:
      return "tcp";
    default:
      return "none";
  }
}

Provider ProviderFromName(const std::string& name) {
  if (name == "verbs") return Provider::kVerbs;
  if (name == "efa") return Provider::kEfa;
  if (name == "tcp") return Provider::kTcp;
  return Provider::kNone;
}

bool EpAddr::FromSockaddr(const sockaddr* sa, size_t sa_len, EpAddr* out) {
  *out = EpAddr{};
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET && sa_len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    out->format = AddrFormat::kIn;
    out->len = kLenIn;
    std::memcpy(out->bytes.data(), &in->sin_addr, 4);
    std::memcpy(out->bytes.data() + 4, &in->sin_port, 2);
    return true;
  }
  if (sa->sa_family == AF_INET6 && sa_len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    out->format = AddrFormat::kIn6;
    out->len = kLenIn6;
    std::memcpy(out->bytes.data(), &in6->sin6_addr, 16);
    std::memcpy(out->bytes.data() + 16, &in6->sin6_port, 2);
    bytes::Put32(out->bytes.data() + 18, in6->sin6_scope_id);
    return true;
  }
  return false;
}

size_t EpAddr::ToSockaddr(sockaddr_storage* ss) const {
  std::memset(ss, 0, sizeof *ss);
  if (!Valid()) return 0;
  if (format == AddrFormat::kIn) {
    auto* in = reinterpret_cast<sockaddr_in*>(ss);
    in->sin_family = AF_INET;
    std::memcpy(&in->sin_addr, bytes.data(), 4);
    std::memcpy(&in->sin_port, bytes.data() + 4, 2);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  in6->sin6_family = AF_INET6;
  std::memcpy(&in6->sin6_addr, bytes.data(), 16);
  std::memcpy(&in6->sin6_port, bytes.data() + 16, 2);
  in6->sin6_scope_id = bytes::Get32(bytes.data() + 18);
  return sizeof(sockaddr_in6);
}

bool EpAddr::Valid() const {
  const uint8_t want = ExpectedLen(format);
  return want != 0 && len == want;
}

uint16_t EpAddr::port() const {
  if (!Valid()) return 0;
  return bytes::Get16(bytes.data() + (format == AddrFormat::kIn ? 4 : 16));
}

std::string EpAddr::ToString() const {
  if (!Valid()) return "invalid";
  char host[INET6_ADDRSTRLEN] = {};
  const int family = format == AddrFormat::kIn ? AF_INET : AF_INET6;
  inet_ntop(family, bytes.data(), host, sizeof host);
  const std::string p = std::to_string(port());
  if (family == AF_INET) return std::string(host) + ":" + p;
  return "[" + std::string(host) + "]:" + p;
}

bool EpAddr::operator==(const EpAddr& o) const {
  return format == o.format && len == o.len &&
         std::memcmp(bytes.data(), o.bytes.data(), len) == 0;
}

const char* AddrStatusName(AddrStatus s) {
  switch (s) {
    case AddrStatus::kOk:
      return "ok";
    case AddrStatus::kTruncated:
      return "truncated";
    case AddrStatus::kBadMagic:
      return "bad magic";
    case AddrStatus::kUnsupportedVersion:
      return "unsupported version";
    case AddrStatus::kMalformed:
      return "malformed";
  }
  return "?";
}

bool ValidRegion(uint64_t base, uint64_t length) {
  return length >= 1 && length <= kMaxRegionBytes && base + length > base;
}

size_t LinkAddress::Serialize(std::span<uint8_t> out) const {
  const size_t n = kLinkAddressFixed + addr.len;
  if (out.size() < n || !addr.Valid() || link_id >= kMaxLinks ||
      provider == Provider::kNone ||
      static_cast<uint8_t>(provider) > static_cast<uint8_t>(Provider::kTcp) ||
      region_id >= kMaxRegions || !ValidRegion(base, length)) {
    return 0;
  }
  uint8_t* p = out.data();
  std::memset(p, 0, kLinkAddressFixed);
  bytes::Put32(p, kLinkAddressMagic);
  p[4] = kLinkAddressVersion;
  p[5] = link_id;
  p[6] = static_cast<uint8_t>(provider);
  p[7] = static_cast<uint8_t>(addr.format);
  p[8] = addr.len;
  bytes::Put32(p + 12, region_id);
  bytes::Put64(p + 16, token);
  bytes::Put64(p + 24, rkey);
  bytes::Put64(p + 32, base);
  bytes::Put64(p + 40, length);
  std::memcpy(p + kLinkAddressFixed, addr.bytes.data(), addr.len);
  return n;
}

AddrStatus LinkAddress::Parse(std::span<const uint8_t> in, LinkAddress* out) {
  *out = LinkAddress{};
  if (in.size() < kLinkAddressFixed) return AddrStatus::kTruncated;
  const uint8_t* p = in.data();
  if (bytes::Get32(p) != kLinkAddressMagic) return AddrStatus::kBadMagic;
  if (p[4] != kLinkAddressVersion) return AddrStatus::kUnsupportedVersion;
  const uint8_t addr_len = p[8];
  if (addr_len > kEpAddrMax || p[9] != 0 || p[10] != 0 || p[11] != 0) {
    return AddrStatus::kMalformed;
  }
  if (in.size() < kLinkAddressFixed + addr_len) return AddrStatus::kTruncated;
  if (in.size() != kLinkAddressFixed + addr_len) return AddrStatus::kMalformed;
  LinkAddress a;
  a.link_id = p[5];
  a.provider = static_cast<Provider>(p[6]);
  a.addr.format = static_cast<AddrFormat>(p[7]);
  a.addr.len = addr_len;
  std::memcpy(a.addr.bytes.data(), p + kLinkAddressFixed, addr_len);
  a.region_id = bytes::Get32(p + 12);
  a.token = bytes::Get64(p + 16);
  a.rkey = bytes::Get64(p + 24);
  a.base = bytes::Get64(p + 32);
  a.length = bytes::Get64(p + 40);
  const uint8_t prov = p[6];
  if (a.link_id >= kMaxLinks || prov == 0 ||
      prov > static_cast<uint8_t>(Provider::kTcp) || !a.addr.Valid() ||
      a.region_id >= kMaxRegions || !ValidRegion(a.base, a.length)) {
    return AddrStatus::kMalformed;
  }
  *out = a;
  return AddrStatus::kOk;
}

}  // namespace usmc::fabric
