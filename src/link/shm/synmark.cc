#include "link/shm/synmark.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "util/sys.h"

namespace usmc::shm {
namespace {

constexpr uint8_t kEcnMask = 0x03;
constexpr unsigned kTcpMinHeader = 20;
constexpr unsigned kIpv6Header = 40;
constexpr socklen_t kSavedSynBuf = 512;
constexpr socklen_t kSavedSynMax = 4096;

// Reads `optname` into *old and sets it to kSynMarkTos.
bool SwapTos(int fd, int level, int optname, int* old) {
  if (sys::GetSockOptInt(fd, level, optname, old) != 0) return false;
  return sys::SetSockOptInt(fd, level, optname, kSynMarkTos) == 0;
}

SynMark ClassOf(uint8_t tos) {
  return (tos & ~kEcnMask) == kSynMarkTos ? SynMark::kMarked
                                          : SynMark::kUnmarked;
}

// A SYN (not SYN-ACK) TCP header whose data offset fits in `len`.
bool IsTcpSyn(const uint8_t* tcp, unsigned len) {
  if (len < kTcpMinHeader) return false;
  unsigned doff = (tcp[12] >> 4) * 4u;
  if (doff < kTcpMinHeader || doff > len) return false;
  uint8_t flags = tcp[13];
  return (flags & 0x02) != 0 && (flags & 0x10) == 0;
}

SynMark ParseIpv4(const uint8_t* hdr, unsigned len) {
  unsigned ihl = (hdr[0] & 0x0F) * 4u;
  if (ihl < 20 || ihl > len || hdr[9] != IPPROTO_TCP) return SynMark::kUnknown;
  if (!IsTcpSyn(hdr + ihl, len - ihl)) return SynMark::kUnknown;
  return ClassOf(hdr[1]);
}

// Walks IPv6 extension headers to the TCP header; returns its offset or 0.
unsigned Ipv6TcpOffset(const uint8_t* hdr, unsigned len) {
  uint8_t next = hdr[6];
  unsigned off = kIpv6Header;
  for (int i = 0; i < 8; ++i) {
    if (next == IPPROTO_TCP) return off;
    if (len - off < 8) return 0;
    unsigned ext;
    switch (next) {
      case IPPROTO_HOPOPTS:
      case IPPROTO_ROUTING:
      case IPPROTO_DSTOPTS:
        ext = (hdr[off + 1] + 1u) * 8u;
        break;
      case IPPROTO_FRAGMENT:
        ext = 8;
        break;
      case IPPROTO_AH:
        ext = (hdr[off + 1] + 2u) * 4u;
        break;
      default:
        return 0;
    }
    if (ext > len - off) return 0;
    next = hdr[off];
    off += ext;
  }
  return 0;
}

SynMark ParseIpv6(const uint8_t* hdr, unsigned len) {
  if (len < kIpv6Header) return SynMark::kUnknown;
  unsigned tcp = Ipv6TcpOffset(hdr, len);
  if (tcp == 0 || !IsTcpSyn(hdr + tcp, len - tcp)) return SynMark::kUnknown;
  uint8_t tclass = static_cast<uint8_t>(((hdr[0] & 0x0F) << 4) | (hdr[1] >> 4));
  return ClassOf(tclass);
}

// The saved SYN did not fit the usual buffer (long IPv6 extension headers): one
// more try.
__attribute__((noinline)) SynMark ReadLargeSyn(int fd, socklen_t need) {
  if (need > kSavedSynMax) return SynMark::kUnknown;
  uint8_t buf[kSavedSynMax];
  socklen_t len = sizeof buf;
  if (sys::GetSockOpt(fd, IPPROTO_TCP, TCP_SAVED_SYN, buf, &len) != 0 ||
      len == 0) {
    return SynMark::kUnknown;
  }
  return ParseSavedSyn(buf, len);
}

}  // namespace

bool MarkSyn(int fd, SavedTos* saved) {
  int domain = 0;
  if (sys::GetSockOptInt(fd, SOL_SOCKET, SO_DOMAIN, &domain) != 0) return false;
  SavedTos s;
  if (domain == AF_INET) {
    s.level = SOL_IP;
    s.optname = IP_TOS;
  } else if (domain == AF_INET6) {
    s.level = SOL_IPV6;
    s.optname = IPV6_TCLASS;
  } else {
    errno = EAFNOSUPPORT;
    return false;
  }
  if (!SwapTos(fd, s.level, s.optname, &s.value))
    return false;  // nothing was changed
  if (domain == AF_INET6) {
    int err = errno;
    s.has_ip_tos = SwapTos(fd, SOL_IP, IP_TOS, &s.ip_tos);
    errno = err;
  }
  *saved = s;
  return true;
}

void UnmarkSyn(int fd, const SavedTos& saved) {
  int err = errno;
  if (saved.optname != 0)
    sys::SetSockOptInt(fd, saved.level, saved.optname, saved.value);
  if (saved.has_ip_tos) sys::SetSockOptInt(fd, SOL_IP, IP_TOS, saved.ip_tos);
  errno = err;
}

bool EnableSavedSyn(int listen_fd) {
  return sys::SetSockOptInt(listen_fd, IPPROTO_TCP, TCP_SAVE_SYN, 1) == 0;
}

SynMark ReadSynMark(int accepted_fd) {
  int err = errno;
  uint8_t buf[kSavedSynBuf];
  socklen_t len = sizeof buf;
  SynMark mark = SynMark::kUnknown;
  if (sys::GetSockOpt(accepted_fd, IPPROTO_TCP, TCP_SAVED_SYN, buf, &len) ==
      0) {
    if (len > 0 && len <= sizeof buf) mark = ParseSavedSyn(buf, len);
  } else if (errno == EINVAL && len > sizeof buf) {
    mark = ReadLargeSyn(accepted_fd, len);
  }
  errno = err;
  return mark;
}

SynMark ParseSavedSyn(const uint8_t* hdr, unsigned len) {
  if (hdr == nullptr || len < 1) return SynMark::kUnknown;
  switch (hdr[0] >> 4) {
    case 4:
      return len >= 20 ? ParseIpv4(hdr, len) : SynMark::kUnknown;
    case 6:
      return ParseIpv6(hdr, len);
    default:
      return SynMark::kUnknown;
  }
}

}  // namespace usmc::shm
