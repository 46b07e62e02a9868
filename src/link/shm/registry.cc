#include "link/shm/registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "util/sys.h"
#include "util/text.h"

namespace usmc::shm {
namespace {

// An IP endpoint reduced to what names a registry entry. v4-mapped IPv6 becomes
// AF_INET.
struct IpEndpoint {
  int family = 0;
  uint8_t bytes[16] = {};
  uint32_t scope = 0;  // IPv6 scope id (link-local)
  uint16_t port = 0;   // host order
};

unsigned AddrBytes(int family) { return family == AF_INET ? 4 : 16; }

bool IsZero(const uint8_t* p, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

bool ToEndpoint(const sockaddr* sa, socklen_t len, IpEndpoint* out) {
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in;
    memcpy(&in, sa, sizeof in);
    out->family = AF_INET;
    memcpy(out->bytes, &in.sin_addr, 4);
    out->port = ntohs(in.sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    memcpy(&in6, sa, sizeof in6);
    out->port = ntohs(in6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      out->family = AF_INET;
      memcpy(out->bytes, in6.sin6_addr.s6_addr + 12, 4);
    } else {
      out->family = AF_INET6;
      memcpy(out->bytes, in6.sin6_addr.s6_addr, 16);
      out->scope = in6.sin6_scope_id;
    }
    return true;
  }
  return false;
}

struct UnixName {
  sockaddr_un sun;
  socklen_t len;
};

// "\0usmc.L.<4|6>.<address>.<port>" (at most 61 bytes, sun_path has 108).
void ListenerName(int family, const uint8_t* bytes, uint16_t port,
                  UnixName* out) {
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes, text, sizeof text) == nullptr) text[0] = '\0';
  out->sun.sun_family = AF_UNIX;
  char* p = out->sun.sun_path;
  *p++ = '\0';
  p = util::AppendStr(p, family == AF_INET ? "usmc.L.4." : "usmc.L.6.");
  p = util::AppendStr(p, text);
  *p++ = '.';
  p = util::AppendDecimal(p, port);
  out->len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                    (p - out->sun.sun_path));
}

int BindName(const UnixName& name) {
  int fd = sys::Socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (sys::Bind(fd, reinterpret_cast<const sockaddr*>(&name.sun), name.len) !=
      0) {
    int err = errno;
    sys::Close(fd);
    errno = err;
    return -1;
  }
  // The entry is only ever connect()ed to; refusing datagrams keeps its queue
  // empty.
  sys::Shutdown(fd, SHUT_RD);
  return fd;
}

// One probe socket for the whole process: concurrent connect()s on a datagram
// socket are safe and each returns its own answer; a per-thread socket would
// cost an fd per thread.
std::atomic<int> g_probe{-1};

int ProbeFd() {
  int fd = g_probe.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  int created = sys::Socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (created < 0) return -1;
  if (!g_probe.compare_exchange_strong(fd, created,
                                       std::memory_order_acq_rel)) {
    sys::Close(created);
    return fd;
  }
  return created;
}

// Errors meaning the probe fd no longer is our datagram socket (the application
// closed the number).
bool ProbeIsGone(int err) {
  return err == EBADF || err == ENOTSOCK || err == EAFNOSUPPORT ||
         err == EPROTOTYPE || err == EISCONN || err == EALREADY ||
         err == EINPROGRESS;
}

bool Probe(const UnixName& name) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ProbeFd();
    if (fd < 0) return false;
    if (sys::Connect(fd, reinterpret_cast<const sockaddr*>(&name.sun),
                     name.len) == 0)
      return true;
    if (!ProbeIsGone(errno)) return false;  // ECONNREFUSED: no such entry
    g_probe.compare_exchange_strong(
        fd, -1);  // not ours any more: forget, never close
  }
  return false;
}

// Is `a` an address of this namespace? A UDP connect() routes like the TCP
// connect will: a local destination gets itself as source address. Unlike a
// bind test this is not fooled by net.ipv4.ip_nonlocal_bind / IP_FREEBIND
// setups, where every address is bindable.
bool RouteIsLocal(const IpEndpoint& a, bool* cacheable) {
  *cacheable = true;
  sockaddr_storage ss{};
  socklen_t len;
  if (a.family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(9);  // any non-zero port; UDP connect sends nothing
    memcpy(&in->sin_addr, a.bytes, 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(9);
    memcpy(&in6->sin6_addr, a.bytes, 16);
    in6->sin6_scope_id = a.scope;
    len = sizeof(sockaddr_in6);
  }
  int fd = sys::Socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *cacheable = errno == EAFNOSUPPORT;
    return false;
  }
  bool local = false;
  sockaddr_storage src{};
  socklen_t src_len = sizeof src;
  if (sys::Connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
      sys::GetSockName(fd, reinterpret_cast<sockaddr*>(&src), &src_len) == 0) {
    IpEndpoint s;
    local = ToEndpoint(reinterpret_cast<sockaddr*>(&src), src_len, &s) &&
            s.family == a.family &&
            memcmp(s.bytes, a.bytes, AddrBytes(a.family)) == 0;
  } else if (errno == ENOMEM || errno == ENOBUFS) {
    *cacheable = false;
  }
  sys::Close(fd);
  return local;
}

struct LocalCacheEntry {
  IpEndpoint addr;  // port unused
  bool local = false;
};

constexpr int kLocalCacheSize = 64;

// try_lock only: contention or a mutex inherited locked across fork() costs a
// route test, never a deadlock.
struct LocalCache {
  std::mutex mu;
  LocalCacheEntry entries[kLocalCacheSize];
  int used = 0;
  int next = 0;
} g_local_cache;

bool SameAddr(const IpEndpoint& x, const IpEndpoint& y) {
  return x.family == y.family && x.scope == y.scope &&
         memcmp(x.bytes, y.bytes, AddrBytes(x.family)) == 0;
}

bool CacheFind(const IpEndpoint& a, bool* local) {
  std::unique_lock<std::mutex> lock(g_local_cache.mu, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  for (int i = 0; i < g_local_cache.used; ++i) {
    if (SameAddr(g_local_cache.entries[i].addr, a)) {
      *local = g_local_cache.entries[i].local;
      return true;
    }
  }
  return false;
}

void CacheStore(const IpEndpoint& a, bool local) {
  std::unique_lock<std::mutex> lock(g_local_cache.mu, std::try_to_lock);
  if (!lock.owns_lock()) return;
  int slot = g_local_cache.next;
  g_local_cache.next = (slot + 1) % kLocalCacheSize;
  if (g_local_cache.used < kLocalCacheSize) ++g_local_cache.used;
  g_local_cache.entries[slot].addr = a;
  g_local_cache.entries[slot].addr.port = 0;
  g_local_cache.entries[slot].local = local;
}

}  // namespace

void RegistryEntry::Close() {
  for (int& fd : fds) {
    if (fd >= 0) sys::Close(fd);
    fd = -1;
  }
}

bool RegisterListener(const sockaddr* addr, socklen_t len, bool v6only,
                      RegistryEntry* out) {
  IpEndpoint a;
  if (!ToEndpoint(addr, len, &a)) {
    errno = EAFNOSUPPORT;
    return false;
  }
  RegistryEntry entry;
  UnixName name;
  ListenerName(a.family, a.bytes, a.port, &name);
  entry.fds[0] = BindName(name);
  if (entry.fds[0] < 0) return false;
  if (a.family == AF_INET6 && !v6only && IsZero(a.bytes, 16)) {
    static constexpr uint8_t kAny4[4] = {};
    ListenerName(AF_INET, kAny4, a.port, &name);
    entry.fds[1] = BindName(name);
    if (entry.fds[1] < 0) {
      int err = errno;
      entry.Close();
      errno = err;
      return false;
    }
  }
  *out = entry;
  return true;
}

bool LookupListener(const sockaddr* dst, socklen_t len, bool dst_is_local) {
  IpEndpoint a;
  if (!ToEndpoint(dst, len, &a) || a.port == 0) return false;
  int saved_errno = errno;
  UnixName name;
  ListenerName(a.family, a.bytes, a.port, &name);
  bool found = Probe(name);
  // A dual-stack "::" listener also registered the IPv4 wildcard, so the
  // family's wildcard covers it; an IPv6-only "::" listener never serves an
  // IPv4 destination and must not be consulted.
  if (!found && dst_is_local && !IsZero(a.bytes, AddrBytes(a.family))) {
    static constexpr uint8_t kAny[16] = {};
    ListenerName(a.family, kAny, a.port, &name);
    found = Probe(name);
  }
  errno = saved_errno;
  return found;
}

bool IsLocalAddress(const sockaddr* dst, socklen_t len) {
  IpEndpoint a;
  if (!ToEndpoint(dst, len, &a)) return false;
  if (a.family == AF_INET && a.bytes[0] == 127) return true;
  static constexpr uint8_t kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0, 0, 0, 0, 1};
  if (a.family == AF_INET6 && memcmp(a.bytes, kLoop6, 16) == 0) return true;
  if (IsZero(a.bytes, AddrBytes(a.family)))
    return true;  // connect() to 0.0.0.0 / :: is local
  bool local = false;
  if (CacheFind(a, &local)) return local;
  int saved_errno = errno;
  bool cacheable = false;
  local = RouteIsLocal(a, &cacheable);
  if (cacheable) CacheStore(a, local);
  errno = saved_errno;
  return local;
}

int RegistryProbeFd() { return g_probe.load(std::memory_order_acquire); }

}  // namespace usmc::shm
