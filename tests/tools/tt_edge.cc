// tt_edge: TCP edge cases, one connection each. Both roles live here:
//
//   tt_edge --role server --case C [--bind 127.0.0.1]   (prints LISTEN port=N)
//   tt_edge --role client --case C --port P [--host 127.0.0.1]
//
// Cases:
//   reset   : the server closes with unread data -> the client's recv gets
//             ECONNRESET.
//   killed  : --victim server|client; both print "READY", the test SIGKILLs
//             the victim; the survivor, blocked in --wait recv|poll|epoll|send,
//             must see EOF/ECONNRESET/EPIPE promptly.
//   epipe   : the server closes; the client reads EOF, then send() gives
//             EPIPE, write() raises SIGPIPE, MSG_NOSIGNAL suppresses it.
//   ioctl   : FIONREAD/SIOCINQ count unread bytes, SIOCOUTQ is 0 once the
//             peer has answered.
//   peek    : FIONBIO/MSG_DONTWAIT give EAGAIN on an empty socket; MSG_PEEK
//             does not consume; MSG_PEEK|MSG_WAITALL and MSG_WAITALL return
//             exactly what was asked.
//   refused : (client only) blocking and non-blocking connect to a closed port
//             -> ECONNREFUSED (non-blocking: via POLLOUT + SO_ERROR).
#include <linux/sockios.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "tt_common.h"

namespace tt {
namespace {

constexpr size_t kSmall = 8000;  // fits any ring/socket buffer: no deadlock

void SendPattern(int fd, uint64_t seed, uint64_t off, size_t n) {
  std::string b(n, '\0');
  FillPattern(seed, off, b.data(), n);
  WriteAll(fd, b);
}

void ExpectPattern(const char* what, uint64_t seed, uint64_t off, const char* p,
                   size_t n) {
  size_t bad = FindMismatch(seed, off, p, n);
  TT_CHECK(bad == n, "%s: data mismatch at byte %zu", what, bad);
}

std::string ErrName(ssize_t rc, int err) {
  if (rc == 0) return "EOF";
  if (rc > 0) return "data";
  if (err == ECONNRESET) return "ECONNRESET";
  if (err == EPIPE) return "EPIPE";
  return strerror(err);
}

void Ready() {
  printf("READY\n");
  fflush(stdout);
}

// ---- reset -----------------------------------------------------------------

void ResetServer(int fd) {
  char buf[kSmall];
  ssize_t k = recv(fd, buf, kSmall, MSG_PEEK | MSG_WAITALL);
  TT_CHECK(k == static_cast<ssize_t>(kSmall), "peek got %zd", k);
  ExpectPattern("peek", 7, 0, buf, kSmall);
  TT_CHECK(read(fd, buf, 1) == 1, "read 1");
  close(fd);  // kSmall-1 bytes unread -> RST
}

std::string ResetClient(int fd) {
  SendPattern(fd, 7, 0, kSmall);
  char c;
  ssize_t k = recv(fd, &c, 1, 0);
  TT_CHECK(k < 0 && errno == ECONNRESET,
           "recv after peer closed with unread "
           "data: %s, want ECONNRESET",
           ErrName(k, errno).c_str());
  return "got=ECONNRESET";
}

// ---- killed ----------------------------------------------------------------

// Blocks in the chosen call until the (killed) peer's connection ends.
std::string SurviveKill(int fd, const std::string& wait) {
  if (wait == "poll") {
    pollfd p{fd, POLLIN, 0};
    TT_CHECK(poll(&p, 1, -1) == 1, "poll: %s", strerror(errno));
  } else if (wait == "epoll") {
    int ep = Sys(epoll_create1(0), "epoll_create1");
    epoll_event e{};
    e.events = EPOLLIN | EPOLLRDHUP;
    Sys(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e), "epoll_ctl");
    TT_CHECK(epoll_wait(ep, &e, 1, -1) == 1, "epoll_wait: %s", strerror(errno));
  } else if (wait == "send") {
    std::string b(65536, 'x');
    ssize_t k;
    while ((k = send(fd, b.data(), b.size(), MSG_NOSIGNAL)) > 0) {
    }
    TT_CHECK(k < 0 && (errno == EPIPE || errno == ECONNRESET),
             "send to a killed peer: %s", ErrName(k, errno).c_str());
    return "got=" + ErrName(k, errno);
  }
  char c;
  ssize_t k = recv(fd, &c, 1, 0);
  TT_CHECK(k == 0 || (k < 0 && errno == ECONNRESET),
           "recv from a killed peer: %s", ErrName(k, errno).c_str());
  return "got=" + ErrName(k, errno);
}

std::string Killed(int fd, bool server, const Args& a) {
  bool victim = a.Str("victim", "server") == (server ? "server" : "client");
  if (server) {
    std::string ping = ReadLine(fd);
    TT_CHECK(ping == "ping", "got '%s'", ping.c_str());
    WriteAll(fd, "pong\n");
  } else {
    WriteAll(fd, "ping\n");
    std::string pong = ReadLine(fd);
    TT_CHECK(pong == "pong", "got '%s'", pong.c_str());
  }
  Ready();
  if (victim) {
    for (;;) pause();  // until SIGKILL
  }
  return SurviveKill(fd, a.Str("wait", "recv"));
}

// ---- epipe -----------------------------------------------------------------

volatile sig_atomic_t g_sigpipes = 0;
void OnSigpipe(int) { g_sigpipes = g_sigpipes + 1; }

std::string EpipeClient(int fd) {
  WriteAll(fd, "x");
  char c;
  TT_CHECK(recv(fd, &c, 1, 0) == 0, "expected EOF from the closing server");
  ssize_t k = 0;
  for (int i = 0; i < 100; i++) {
    k = send(fd, "y", 1, MSG_NOSIGNAL);
    if (k < 0) break;
    pollfd p{fd, 0, 0};  // wait for the peer's RST (POLLERR/POLLHUP)
    poll(&p, 1, 100);
  }
  TT_CHECK(k < 0 && errno == EPIPE, "send after peer close: %s, want EPIPE",
           ErrName(k, errno).c_str());
  signal(SIGPIPE, OnSigpipe);
  k = write(fd, "z", 1);
  TT_CHECK(k < 0 && errno == EPIPE, "write: %s, want EPIPE",
           ErrName(k, errno).c_str());
  TT_CHECK(g_sigpipes == 1, "SIGPIPE raised %d times, want 1", g_sigpipes);
  k = send(fd, "z", 1, MSG_NOSIGNAL);
  TT_CHECK(k < 0 && errno == EPIPE, "send(MSG_NOSIGNAL): %s",
           ErrName(k, errno).c_str());
  TT_CHECK(g_sigpipes == 1, "MSG_NOSIGNAL still raised SIGPIPE");
  return "got=EPIPE sigpipe=1";
}

void EpipeServer(int fd) {
  char c;
  TT_CHECK(ReadFull(fd, &c, 1) == 1, "no byte from client");
  close(fd);
}

// ---- ioctl -----------------------------------------------------------------

int Ioctl(int fd, unsigned long req, const char* what) {
  int v = -1;
  Sys(ioctl(fd, req, &v), what);
  return v;
}

void IoctlServer(int fd) {
  char buf[kSmall];
  ssize_t k = recv(fd, buf, kSmall, MSG_PEEK | MSG_WAITALL);
  TT_CHECK(k == static_cast<ssize_t>(kSmall), "peek got %zd", k);
  int n = Ioctl(fd, FIONREAD, "FIONREAD");
  TT_CHECK(n == static_cast<int>(kSmall), "FIONREAD %d, want %zu", n, kSmall);
  TT_CHECK(Ioctl(fd, SIOCINQ, "SIOCINQ") == n, "SIOCINQ != FIONREAD");
  TT_CHECK(ReadFull(fd, buf, kSmall) == kSmall, "short read");
  ExpectPattern("server", 3, 0, buf, kSmall);
  TT_CHECK(Ioctl(fd, FIONREAD, "FIONREAD") == 0, "FIONREAD not 0 after read");
  SendPattern(fd, 4, 0, kSmall / 2);
  char c;
  TT_CHECK(ReadFull(fd, &c, 1) == 0, "expected EOF");
}

std::string IoctlClient(int fd) {
  SendPattern(fd, 3, 0, kSmall);
  int q = Ioctl(fd, SIOCOUTQ, "SIOCOUTQ");
  TT_CHECK(q >= 0 && q <= static_cast<int>(kSmall), "SIOCOUTQ %d", q);
  char buf[kSmall / 2];
  ssize_t k = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_WAITALL);
  TT_CHECK(k == static_cast<ssize_t>(sizeof(buf)), "peek got %zd", k);
  int n = Ioctl(fd, FIONREAD, "FIONREAD");
  TT_CHECK(n == static_cast<int>(sizeof(buf)), "FIONREAD %d", n);
  q = Ioctl(fd, SIOCOUTQ, "SIOCOUTQ");
  TT_CHECK(q == 0, "SIOCOUTQ %d after the peer answered, want 0", q);
  TT_CHECK(ReadFull(fd, buf, sizeof(buf)) == sizeof(buf), "short read");
  ExpectPattern("client", 4, 0, buf, sizeof(buf));
  return "fionread=ok siocoutq=ok";
}

// ---- peek ------------------------------------------------------------------

void PeekServer(int fd) {
  char c;
  TT_CHECK(ReadFull(fd, &c, 1) == 1 && c == 'g', "no go byte");
  static const size_t kParts[] = {1, 999, 3000, 4000, 1, 7999};
  uint64_t off = 0;
  for (size_t n : kParts) {
    SendPattern(fd, 9, off, n);
    off += n;
  }
  TT_CHECK(ReadFull(fd, &c, 1) == 1 && c == 'd', "no done byte");
}

std::string PeekClient(int fd) {
  char buf[16000], again[1000];
  int on = 1, off = 0;
  Sys(ioctl(fd, FIONBIO, &on), "FIONBIO");
  ssize_t k = recv(fd, buf, 10, 0);
  TT_CHECK(k < 0 && errno == EAGAIN, "FIONBIO recv: %zd, want EAGAIN", k);
  Sys(ioctl(fd, FIONBIO, &off), "FIONBIO");
  k = recv(fd, buf, 10, MSG_DONTWAIT);
  TT_CHECK(k < 0 && errno == EAGAIN, "MSG_DONTWAIT: %zd, want EAGAIN", k);
  WriteAll(fd, "g");
  k = Sys(recv(fd, buf, 1000, MSG_PEEK), "peek");
  TT_CHECK(k > 0, "peek returned 0");
  ExpectPattern("peek", 9, 0, buf, k);
  ssize_t k2 = Sys(recv(fd, again, k, MSG_PEEK), "peek again");
  TT_CHECK(k2 == k && memcmp(buf, again, k) == 0, "second peek differs");
  k = recv(fd, buf, kSmall, MSG_PEEK | MSG_WAITALL);
  TT_CHECK(k == static_cast<ssize_t>(kSmall), "PEEK|WAITALL got %zd", k);
  ExpectPattern("peek waitall", 9, 0, buf, k);
  k = recv(fd, buf, 16000, MSG_WAITALL);
  TT_CHECK(k == 16000, "WAITALL got %zd of 16000", k);
  ExpectPattern("waitall", 9, 0, buf, k);
  WriteAll(fd, "d");
  TT_CHECK(recv(fd, buf, 1, 0) == 0, "expected EOF");
  return "peek=ok waitall=ok";
}

// ---- refused ---------------------------------------------------------------

std::string RefusedClient(const Args& a) {
  Addr ad = ParseAddr(a.Str("host", "127.0.0.1"), a.Int("port", 0));
  int fd = Sys(socket(ad.family(), SOCK_STREAM, 0), "socket");
  int rc = connect(fd, ad.sa(), ad.len);
  TT_CHECK(rc < 0 && errno == ECONNREFUSED, "blocking connect: %s",
           rc == 0 ? "connected" : strerror(errno));
  close(fd);
  fd = Sys(socket(ad.family(), SOCK_STREAM | SOCK_NONBLOCK, 0), "socket");
  rc = connect(fd, ad.sa(), ad.len);
  if (rc < 0 && errno == ECONNREFUSED) return "nb=immediate";
  TT_CHECK(rc < 0 && errno == EINPROGRESS, "non-blocking connect: %s",
           rc == 0 ? "connected" : strerror(errno));
  pollfd p{fd, POLLOUT, 0};
  TT_CHECK(poll(&p, 1, 10000) == 1, "no POLLOUT");
  int err = 0;
  socklen_t len = sizeof(err);
  Sys(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), "SO_ERROR");
  TT_CHECK(err == ECONNREFUSED, "SO_ERROR %s, want ECONNREFUSED",
           strerror(err));
  return "nb=einprogress";
}

// ---- driver ----------------------------------------------------------------

std::string RunServer(const std::string& c, const Args& a) {
  int lfd = Listen(a.Str("bind", "127.0.0.1"), a.Int("port", 0), -1);
  printf("LISTEN port=%d\n", Port(SockName(lfd, false)));
  fflush(stdout);
  int fd = Sys(accept(lfd, nullptr, nullptr), "accept");
  close(lfd);
  if (c == "reset")
    ResetServer(fd);
  else if (c == "killed")
    return Killed(fd, true, a);
  else if (c == "epipe")
    EpipeServer(fd);
  else if (c == "ioctl")
    IoctlServer(fd);
  else if (c == "peek")
    PeekServer(fd);
  else
    Fail("unknown case '%s'", c.c_str());
  return "";
}

std::string RunClient(const std::string& c, const Args& a) {
  if (c == "refused") return RefusedClient(a);
  int fd = Connect(a.Str("host", "127.0.0.1"), a.Int("port", 0));
  if (c == "reset") return ResetClient(fd);
  if (c == "killed") return Killed(fd, false, a);
  if (c == "epipe") return EpipeClient(fd);
  if (c == "ioctl") return IoctlClient(fd);
  if (c == "peek") return PeekClient(fd);
  Fail("unknown case '%s'", c.c_str());
}

int Main(int argc, char** argv) {
  g_prog = "tt_edge";
  Args a(argc, argv);
  StartWatchdog(a.Int("timeout", 30));
  std::string role = a.Str("role", "client"), c = a.Str("case", "");
  std::string info = role == "server" ? RunServer(c, a) : RunClient(c, a);
  printf("OK tt_edge role=%s case=%s %s\n", role.c_str(), c.c_str(),
         info.c_str());
  return 0;
}

}  // namespace
}  // namespace tt

int main(int argc, char** argv) { return tt::Main(argc, argv); }
