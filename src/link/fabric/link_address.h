// What one side of a fabric link tells the other out of band (in usmc: in the
// CLC Accept/Confirm): where its endpoint listens or connects from, and the key
// and address of one registered region the peer may RMA-write into.
//
// Wire layout, version 1, big-endian, 48 + addr_len bytes:
//    0  be32 magic "UFLA"        12  be32 region_id
//    4  u8   version (1)         16  be64 token   (group token / link nonce)
//    5  u8   link_id (< 2)       24  be64 rkey
//    6  u8   provider            32  be64 base    (VA or 0 for offset mode)
//    7  u8   addr format         40  be64 length
//    8  u8   addr_len            48  addr bytes (EpAddr canonical form)
//    9  u8   reserved[3] (0)
//
// Invariant: Parse never reads past its span and accepts only what a
// well-behaved peer can send: a known provider and address format, a length
// that matches the format, a region of 1 byte .. kMaxRegionBytes whose end
// does not overflow. The port may be 0 (a client's address is informational);
// whoever dials an address checks EpAddr::Routable().
#ifndef USMC_LINK_FABRIC_LINK_ADDRESS_H_
#define USMC_LINK_FABRIC_LINK_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace usmc::fabric {

inline constexpr uint32_t kLinkAddressMagic = 0x55464C41;  // "UFLA"
inline constexpr uint8_t kLinkAddressVersion = 1;
inline constexpr size_t kLinkAddressFixed = 48;
inline constexpr size_t kEpAddrMax = 22;  // IPv6: addr 16 + port 2 + scope 4
inline constexpr size_t kLinkAddressMax = kLinkAddressFixed + kEpAddrMax;
inline constexpr uint8_t kMaxLinks = 2;
inline constexpr uint32_t kMaxRegions = 4096;
inline constexpr uint64_t kMaxRegionBytes = 1ull << 32;

enum class Provider : uint8_t { kNone = 0, kVerbs = 1, kEfa = 2, kTcp = 3 };
const char* ProviderName(Provider p);
Provider ProviderFromName(const std::string& name);  // kNone if unknown

enum class AddrFormat : uint8_t { kNone = 0, kIn = 1, kIn6 = 2 };

// An endpoint address in a host-independent form: IPv4 = addr(4) port(2);
// IPv6 = addr(16) port(2) scope(4), all in network order.
struct EpAddr {
  AddrFormat format = AddrFormat::kNone;
  uint8_t len = 0;
  std::array<uint8_t, kEpAddrMax> bytes{};

  static bool FromSockaddr(const sockaddr* sa, size_t sa_len, EpAddr* out);
  // Fills *ss; returns the sockaddr length or 0 if this address is invalid.
  size_t ToSockaddr(sockaddr_storage* ss) const;
  // Format and length agree.
  bool Valid() const;
  uint16_t port() const;  // host order; 0 if invalid
  // Valid, with a port: what a peer must send.
  bool Routable() const { return Valid() && port() != 0; }
  std::string ToString() const;
  bool operator==(const EpAddr& o) const;
};

enum class AddrStatus {
  kOk,
  kTruncated,  // shorter than the fixed part or than addr_len says
  kBadMagic,
  kUnsupportedVersion,
  kMalformed,  // a field out of range
};
const char* AddrStatusName(AddrStatus s);

struct LinkAddress {
  uint8_t link_id = 0;
  Provider provider = Provider::kNone;
  EpAddr addr;
  uint32_t region_id = 0;
  uint64_t token = 0;
  uint64_t rkey = 0;
  uint64_t base = 0;
  uint64_t length = 0;

  // Writes the wire form into `out`; returns its size, or 0 if `out` is too
  // small or this value would not parse.
  size_t Serialize(std::span<uint8_t> out) const;
  static AddrStatus Parse(std::span<const uint8_t> in, LinkAddress* out);
  bool operator==(const LinkAddress& o) const = default;
};

// A region [base, base+length) as the peer announced it: in range and not
// wrapping the 64-bit space.
bool ValidRegion(uint64_t base, uint64_t length);

}  // namespace usmc::fabric

#endif  // USMC_LINK_FABRIC_LINK_ADDRESS_H_
