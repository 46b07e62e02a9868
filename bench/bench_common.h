// Shared helpers of the benchmark programs: flags, sockets, roles, timing,
// /proc sampling and JSON output. Header-only because bench/CMakeLists.txt
// builds every bench/*.cc into a program of its own. Plain sockets only: the
// programs know nothing about usmc, which is put under them by `usmc run`.
#ifndef USMC_BENCH_BENCH_COMMON_H_
#define USMC_BENCH_BENCH_COMMON_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace bench {

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

[[noreturn]] inline void Usage(const char* text) {
  std::fputs(text, stderr);
  std::exit(2);
}

inline double NowSec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// "--name value" and bare "--flag" arguments. A bare flag is one listed in
// `booleans`; every other "--name" takes the next argument as its value.
class Flags {
 public:
  Flags(int argc, char** argv, const std::set<std::string>& booleans) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0) BadFlag(arg);
      std::string name = arg.substr(2);
      if (booleans.count(name)) {
        values_[name].assign(1, '1');
      } else if (i + 1 < argc) {
        values_[name] = argv[++i];
      } else {
        BadFlag(arg);
      }
    }
  }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Str(const std::string& name, const std::string& def) const {
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  double Num(const std::string& name, double def) const {
    auto it = values_.find(name);
    return it == values_.end() ? def : std::strtod(it->second.c_str(), nullptr);
  }
  long Int(const std::string& name, long def) const {
    return static_cast<long>(Num(name, static_cast<double>(def)));
  }

 private:
  [[noreturn]] static void BadFlag(const std::string& arg) {
    std::fprintf(stderr, "bad argument '%s' (try --help)\n", arg.c_str());
    std::exit(2);
  }
  std::map<std::string, std::string> values_;
};

struct Endpoint {
  bool is_unix = false;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path;
  const char* Transport() const { return is_unix ? "unix" : "tcp"; }
};

inline Endpoint EndpointFromFlags(const Flags& flags) {
  Endpoint ep;
  if (flags.Has("unix")) {
    ep.is_unix = true;
    ep.path = flags.Str("unix", "");
  } else {
    ep.port = static_cast<int>(flags.Int("tcp", 0));
    ep.host = flags.Str("host", ep.host);
  }
  return ep;
}

inline socklen_t MakeAddr(const Endpoint& ep, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof(*ss));
  if (ep.is_unix) {
    auto* sun = reinterpret_cast<sockaddr_un*>(ss);
    sun->sun_family = AF_UNIX;
    std::snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", ep.path.c_str());
    return sizeof(sockaddr_un);
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(static_cast<uint16_t>(ep.port));
  if (inet_pton(AF_INET, ep.host.c_str(), &sin->sin_addr) != 1) {
    std::fprintf(stderr, "bad IPv4 address '%s'\n", ep.host.c_str());
    std::exit(2);
  }
  return sizeof(sockaddr_in);
}

inline int BoundPort(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof(sin);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    Die("getsockname");
  }
  return ntohs(sin.sin_port);
}

// Listens on `ep`; a TCP port 0 is replaced by the port the kernel chose.
inline int ListenOn(Endpoint* ep, int backlog) {
  int fd = socket(ep->is_unix ? AF_UNIX : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  if (ep->is_unix) {
    unlink(ep->path.c_str());
  } else {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  }
  sockaddr_storage ss;
  socklen_t len = MakeAddr(*ep, &ss);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) Die("bind");
  if (listen(fd, backlog) != 0) Die("listen");
  if (!ep->is_unix) ep->port = BoundPort(fd);
  return fd;
}

// Returns a connected socket, or -1 with errno set.
inline int ConnectTo(const Endpoint& ep) {
  int fd = socket(ep.is_unix ? AF_UNIX : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_storage ss;
  socklen_t len = MakeAddr(ep, &ss);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

inline void SetNoDelay(const Endpoint& ep, int fd) {
  if (ep.is_unix) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

inline int AcceptOne(int lfd) {
  int fd;
  do {
    fd = accept(lfd, nullptr, nullptr);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) Die("accept");
  return fd;
}

// Reads exactly n bytes; false on EOF or error.
inline bool ReadFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

inline bool WriteFull(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// The line a driver waits for before it starts the client.
inline void AnnounceReady(const Endpoint& ep) {
  std::printf("READY %d %d\n", ep.is_unix ? 0 : ep.port, getpid());
  std::fflush(stdout);
}

// One line of JSON, built key by key.
class Json {
 public:
  Json& Add(const std::string& key, double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return Raw(key, buf);
  }
  Json& Add(const std::string& key, long v) {
    return Raw(key, std::to_string(v));
  }
  Json& Add(const std::string& key, const char* v) {
    std::string quoted = "\"";
    quoted.append(v).append("\"");
    return Raw(key, quoted);
  }
  Json& AddBool(const std::string& key, bool v) {
    return Raw(key, v ? "true" : "false");
  }
  void Print() const {
    std::printf("{%s}\n", body_.c_str());
    std::fflush(stdout);
  }

 private:
  Json& Raw(const std::string& key, const std::string& v) {
    if (!body_.empty()) body_ += ", ";
    body_.append("\"").append(key).append("\": ").append(v);
    return *this;
  }
  std::string body_;
};

// Runs the server, the client, or both (fork) as the flags say:
// --server listens and announces READY; --client connects to --tcp/--unix;
// neither: listens on a free port, forks the server and runs the client.
// `client` gets the server's pid (0 when unknown, or --server-pid).
using ServerFn = std::function<int(int lfd, const Endpoint& ep)>;
using ClientFn = std::function<int(const Endpoint& ep, pid_t server)>;

inline int RunRoles(const Flags& flags, const ServerFn& server,
                    const ClientFn& client) {
  signal(SIGPIPE, SIG_IGN);
  Endpoint ep = EndpointFromFlags(flags);
  if (flags.Has("client")) {
    return client(ep, static_cast<pid_t>(flags.Int("server-pid", 0)));
  }
  bool both = !flags.Has("server");
  if (both && ep.is_unix && ep.path.empty()) {
    ep.path = "/tmp/usmc_bench." + std::to_string(getpid()) + ".sock";
  }
  int lfd = ListenOn(&ep, SOMAXCONN);
  if (!both) {
    AnnounceReady(ep);
    return server(lfd, ep);
  }
  pid_t child = fork();
  if (child < 0) Die("fork");
  if (child == 0) _exit(server(lfd, ep));
  close(lfd);
  int rc = client(ep, child);
  int status = 0;
  waitpid(child, &status, 0);
  if (ep.is_unix) unlink(ep.path.c_str());
  if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) rc = 1;
  return rc;
}

// utime + stime of a process in clock ticks (-1 if unreadable).
inline long CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');  // comm may contain spaces
  if (paren == std::string::npos) return -1;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  // After comm: state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return utime + stime;
}

// A "Key:   123 kB" value from a /proc/PID file (-1 if absent).
inline long ProcKb(pid_t pid, const char* file, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + key.size());
  }
  return -1;
}

inline void RaiseFdLimit(rlim_t want) {
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= want) return;
  rlimit up = {want, want > rl.rlim_max ? want : rl.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &up) != 0) {  // not privileged: soft = hard
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Serves every connection from one epoll loop: echoes what it reads and closes
// on EOF. Returns after a request whose first byte is kQuitByte was answered.
// Requests are small (<= 64 B), so a non-blocking echo write never blocks.
constexpr char kQuitByte = 'Q';

struct EchoStats {
  long accepted = 0;
  long closed = 0;
};

inline void AcceptAll(int ep, int lfd, EchoStats* stats) {
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ECONNABORTED) continue;
      Die("accept4");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) Die("epoll_ctl");
    ++stats->accepted;
  }
}

// Returns true when the quit request was served.
inline bool EchoOnce(int ep, int fd, EchoStats* stats) {
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (n <= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    ++stats->closed;
    return false;
  }
  WriteFull(fd, buf, static_cast<size_t>(n));
  return buf[0] == kQuitByte;
}

inline EchoStats RunEchoServer(int lfd) {
  EchoStats stats;
  int ep = epoll_create1(0);
  if (ep < 0) Die("epoll_create1");
  int flags = fcntl(lfd, F_GETFL);
  fcntl(lfd, F_SETFL, flags | O_NONBLOCK);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = lfd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) Die("epoll_ctl");
  epoll_event events[256];
  for (bool quit = false; !quit;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        AcceptAll(ep, lfd, &stats);
      } else if (EchoOnce(ep, fd, &stats)) {
        quit = true;
      }
    }
  }
  close(ep);
  return stats;
}

// Asks an echo server to exit: one connection carrying the quit request.
inline bool SendQuit(const Endpoint& ep) {
  int fd = ConnectTo(ep);
  if (fd < 0) return false;
  char req[64];
  std::memset(req, kQuitByte, sizeof(req));
  bool ok = WriteFull(fd, req, sizeof(req)) && ReadFull(fd, req, sizeof(req));
  close(fd);
  return ok;
}

}  // namespace bench

#endif  // USMC_BENCH_BENCH_COMMON_H_
