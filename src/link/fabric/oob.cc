// Out-of-band exchange of a LinkAddress over a stream socket: be16 length,
// then the serialized address. Raw syscalls only (this runs inside the
// interposing library).
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "link/fabric/bytes.h"
#include "link/fabric/link_group.h"
#include "util/sys.h"

namespace usmc::fabric {

namespace {

int RemainingMs(uint64_t end_ns) {
  const uint64_t now = sys::NowNs();
  if (now >= end_ns) return 0;
  return static_cast<int>((end_ns - now + 999999) / 1000000);
}

// Moves exactly n bytes in `dir` (POLLIN: receive, POLLOUT: send).
bool Transfer(int fd, uint8_t* buf, size_t n, short dir, uint64_t end_ns,
              std::string* err) {
  size_t done = 0;
  while (done < n) {
    pollfd p{fd, dir, 0};
    const int ms = RemainingMs(end_ns);
    const int ready = sys::Poll(&p, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      *err = ready == 0 ? "out-of-band exchange timed out"
                        : std::string("poll: ") + std::strerror(errno);
      return false;
    }
    const ssize_t r =
        dir == POLLIN
            ? sys::Recv(fd, buf + done, n - done, MSG_DONTWAIT)
            : sys::Send(fd, buf + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) {
      *err = r == 0 ? "peer closed during the out-of-band exchange"
                    : std::string("socket: ") + std::strerror(errno);
      return false;
    }
    done += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

bool SendLinkAddress(int fd, const LinkAddress& a, int timeout_ms,
                     std::string* err) {
  uint8_t buf[2 + kLinkAddressMax];
  const size_t n = a.Serialize(std::span<uint8_t>(buf + 2, kLinkAddressMax));
  if (n == 0) {
    *err = "link address does not serialize";
    return false;
  }
  bytes::Put16(buf, static_cast<uint16_t>(n));
  const uint64_t end = sys::NowNs() + uint64_t(timeout_ms) * 1000000ull;
  return Transfer(fd, buf, n + 2, POLLOUT, end, err);
}

bool RecvLinkAddress(int fd, LinkAddress* a, int timeout_ms, std::string* err) {
  const uint64_t end = sys::NowNs() + uint64_t(timeout_ms) * 1000000ull;
  uint8_t len_buf[2];
  if (!Transfer(fd, len_buf, 2, POLLIN, end, err)) return false;
  const uint16_t n = bytes::Get16(len_buf);
  if (n < kLinkAddressFixed || n > kLinkAddressMax) {
    *err = "out-of-band frame of bad length " + std::to_string(n);
    return false;
  }
  uint8_t buf[kLinkAddressMax];
  if (!Transfer(fd, buf, n, POLLIN, end, err)) return false;
  const AddrStatus s = LinkAddress::Parse(std::span<const uint8_t>(buf, n), a);
  if (s != AddrStatus::kOk) {
    *err = std::string("peer link address: ") + AddrStatusName(s);
    return false;
  }
  return true;
}

}  // namespace usmc::fabric
