#include "link/shm/registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace usmc::shm {
namespace {

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr MakeAddr(const char* text, uint16_t port) {
  Addr a;
  if (strchr(text, ':') != nullptr) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET6, text, &in6->sin6_addr), 1) << text;
    a.len = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET, text, &in->sin_addr), 1) << text;
    a.len = sizeof(sockaddr_in);
  }
  return a;
}

// Registry names are shared by the whole network namespace: random ports keep
// tests that run in parallel (here or elsewhere on the host) apart.
uint16_t RandomPort() {
  uint32_t r = 0;
  EXPECT_EQ(getrandom(&r, sizeof r, 0), static_cast<ssize_t>(sizeof r));
  return static_cast<uint16_t>(20000 + r % 40000);
}

bool Lookup(const char* text, uint16_t port) {
  Addr a = MakeAddr(text, port);
  return LookupListener(a.sa(), a.len, IsLocalAddress(a.sa(), a.len));
}

bool Register(const char* text, uint16_t port, bool v6only, RegistryEntry* e) {
  Addr a = MakeAddr(text, port);
  return RegisterListener(a.sa(), a.len, v6only, e);
}

// A non-loopback address of this host, or "" if there is none.
std::string LocalNonLoopback(int family) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != family) continue;
    char text[INET6_ADDRSTRLEN];
    const void* raw =
        family == AF_INET
            ? static_cast<const void*>(
                  &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr)
            : &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr;
    inet_ntop(family, raw, text, sizeof text);
    std::string s = text;
    bool loop = s.rfind("127.", 0) == 0 || s == "::1";
    bool link_local = s.rfind("fe80:", 0) == 0;
    if (!loop && !link_local) found = s;
  }
  freeifaddrs(list);
  return found;
}

TEST(RegistryTest, ExactRegisterLookupClose) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("127.0.0.1", port, false, &e)) << strerror(errno);
  EXPECT_GE(e.fds[0], 0);
  EXPECT_EQ(e.fds[1], -1);
  EXPECT_TRUE(Lookup("127.0.0.1", port));
  EXPECT_FALSE(Lookup("127.0.0.2", port));
  EXPECT_FALSE(Lookup("127.0.0.1", port + 1));
  EXPECT_FALSE(Lookup("::1", port));
  e.Close();
  EXPECT_EQ(e.fds[0], -1);
  e.Close();  // safe twice
  EXPECT_FALSE(Lookup("127.0.0.1", port));
}

TEST(RegistryTest, LookupPreservesErrno) {
  uint16_t port = RandomPort();
  errno = EINTR;
  EXPECT_FALSE(Lookup("127.0.0.1", port));
  EXPECT_EQ(errno, EINTR);
}

TEST(RegistryTest, WildcardOnlyForLocalDestinations) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("0.0.0.0", port, false, &e)) << strerror(errno);
  Addr loop = MakeAddr("127.0.0.1", port);
  EXPECT_TRUE(LookupListener(loop.sa(), loop.len, true));
  EXPECT_FALSE(LookupListener(loop.sa(), loop.len, false));
  EXPECT_TRUE(Lookup("127.1.2.3", port));
  EXPECT_TRUE(Lookup("0.0.0.0", port));
  // A remote-looking address with only a wildcard entry: not local, so not
  // found.
  Addr remote = MakeAddr("198.51.100.7", port);
  EXPECT_FALSE(IsLocalAddress(remote.sa(), remote.len));
  EXPECT_FALSE(LookupListener(remote.sa(), remote.len,
                              IsLocalAddress(remote.sa(), remote.len)));
  EXPECT_FALSE(Lookup("::1", port));  // an IPv4 listener does not serve IPv6
  std::string own = LocalNonLoopback(AF_INET);
  if (!own.empty()) {
    EXPECT_TRUE(Lookup(own.c_str(), port)) << own;
  }
  e.Close();
  EXPECT_FALSE(Lookup("127.0.0.1", port));
}

TEST(RegistryTest, V4MappedListenerRegistersAsIpv4) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("::ffff:127.0.0.1", port, false, &e)) << strerror(errno);
  EXPECT_EQ(e.fds[1], -1);
  EXPECT_TRUE(Lookup("127.0.0.1", port));
  EXPECT_TRUE(Lookup("::ffff:127.0.0.1", port));
  EXPECT_FALSE(Lookup("::1", port));
  RegistryEntry twin;
  EXPECT_FALSE(Register("127.0.0.1", port, false, &twin));  // the same name
  EXPECT_EQ(errno, EADDRINUSE);
  e.Close();
}

TEST(RegistryTest, DualStackRegistersBothNames) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("::", port, false, &e)) << strerror(errno);
  EXPECT_GE(e.fds[0], 0);
  EXPECT_GE(e.fds[1], 0);
  EXPECT_TRUE(Lookup("::1", port));
  EXPECT_TRUE(Lookup("127.0.0.1", port));
  EXPECT_TRUE(Lookup("::ffff:127.0.0.1", port));
  Addr v6 = MakeAddr("::1", port);
  EXPECT_FALSE(
      LookupListener(v6.sa(), v6.len, false));  // wildcard not consulted
  e.Close();
  EXPECT_FALSE(Lookup("::1", port));
  EXPECT_FALSE(Lookup("127.0.0.1", port));
}

TEST(RegistryTest, V6OnlyWildcardDoesNotServeIpv4) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("::", port, true, &e)) << strerror(errno);
  EXPECT_EQ(e.fds[1], -1);
  EXPECT_TRUE(Lookup("::1", port));
  EXPECT_FALSE(Lookup("127.0.0.1", port));
  EXPECT_FALSE(Lookup("::ffff:127.0.0.1", port));
  // An IPv4 wildcard listener may coexist with an IPv6-only one.
  RegistryEntry v4;
  EXPECT_TRUE(Register("0.0.0.0", port, false, &v4)) << strerror(errno);
  EXPECT_TRUE(Lookup("127.0.0.1", port));
  v4.Close();
  e.Close();
}

TEST(RegistryTest, NameTakenTwiceFails) {
  uint16_t port = RandomPort();
  RegistryEntry first, second;
  ASSERT_TRUE(Register("127.0.0.1", port, false, &first));
  errno = 0;
  EXPECT_FALSE(Register("127.0.0.1", port, false, &second));
  EXPECT_EQ(errno, EADDRINUSE);
  EXPECT_EQ(second.fds[0], -1);
  first.Close();
  EXPECT_TRUE(Register("127.0.0.1", port, false, &second));
  second.Close();
}

TEST(RegistryTest, DualStackFailsWholeWhenIpv4NameTaken) {
  uint16_t port = RandomPort();
  RegistryEntry v4, dual;
  ASSERT_TRUE(Register("0.0.0.0", port, false, &v4));
  EXPECT_FALSE(Register("::", port, false, &dual));
  EXPECT_EQ(errno, EADDRINUSE);
  EXPECT_EQ(dual.fds[0], -1);
  EXPECT_FALSE(Lookup("::1", port));  // the IPv6 half was not left behind
  v4.Close();
}

TEST(RegistryTest, EntryVanishesWhenLastHolderExits) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("127.0.0.1", port, false, &e));
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(go[1]);
    char c;
    (void)!read(go[0], &c, 1);  // holds the inherited entry until told to exit
    _exit(0);
  }
  close(go[0]);
  e.Close();
  EXPECT_TRUE(Lookup("127.0.0.1", port));  // the child still holds it
  close(go[1]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_FALSE(Lookup("127.0.0.1", port));
}

TEST(RegistryTest, EntryVanishesOnSigkill) {
  uint16_t port = RandomPort();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RegistryEntry e;
    char ok = Register("127.0.0.1", port, false, &e) ? 1 : 0;
    (void)!write(ready[1], &ok, 1);
    pause();
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  ASSERT_EQ(ok, 1);
  EXPECT_TRUE(Lookup("127.0.0.1", port));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(Lookup("127.0.0.1", port));
  close(ready[0]);
  close(ready[1]);
}

TEST(RegistryTest, ConcurrentLookups) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("127.0.0.1", port, false, &e));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        bool hit = (i + t) % 2 == 0;
        if (Lookup("127.0.0.1", hit ? port : port + 1) != hit) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  e.Close();
}

TEST(RegistryTest, IsLocalAddress) {
  for (const char* local :
       {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::"}) {
    Addr a = MakeAddr(local, 80);
    EXPECT_TRUE(IsLocalAddress(a.sa(), a.len)) << local;
  }
  for (const char* remote :
       {"198.51.100.7", "203.0.113.1", "2001:db8::1", "::ffff:198.51.100.7"}) {
    Addr a = MakeAddr(remote, 80);
    EXPECT_FALSE(IsLocalAddress(a.sa(), a.len)) << remote;
    EXPECT_FALSE(IsLocalAddress(a.sa(), a.len)) << remote << " (cached)";
  }
  for (int family : {AF_INET, AF_INET6}) {
    std::string own = LocalNonLoopback(family);
    if (own.empty()) continue;
    Addr a = MakeAddr(own.c_str(), 80);
    EXPECT_TRUE(IsLocalAddress(a.sa(), a.len)) << own;
    EXPECT_TRUE(IsLocalAddress(a.sa(), a.len)) << own << " (cached)";
  }
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_FALSE(IsLocalAddress(reinterpret_cast<sockaddr*>(&un), sizeof un));
}

TEST(RegistryTest, ProbeRecoversWhenItsFdIsClosed) {
  uint16_t port = RandomPort();
  RegistryEntry e;
  ASSERT_TRUE(Register("127.0.0.1", port, false, &e));
  ASSERT_TRUE(Lookup("127.0.0.1", port));
  int probe = RegistryProbeFd();
  ASSERT_GE(probe, 0);
  close(probe);  // as an application closing "foreign" fds would
  EXPECT_TRUE(Lookup("127.0.0.1", port));
  EXPECT_GE(RegistryProbeFd(), 0);
  e.Close();
}

}  // namespace
}  // namespace usmc::shm
