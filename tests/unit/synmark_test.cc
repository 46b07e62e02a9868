#include "link/shm/synmark.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace usmc::shm {
namespace {

// A TCP listener on loopback (port 0), closed at scope exit.
struct Listener {
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
  ~Listener() {
    if (fd >= 0) close(fd);
  }
};

void OpenListener(int family, bool saved_syn, Listener* l) {
  l->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(l->fd, 0) << strerror(errno);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr =
        in6addr_any;  // dual-stack: serves ::1 and ::ffff:127.0.0.1
    int off = 0;
    ASSERT_EQ(setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off),
              0);
    len = sizeof *in6;
  }
  ASSERT_EQ(bind(l->fd, reinterpret_cast<sockaddr*>(&ss), len), 0)
      << strerror(errno);
  if (saved_syn) {
    ASSERT_TRUE(EnableSavedSyn(l->fd)) << strerror(errno);
  }
  ASSERT_EQ(listen(l->fd, 16), 0);
  l->len = sizeof l->addr;
  ASSERT_EQ(getsockname(l->fd, reinterpret_cast<sockaddr*>(&l->addr), &l->len),
            0);
}

uint16_t PortOf(const Listener& l) {
  return l.addr.ss_family == AF_INET
             ? ntohs(reinterpret_cast<const sockaddr_in*>(&l.addr)->sin_port)
             : ntohs(reinterpret_cast<const sockaddr_in6*>(&l.addr)->sin6_port);
}

sockaddr_storage Dest(int family, const char* text, uint16_t port,
                      socklen_t* len) {
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, text, &in->sin_addr);
    *len = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    inet_pton(AF_INET6, text, &in6->sin6_addr);
    *len = sizeof *in6;
  }
  return ss;
}

int GetInt(int fd, int level, int name) {
  int v = -1;
  socklen_t l = sizeof v;
  EXPECT_EQ(getsockopt(fd, level, name, &v, &l), 0) << strerror(errno);
  return v;
}

// Connects a client (marked or not) to `dst`, accepts, and returns ReadSynMark
// of the accepted fd.
SynMark Handshake(const Listener& l, int family, const char* dst, bool mark,
                  int preset_tos = -1) {
  int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(c, 0);
  int level = family == AF_INET ? SOL_IP : SOL_IPV6;
  int opt = family == AF_INET ? IP_TOS : IPV6_TCLASS;
  if (preset_tos >= 0) {
    EXPECT_EQ(setsockopt(c, level, opt, &preset_tos, sizeof preset_tos), 0);
  }
  int before = GetInt(c, level, opt);
  SavedTos saved;
  if (mark) {
    EXPECT_TRUE(MarkSyn(c, &saved)) << strerror(errno);
    EXPECT_EQ(GetInt(c, level, opt), kSynMarkTos);
  }
  socklen_t len;
  sockaddr_storage ss = Dest(family, dst, PortOf(l), &len);
  EXPECT_EQ(connect(c, reinterpret_cast<sockaddr*>(&ss), len), 0)
      << strerror(errno);
  if (mark) UnmarkSyn(c, saved);
  EXPECT_EQ(GetInt(c, level, opt) & ~3,
            before & ~3);  // restored (ECN bits are the kernel's)
  if (mark && family == AF_INET6) {
    EXPECT_TRUE(saved.has_ip_tos);
    EXPECT_EQ(GetInt(c, SOL_IP, IP_TOS) & ~3, 0);
  }
  int a = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_GE(a, 0) << strerror(errno);
  SynMark m = ReadSynMark(a);
  EXPECT_EQ(ReadSynMark(a), SynMark::kUnknown);  // reading frees it
  close(a);
  close(c);
  return m;
}

TEST(SynMarkTest, Ipv4MarkedAndUnmarked) {
  Listener l;
  ASSERT_NO_FATAL_FAILURE(OpenListener(AF_INET, true, &l));
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", true), SynMark::kMarked);
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", false), SynMark::kUnmarked);
}

TEST(SynMarkTest, RestoresPreviousTos) {
  Listener l;
  ASSERT_NO_FATAL_FAILURE(OpenListener(AF_INET, true, &l));
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", true, 0x20), SynMark::kMarked);
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", false, 0x20),
            SynMark::kUnmarked);
  Listener l6;
  ASSERT_NO_FATAL_FAILURE(OpenListener(AF_INET6, true, &l6));
  EXPECT_EQ(Handshake(l6, AF_INET6, "::1", true, 0x48), SynMark::kMarked);
}

TEST(SynMarkTest, NoSavedSynIsUnknown) {
  Listener l;
  ASSERT_NO_FATAL_FAILURE(OpenListener(AF_INET, false, &l));
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", true), SynMark::kUnknown);
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", false), SynMark::kUnknown);
}

TEST(SynMarkTest, Ipv6AndV4Mapped) {
  Listener l;
  ASSERT_NO_FATAL_FAILURE(OpenListener(AF_INET6, true, &l));
  EXPECT_EQ(Handshake(l, AF_INET6, "::1", true), SynMark::kMarked);
  EXPECT_EQ(Handshake(l, AF_INET6, "::1", false), SynMark::kUnmarked);
  EXPECT_EQ(Handshake(l, AF_INET6, "::ffff:127.0.0.1", true), SynMark::kMarked);
  EXPECT_EQ(Handshake(l, AF_INET6, "::ffff:127.0.0.1", false),
            SynMark::kUnmarked);
  EXPECT_EQ(Handshake(l, AF_INET, "127.0.0.1", true),
            SynMark::kMarked);  // v4 client, v6 server
}

TEST(SynMarkTest, NonIpSocketCannotBeMarked) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  SavedTos saved;
  EXPECT_FALSE(MarkSyn(fds[0], &saved));
  EXPECT_EQ(errno, EAFNOSUPPORT);
  EXPECT_FALSE(MarkSyn(-1, &saved));
  EXPECT_EQ(ReadSynMark(fds[0]), SynMark::kUnknown);
  EXPECT_EQ(ReadSynMark(-1), SynMark::kUnknown);
  close(fds[0]);
  close(fds[1]);
}

// Handcrafted headers: IPv4/IPv6 + a 20-byte TCP header (+ options).
std::vector<uint8_t> TcpSyn(unsigned option_bytes = 0, uint8_t flags = 0x02) {
  std::vector<uint8_t> t(20 + option_bytes, 0);
  t[12] = static_cast<uint8_t>(((20 + option_bytes) / 4) << 4);
  t[13] = flags;
  return t;
}

std::vector<uint8_t> Ipv4Syn(uint8_t tos, unsigned ip_options = 0,
                             unsigned tcp_options = 0) {
  std::vector<uint8_t> h(20 + ip_options, 0);
  h[0] = static_cast<uint8_t>(0x40 | ((20 + ip_options) / 4));
  h[1] = tos;
  h[8] = 64;
  h[9] = IPPROTO_TCP;
  std::vector<uint8_t> t = TcpSyn(tcp_options);
  h.insert(h.end(), t.begin(), t.end());
  return h;
}

std::vector<uint8_t> Ipv6Syn(uint8_t tclass, std::vector<uint8_t> ext = {},
                             uint8_t first = 6) {
  std::vector<uint8_t> h(40, 0);
  h[0] = static_cast<uint8_t>(0x60 | (tclass >> 4));
  h[1] = static_cast<uint8_t>((tclass & 0x0F) << 4);
  h[6] = first;
  h[7] = 64;
  h.insert(h.end(), ext.begin(), ext.end());
  std::vector<uint8_t> t = TcpSyn(20);
  h.insert(h.end(), t.begin(), t.end());
  return h;
}

SynMark Parse(const std::vector<uint8_t>& v) {
  // A heap copy of exactly len bytes, so ASan sees any read past the end.
  std::vector<uint8_t> exact(v);
  return ParseSavedSyn(exact.data(), static_cast<unsigned>(exact.size()));
}

TEST(ParseSavedSynTest, Ipv4) {
  EXPECT_EQ(Parse(Ipv4Syn(0xAC)), SynMark::kMarked);
  EXPECT_EQ(Parse(Ipv4Syn(0xAD)), SynMark::kMarked);  // ECN bits ignored
  EXPECT_EQ(Parse(Ipv4Syn(0xAF)), SynMark::kMarked);
  EXPECT_EQ(Parse(Ipv4Syn(0xAC, 8, 20)), SynMark::kMarked);
  EXPECT_EQ(Parse(Ipv4Syn(0x00)), SynMark::kUnmarked);
  EXPECT_EQ(Parse(Ipv4Syn(0xA8)), SynMark::kUnmarked);
  EXPECT_EQ(Parse(Ipv4Syn(0xB0)), SynMark::kUnmarked);
}

TEST(ParseSavedSynTest, Ipv4Malformed) {
  std::vector<uint8_t> h = Ipv4Syn(0xAC, 4, 12);
  for (size_t len = 0; len < h.size(); ++len) {
    std::vector<uint8_t> cut(h.begin(), h.begin() + len);
    EXPECT_EQ(Parse(cut), SynMark::kUnknown) << "len " << len;
  }
  std::vector<uint8_t> bad = Ipv4Syn(0xAC);
  bad[0] = 0x44;  // IHL 16 bytes
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  bad = Ipv4Syn(0xAC);
  bad[0] = 0x4F;  // IHL 60 bytes, more than there is
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  bad = Ipv4Syn(0xAC);
  bad[9] = IPPROTO_UDP;
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  bad = Ipv4Syn(0xAC);
  bad[0] = 0x55;  // version 5
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  bad = Ipv4Syn(0xAC);
  bad[20 + 13] = 0x12;  // SYN-ACK
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  bad = Ipv4Syn(0xAC);
  bad[20 + 12] = 0x40;  // TCP data offset 16 bytes
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  bad = Ipv4Syn(0xAC);
  bad[20 + 12] = 0xF0;  // TCP data offset 60 bytes, more than there is
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  EXPECT_EQ(ParseSavedSyn(nullptr, 40), SynMark::kUnknown);
}

TEST(ParseSavedSynTest, Ipv6) {
  EXPECT_EQ(Parse(Ipv6Syn(0xAC)), SynMark::kMarked);
  EXPECT_EQ(Parse(Ipv6Syn(0xAE)), SynMark::kMarked);
  EXPECT_EQ(Parse(Ipv6Syn(0x00)), SynMark::kUnmarked);
  EXPECT_EQ(Parse(Ipv6Syn(0xCA)), SynMark::kUnmarked);  // nibbles swapped
  // Hop-by-hop (8 bytes) then destination options (16 bytes) then TCP.
  std::vector<uint8_t> ext(24, 0);
  ext[0] = IPPROTO_DSTOPTS;
  ext[1] = 0;
  ext[8] = IPPROTO_TCP;
  ext[9] = 1;
  EXPECT_EQ(Parse(Ipv6Syn(0xAC, ext, IPPROTO_HOPOPTS)), SynMark::kMarked);
  ext[8] = IPPROTO_UDP;
  EXPECT_EQ(Parse(Ipv6Syn(0xAC, ext, IPPROTO_HOPOPTS)), SynMark::kUnknown);
  ext[8] = IPPROTO_TCP;
  ext[9] = 200;  // longer than the buffer
  EXPECT_EQ(Parse(Ipv6Syn(0xAC, ext, IPPROTO_HOPOPTS)), SynMark::kUnknown);
}

TEST(ParseSavedSynTest, Ipv6Malformed) {
  std::vector<uint8_t> ext(8, 0);
  ext[0] = IPPROTO_TCP;
  std::vector<uint8_t> h = Ipv6Syn(0xAC, ext, IPPROTO_HOPOPTS);
  for (size_t len = 0; len < h.size(); ++len) {
    std::vector<uint8_t> cut(h.begin(), h.begin() + len);
    EXPECT_EQ(Parse(cut), SynMark::kUnknown) << "len " << len;
  }
  std::vector<uint8_t> bad = Ipv6Syn(0xAC);
  bad[6] = IPPROTO_UDP;
  EXPECT_EQ(Parse(bad), SynMark::kUnknown);
  // A chain of extension headers that never ends in TCP.
  std::vector<uint8_t> loop(8 * 12, 0);
  for (size_t i = 0; i < loop.size(); i += 8) loop[i] = IPPROTO_DSTOPTS;
  EXPECT_EQ(Parse(Ipv6Syn(0xAC, loop, IPPROTO_DSTOPTS)), SynMark::kUnknown);
}

TEST(ParseSavedSynTest, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 200000; ++i) {
    std::vector<uint8_t> v(rng() % 160);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    if (!v.empty() && (i & 1))
      v[0] = static_cast<uint8_t>((i & 2) ? 0x45 : 0x60);
    SynMark m = Parse(v);
    EXPECT_TRUE(m == SynMark::kMarked || m == SynMark::kUnmarked ||
                m == SynMark::kUnknown);
  }
}

}  // namespace
}  // namespace usmc::shm
