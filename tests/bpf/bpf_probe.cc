// Test helper for the BPF capability signal: a TCP server and client that
// print what LookupPeerCapability() says about their connection, a
// micro-benchmark, and a SYN sniffer (AF_PACKET) for the wire check.
//
//   bpf_probe server ADDR [--count N]          LISTEN <port>, then a JSON line
//                                              per accepted connection
//   bpf_probe client ADDR PORT [--join-after-socket CGROUP] [--check-rdwr]
//   bpf_probe bench ADDR [--lookups N] [--conns N]
//   bpf_probe sniff IFNAME PORT [--timeout-ms N]   READY, then a JSON line
//                                                  per SYN / SYN-ACK
//   bpf_probe cgroup                           prints /proc/self/cgroup
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "bpf/capability.h"
#include "bpf/paths.h"

namespace {

using usmc::bpf::LookupPeerCapability;
using usmc::bpf::PeerCapability;

[[noreturn]] void Die(const char* what) {
  fprintf(stderr, "bpf_probe: %s: %s\n", what, strerror(errno));
  exit(1);
}

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

Addr ParseAddr(const char* text, int port) {
  Addr a;
  std::string host = text;
  if (host.size() > 2 && host.front() == '[') {
    host = host.substr(1, host.size() - 2);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(*v6);
  } else {
    fprintf(stderr, "bpf_probe: bad address %s\n", text);
    exit(2);
  }
  return a;
}

int Listen(const Addr& a) {
  int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) Die("socket");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    Die("bind");
  }
  if (listen(fd, 128) != 0) Die("listen");
  return fd;
}

int LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET
                   ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void PrintResult(const char* role, int fd, const std::string& extra) {
  usmc_peer_info info{};
  PeerCapability c = LookupPeerCapability(fd, &info);
  printf(
      "{\"role\":\"%s\",\"cap\":\"%s\",\"peer_ok\":%d,\"we_sent\":%d,"
      "\"side\":%d,\"reason\":%d,\"uid\":%d%s}\n",
      role, usmc::bpf::PeerCapabilityName(c), info.peer_ok, info.we_sent,
      info.side, info.reason, static_cast<int>(geteuid()), extra.c_str());
  fflush(stdout);
}

// A read-write BPF_OBJ_GET of the map pin: must fail for unprivileged users.
std::string CheckRdwr() {
  char path[4096];
  usmc::bpf::PinPath(usmc::bpf::PinDir(), usmc::bpf::kPeerMapPin, path,
                     sizeof(path));
  bpf_attr a{};
  a.pathname = reinterpret_cast<uintptr_t>(path);
  long fd = syscall(SYS_bpf, BPF_OBJ_GET, &a, sizeof(a));
  std::string r = fd >= 0 ? "ok" : strerrorname_np(errno);
  if (fd >= 0) close(static_cast<int>(fd));
  return ",\"rdwr_open\":\"" + r + "\"";
}

int Server(int argc, char** argv) {
  if (argc < 3) return 2;
  int count = argc >= 5 && strcmp(argv[3], "--count") == 0 ? atoi(argv[4]) : 1;
  int lfd = Listen(ParseAddr(argv[2], 0));
  printf("LISTEN %d\n", LocalPort(lfd));
  fflush(stdout);
  for (int i = 0; i < count; ++i) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) Die("accept");
    PrintResult("server", fd, "");
    char b;
    if (read(fd, &b, 1) == 1 && write(fd, &b, 1) != 1) Die("write");
    close(fd);
  }
  return 0;
}

int Client(int argc, char** argv) {
  if (argc < 4) return 2;
  Addr a = ParseAddr(argv[2], atoi(argv[3]));
  const char* join = nullptr;
  bool check_rdwr = false;
  for (int i = 4; i < argc; ++i) {
    if (strcmp(argv[i], "--join-after-socket") == 0 && i + 1 < argc) {
      join = argv[++i];
    } else if (strcmp(argv[i], "--check-rdwr") == 0) {
      check_rdwr = true;
    }
  }
  int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  if (join != nullptr) {  // too late: the socket keeps its cgroup
    FILE* f = fopen((std::string(join) + "/cgroup.procs").c_str(), "w");
    if (f == nullptr || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0) {
      Die("join cgroup");
    }
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    Die("connect");
  }
  PrintResult("client", fd, check_rdwr ? CheckRdwr() : "");
  char b = 'x';
  if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) Die("exchange");
  close(fd);
  return 0;
}

double NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

double LookupNs(int fd, int n) {
  double t0 = NowNs();
  for (int i = 0; i < n; ++i) LookupPeerCapability(fd);
  return (NowNs() - t0) / n;
}

// connect + accept + close (RST, so no TIME_WAIT pile-up) per iteration.
double ConnectUs(const Addr& a, int lfd, int n) {
  Addr dst = a;
  int port = htons(static_cast<uint16_t>(LocalPort(lfd)));
  if (dst.ss.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&dst.ss)->sin_port = port;
  } else {
    reinterpret_cast<sockaddr_in6*>(&dst.ss)->sin6_port = port;
  }
  linger lg{1, 0};
  double t0 = NowNs();
  for (int i = 0; i < n; ++i) {
    int c = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0) {
      Die("connect");
    }
    int s = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (s < 0) Die("accept");
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c);
    close(s);
  }
  return (NowNs() - t0) / n / 1000.0;
}

int Bench(int argc, char** argv) {
  if (argc < 3) return 2;
  int lookups = 200000, conns = 20000;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--lookups") == 0) lookups = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--conns") == 0) conns = atoi(argv[i + 1]);
  }
  Addr a = ParseAddr(argv[2], 0);
  int lfd = Listen(a);
  double conn_us = ConnectUs(a, lfd, conns);
  int c = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Addr dst = ParseAddr(argv[2], LocalPort(lfd));
  if (connect(c, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0) {
    Die("connect");
  }
  int s = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  const char* cap = usmc::bpf::PeerCapabilityName(LookupPeerCapability(c));
  printf(
      "{\"cap\":\"%s\",\"lookup_client_ns\":%.0f,\"lookup_server_ns\":%.0f,"
      "\"lookup_listener_ns\":%.0f,\"connect_accept_close_us\":%.2f}\n",
      cap, LookupNs(c, lookups), LookupNs(s, lookups), LookupNs(lfd, lookups),
      conn_us);
  return 0;
}

struct TcpSeen {
  bool syn = false, synack = false;
};

// One IPv4/IPv6 packet from AF_PACKET/SOCK_DGRAM: prints SYN and SYN-ACK of
// `port` once each (on lo every packet is seen twice).
void Inspect(const uint8_t* p, size_t n, uint16_t proto, int port,
             std::set<std::pair<int, uint32_t>>* seen, TcpSeen* got) {
  size_t off = 0;
  if (proto == ETH_P_IP && n >= 20 && p[9] == IPPROTO_TCP) {
    off = (p[0] & 0x0f) * 4u;
  } else if (proto == ETH_P_IPV6 && n >= 40 && p[6] == IPPROTO_TCP) {
    off = 40;
  } else {
    return;
  }
  if (n < off + 20) return;
  const uint8_t* t = p + off;
  int sport = t[0] << 8 | t[1], dport = t[2] << 8 | t[3];
  int flags = t[13];
  size_t hdr = (t[12] >> 4) * 4u;
  if ((sport != port && dport != port) || !(flags & 0x02) || n < off + hdr) {
    return;
  }
  uint32_t seq;
  memcpy(&seq, t + 4, 4);
  if (!seen->insert({flags, seq}).second) return;
  std::string hex;
  for (size_t i = 20; i < hdr; ++i) {
    char b[3];
    snprintf(b, sizeof(b), "%02x", t[i]);
    hex += b;
  }
  bool ack = flags & 0x10;
  (ack ? got->synack : got->syn) = true;
  printf("{\"flags\":\"%s\",\"options\":\"%s\"}\n", ack ? "SYN-ACK" : "SYN",
         hex.c_str());
  fflush(stdout);
}

int Sniff(int argc, char** argv) {
  if (argc < 4) return 2;
  int port = atoi(argv[3]);
  int timeout_ms = argc >= 6 ? atoi(argv[5]) : 5000;
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) Die("socket(AF_PACKET)");
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = static_cast<int>(if_nametoindex(argv[2]));
  if (ll.sll_ifindex == 0) Die(argv[2]);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof(ll)) != 0) Die("bind");
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  printf("READY\n");
  fflush(stdout);
  std::set<std::pair<int, uint32_t>> seen;
  TcpSeen got;
  double end = NowNs() + timeout_ms * 1e6;
  uint8_t buf[2048];
  while (!(got.syn && got.synack) && NowNs() < end) {
    sockaddr_ll from{};
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0,
                         reinterpret_cast<sockaddr*>(&from), &fl);
    if (n > 0) {
      Inspect(buf, static_cast<size_t>(n), ntohs(from.sll_protocol), port,
              &seen, &got);
    }
  }
  return got.syn ? 0 : 1;
}

int PrintCgroup() {
  FILE* f = fopen("/proc/self/cgroup", "r");
  if (f == nullptr) Die("/proc/self/cgroup");
  char line[4096];
  while (fgets(line, sizeof(line), f) != nullptr) fputs(line, stdout);
  fclose(f);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  alarm(60);  // watchdog: a hung test helper must not hang the test
  if (argc >= 2) {
    std::string mode = argv[1];
    int rc = mode == "server"   ? Server(argc, argv)
             : mode == "client" ? Client(argc, argv)
             : mode == "bench"  ? Bench(argc, argv)
             : mode == "sniff"  ? Sniff(argc, argv)
             : mode == "cgroup" ? PrintCgroup()
                                : 2;
    if (rc != 2) return rc;
  }
  fputs(
      "usage: bpf_probe server ADDR [--count N] | client ADDR PORT "
      "[--join-after-socket CG] [--check-rdwr] | bench ADDR [--lookups N] "
      "[--conns N] | sniff IFNAME PORT [--timeout-ms N] | cgroup\n",
      stderr);
  return 2;
}
