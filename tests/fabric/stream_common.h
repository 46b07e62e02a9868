// Shared pieces of the fabric test programs: arguments, the out-of-band TCP
// socket, the stream pattern and checksum, clocks. Test programs only: they
// use libc directly (they never run under the interposer).
#ifndef USMC_TESTS_FABRIC_STREAM_COMMON_H_
#define USMC_TESTS_FABRIC_STREAM_COMMON_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "link/fabric/link_group.h"

namespace usmc::fabric::tools {

inline constexpr uint8_t kCdcFlagClosed = 0x02;  // peer_conn_closed

inline uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

inline uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

struct Args {
  Role role = Role::kClient;
  std::array<std::string, kMaxLinks> local;
  std::string oob;  // IP:PORT
  uint64_t bytes = 256ull << 20;
  uint64_t ring = 4ull << 20;
  size_t chunk = 64 << 10;
  double rate_mbps = 0;
  bool wait_fd = false;
  uint32_t keepalive_ms = 0;
  int expect_links = 2;
  int links_timeout_s = 15;
  // fabric_perf
  std::string mode = "lat";
  size_t size = 64;
  int iters = 20000;
  int window = 16;
};

inline uint64_t ParseSize(const char* s) {
  char* end = nullptr;
  uint64_t v = std::strtoull(s, &end, 10);
  if (*end == 'K' || *end == 'k') v <<= 10;
  if (*end == 'M' || *end == 'm') v <<= 20;
  if (*end == 'G' || *end == 'g') v <<= 30;
  return v;
}

inline bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--role") {
      a->role = std::strcmp(v, "recv") == 0 || std::strcmp(v, "server") == 0
                    ? Role::kServer
                    : Role::kClient;
    } else if (k == "--local") {
      const std::string s = v;
      const size_t comma = s.find(',');
      a->local[0] = s.substr(0, comma);
      if (comma != std::string::npos) a->local[1] = s.substr(comma + 1);
    } else if (k == "--oob") {
      a->oob = v;
    } else if (k == "--bytes") {
      a->bytes = ParseSize(v);
    } else if (k == "--ring") {
      a->ring = ParseSize(v);
    } else if (k == "--chunk" || k == "--size") {
      (k == "--chunk" ? a->chunk : a->size) = ParseSize(v);
    } else if (k == "--rate") {
      a->rate_mbps = std::atof(v);
    } else if (k == "--wait") {
      a->wait_fd = std::strcmp(v, "fd") == 0;
    } else if (k == "--keepalive") {
      a->keepalive_ms = static_cast<uint32_t>(std::atoi(v));
    } else if (k == "--expect-links") {
      a->expect_links = std::atoi(v);
    } else if (k == "--links-timeout") {
      a->links_timeout_s = std::atoi(v);
    } else if (k == "--mode") {
      a->mode = v;
    } else if (k == "--iters" || k == "--window") {
      (k == "--iters" ? a->iters : a->window) = std::atoi(v);
    } else {
      fprintf(stderr, "unknown option %s\n", k.c_str());
      return false;
    }
  }
  const bool pow2 = a->ring != 0 && (a->ring & (a->ring - 1)) == 0;
  if (a->local[0].empty() || a->oob.empty() || !pow2 || a->bytes % 8 != 0 ||
      a->chunk % 8 != 0 || a->chunk == 0) {
    fprintf(stderr,
            "usage: --role send|recv --local IP[,IP] --oob IP:PORT "
            "(ring a power of two; bytes, chunk multiples of 8)\n");
    return false;
  }
  return true;
}

inline void* MapOrDie(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    std::exit(1);
  }
  return p;
}

inline bool OobAddr(const std::string& s, sockaddr_in* out) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port =
      htons(static_cast<uint16_t>(std::atoi(s.c_str() + colon + 1)));
  return inet_pton(AF_INET, s.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

inline int AcceptOob(const std::string& where) {
  sockaddr_in sa;
  if (!OobAddr(where, &sa)) return -1;
  const int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      listen(l, 1) != 0) {
    perror("oob listen");
    return -1;
  }
  printf("LISTENING %s\n", where.c_str());
  fflush(stdout);
  const int fd = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  close(l);
  return fd;
}

// Retries for a while: the peer may not be listening yet.
inline int ConnectOob(const std::string& where) {
  sockaddr_in sa;
  if (!OobAddr(where, &sa)) return -1;
  for (int i = 0; i < 200; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      return fd;
    }
    close(fd);
    usleep(50000);
  }
  perror("oob connect");
  return -1;
}

// The byte at stream position p depends on p, so a byte that is lost,
// duplicated or out of order never matches. Positions are multiples of 8.
inline uint64_t PatternWord(uint64_t index) {
  uint64_t z = index + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline void FillPattern(uint8_t* dst, uint64_t pos, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t w = PatternWord((pos + i) / 8);
    std::memcpy(dst + i, &w, 8);
  }
}

class Checksum {
 public:
  void Add(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h_ = (h_ ^ w) * 0x100000001b3ull;
      h_ ^= h_ >> 29;
    }
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

// A CDC cursor (16-bit wrap, count) back to a stream position, given a
// recent position `near`.
inline uint64_t Unwrap(uint64_t near, uint16_t wrap, uint32_t count,
                       uint64_t ring) {
  const uint64_t period = ring << 16;
  const uint64_t in_period = uint64_t(wrap) * ring + count;
  uint64_t cand = near - near % period + in_period;
  if (cand + period / 2 < near) cand += period;
  if (cand > near + period / 2 && cand >= period) cand -= period;
  return cand;
}

}  // namespace usmc::fabric::tools

#endif  // USMC_TESTS_FABRIC_STREAM_COMMON_H_
