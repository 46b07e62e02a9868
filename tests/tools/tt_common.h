// Shared helpers for the plain-socket test programs (tt_*). No usmc code here:
// these programs must behave identically with and without the preload.
//
// Conventions: every program prints exactly one result line on stdout,
// "OK <prog> key=value ..." or "FAIL <prog>: reason", and exits 0 only on OK.
// A watchdog (alarm) turns any hang into "FAIL <prog>: timeout".
#ifndef USMC_TESTS_TOOLS_TT_COMMON_H_
#define USMC_TESTS_TOOLS_TT_COMMON_H_

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>

namespace tt {

inline const char* g_prog = "tt";

// Prints "FAIL <prog>: message" and exits 1.
[[noreturn]] inline void Fail(const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  printf("FAIL %s: %s\n", g_prog, msg);
  fflush(stdout);
  _exit(1);
}

#define TT_CHECK(cond, ...)               \
  do {                                    \
    if (!(cond)) ::tt::Fail(__VA_ARGS__); \
  } while (0)

// Fails with strerror(errno) when rc < 0; returns rc otherwise.
inline long Sys(long rc, const char* what) {
  if (rc < 0) Fail("%s: %s", what, strerror(errno));
  return rc;
}

inline void OnAlarm(int) {
  char msg[128];
  int n = snprintf(msg, sizeof(msg), "FAIL %s: timeout (watchdog)\n", g_prog);
  if (write(1, msg, n) < 0) _exit(3);
  _exit(3);
}

// Any hang ends the process with a FAIL line after `seconds`.
inline void StartWatchdog(int seconds) {
  signal(SIGALRM, OnAlarm);
  alarm(seconds);
}

inline double NowSec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// ---- deterministic data --------------------------------------------------

inline uint64_t SplitMix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Byte `offset` of the pseudo-random stream named by `seed`.
inline uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  uint64_t w = SplitMix(seed * 0x100000001B3ull ^ (offset / 8));
  return static_cast<uint8_t>(w >> (8 * (offset % 8)));
}

inline void FillPattern(uint64_t seed, uint64_t offset, void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t i = 0;
  for (; i < n && (offset + i) % 8 != 0; i++)
    p[i] = PatternByte(seed, offset + i);
  for (; i + 8 <= n; i += 8) {
    uint64_t w = SplitMix(seed * 0x100000001B3ull ^ ((offset + i) / 8));
    memcpy(p + i, &w, 8);  // little endian, same as PatternByte
  }
  for (; i < n; i++) p[i] = PatternByte(seed, offset + i);
}

// Returns the index of the first byte that differs from the pattern, or n.
inline size_t FindMismatch(uint64_t seed, uint64_t offset, const void* buf,
                           size_t n) {
  uint8_t tmp[4096];
  auto* p = static_cast<const uint8_t*>(buf);
  for (size_t done = 0; done < n;) {
    size_t k = n - done < sizeof(tmp) ? n - done : sizeof(tmp);
    FillPattern(seed, offset + done, tmp, k);
    if (memcmp(tmp, p + done, k) != 0) {
      for (size_t i = 0; i < k; i++)
        if (tmp[i] != p[done + i]) return done + i;
    }
    done += k;
  }
  return n;
}

// FNV-1a 64 over a byte stream; both ends of a transfer compare these.
struct Fnv {
  uint64_t h = 14695981039346656037ull;
  void Update(const void* buf, size_t n) {
    auto* p = static_cast<const uint8_t*>(buf);
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  }
};

inline std::string Hex(uint64_t v) {
  char b[24];
  snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// ---- command line: --key value | --flag ----------------------------------

class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 1; i < argc; i++) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) Fail("unexpected argument '%s'", argv[i]);
      bool has_value = i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
      kv_[a.substr(2)] = has_value ? argv[++i] : "1";
    }
  }
  bool Has(const std::string& k) const { return kv_.count(k) != 0; }
  std::string Str(const std::string& k, const std::string& def) const {
    auto it = kv_.find(k);
    return it == kv_.end() ? def : it->second;
  }
  long long Int(const std::string& k, long long def) const {
    auto it = kv_.find(k);
    return it == kv_.end() ? def : strtoll(it->second.c_str(), nullptr, 0);
  }

 private:
  std::map<std::string, std::string> kv_;
};

// ---- addresses ------------------------------------------------------------

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  int family() const { return ss.ss_family; }
};

inline Addr ParseAddr(const std::string& host, int port) {
  Addr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(*v6);
  } else {
    Fail("bad address '%s'", host.c_str());
  }
  return a;
}

// "ADDR:PORT" (IPv6 as "[ADDR]:PORT").
inline std::string AddrStr(const sockaddr* sa) {
  char h[INET6_ADDRSTRLEN] = "?";
  char out[INET6_ADDRSTRLEN + 16];
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, h, sizeof(h));
    snprintf(out, sizeof(out), "%s:%d", h, ntohs(v4->sin_port));
  } else {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &v6->sin6_addr, h, sizeof(h));
    snprintf(out, sizeof(out), "[%s]:%d", h, ntohs(v6->sin6_port));
  }
  return out;
}

// "v4", "v6" or "mapped" (an IPv4 peer seen through an IPv6 socket).
inline const char* AddrKind(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return "v4";
  auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
  return IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) ? "mapped" : "v6";
}

inline Addr SockName(int fd, bool peer) {
  Addr a;
  a.len = sizeof(a.ss);
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len);
  Sys(rc, peer ? "getpeername" : "getsockname");
  return a;
}

// getpeername that tolerates a connection the peer already reset (ENOTCONN):
// a server must not die of that; the next I/O call reports the error.
inline Addr PeerOrUnknown(int fd) {
  Addr a;
  a.len = sizeof(a.ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len) < 0) {
    a = ParseAddr("0.0.0.0", 0);
  }
  return a;
}

inline int Port(const Addr& a) {
  if (a.family() == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_port);
}

// Listens on host:port (port 0 = ephemeral). `v6only` < 0 keeps the default.
inline int Listen(const std::string& host, int port, int v6only,
                  int backlog = 128) {
  Addr a = ParseAddr(host, port);
  int fd = Sys(socket(a.family(), SOCK_STREAM, 0), "socket");
  int one = 1;
  Sys(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), "reuse");
  if (a.family() == AF_INET6 && v6only >= 0)
    Sys(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)),
        "IPV6_V6ONLY");
  Sys(bind(fd, a.sa(), a.len), "bind");
  Sys(listen(fd, backlog), "listen");
  return fd;
}

inline int Connect(const std::string& host, int port) {
  Addr a = ParseAddr(host, port);
  int fd = Sys(socket(a.family(), SOCK_STREAM, 0), "socket");
  int rc;
  do rc = connect(fd, a.sa(), a.len);
  while (rc < 0 && errno == EINTR);
  Sys(rc, "connect");
  return fd;
}

inline void SetNonBlocking(int fd, bool on) {
  int fl = Sys(fcntl(fd, F_GETFL), "F_GETFL");
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  Sys(fcntl(fd, F_SETFL, fl), "F_SETFL");
}

// ---- blocking I/O ---------------------------------------------------------

inline void WriteAll(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    Sys(k, "write");
    p += k;
    n -= k;
  }
}
inline void WriteAll(int fd, const std::string& s) {
  WriteAll(fd, s.data(), s.size());
}

// Reads until `n` bytes or EOF; returns the count. Errors are fatal.
inline size_t ReadFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, p + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    Sys(k, "read");
    if (k == 0) break;
    got += k;
  }
  return got;
}

// Reads one '\n'-terminated line (without the '\n') byte by byte, so that no
// byte after the line is consumed. Fails on EOF before '\n'.
inline std::string ReadLine(int fd, size_t max = 1024) {
  std::string line;
  for (;;) {
    char c;
    if (ReadFull(fd, &c, 1) != 1)
      Fail("EOF while reading a line (got '%s')", line.c_str());
    if (c == '\n') return line;
    line += c;
    if (line.size() > max) Fail("line too long");
  }
}

// Reads everything until EOF.
inline std::string ReadToEof(int fd) {
  std::string s;
  char buf[16384];
  size_t k;
  while ((k = ReadFull(fd, buf, sizeof(buf))) > 0) s.append(buf, k);
  return s;
}

}  // namespace tt

#endif  // USMC_TESTS_TOOLS_TT_COMMON_H_
