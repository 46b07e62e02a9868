// tt_misc: the less common calls real programs make, as a client of
// "tt_server --proto echo". Every step sends a distinct slice of a pattern and
// checks its echo byte for byte:
//   sockopt  : TCP_NODELAY, SO_RCVBUF/SO_SNDBUF, TCP_CORK + MSG_MORE
//   mmsg     : sendmmsg / recvmmsg(MSG_WAITFORONE)
//   wait     : ppoll, pselect, epoll_pwait, epoll_pwait2 (with signal masks)
//   fortify  : read/recv/recvfrom/poll/ppoll compiled with _FORTIFY_SOURCE,
//              i.e. glibc's __read_chk, __recv_chk, __recvfrom_chk,
//              __poll_chk, __ppoll_chk entry points (Debian builds use them)
//
//   tt_misc --port P [--host H]
#if defined(__OPTIMIZE__) && !defined(_FORTIFY_SOURCE)
#define _FORTIFY_SOURCE 2
#endif
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "tt_common.h"

namespace tt {
namespace {

uint64_t g_off = 0;  // stream offset of the next slice (seed 21)
Fnv g_sum;           // checksum of everything sent

std::string NextSlice(size_t n) {
  std::string s(n, '\0');
  FillPattern(21, g_off, s.data(), n);
  g_off += n;
  g_sum.Update(s.data(), n);
  return s;
}

// Checks that `got` is the echo of the slice that started at `off`.
void ExpectSlice(const char* step, uint64_t off, const char* got, size_t n) {
  size_t bad = FindMismatch(21, off, got, n);
  TT_CHECK(bad == n, "%s: echo mismatch at byte %zu", step, bad);
}

void ReadBack(int fd, const char* step, uint64_t off, size_t n) {
  std::string got(n, '\0');
  TT_CHECK(ReadFull(fd, got.data(), n) == n, "%s: short echo", step);
  ExpectSlice(step, off, got.data(), n);
}

int GetInt(int fd, int level, int opt, const char* what) {
  int v = -1;
  socklen_t len = sizeof(v);
  Sys(getsockopt(fd, level, opt, &v, &len), what);
  return v;
}

void SetInt(int fd, int level, int opt, int v, const char* what) {
  Sys(setsockopt(fd, level, opt, &v, sizeof(v)), what);
}

void SockOpts(int fd) {
  SetInt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  TT_CHECK(GetInt(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY") != 0,
           "TCP_NODELAY did not stick");
  SetInt(fd, SOL_SOCKET, SO_RCVBUF, 65536, "SO_RCVBUF");
  SetInt(fd, SOL_SOCKET, SO_SNDBUF, 65536, "SO_SNDBUF");
  TT_CHECK(GetInt(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF") >= 65536,
           "SO_RCVBUF smaller than set");
  TT_CHECK(GetInt(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF") >= 65536,
           "SO_SNDBUF smaller than set");
  TT_CHECK(GetInt(fd, SOL_SOCKET, SO_TYPE, "SO_TYPE") == SOCK_STREAM,
           "SO_TYPE");
  uint64_t off = g_off;
  SetInt(fd, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
  std::string a = NextSlice(1000), b = NextSlice(3000);
  Sys(send(fd, a.data(), a.size(), MSG_MORE), "send MSG_MORE");
  Sys(send(fd, b.data(), b.size(), 0), "send");
  SetInt(fd, IPPROTO_TCP, TCP_CORK, 0, "TCP_CORK off");
  ReadBack(fd, "cork", off, a.size() + b.size());
}

void Mmsg(int fd) {
  uint64_t off = g_off;
  std::string s[3] = {NextSlice(100), NextSlice(5000), NextSlice(20000)};
  iovec iov[3][2];
  mmsghdr msgs[3] = {};
  for (int i = 0; i < 3; i++) {
    size_t half = s[i].size() / 2;
    iov[i][0] = {s[i].data(), half};
    iov[i][1] = {s[i].data() + half, s[i].size() - half};
    msgs[i].msg_hdr.msg_iov = iov[i];
    msgs[i].msg_hdr.msg_iovlen = 2;
  }
  int n = Sys(sendmmsg(fd, msgs, 3, 0), "sendmmsg");
  TT_CHECK(n == 3, "sendmmsg sent %d of 3 messages", n);
  size_t total = 25100, got = 0;
  std::string buf(total, '\0');
  while (got < total) {  // two "messages" per call: both halves of the rest
    size_t rem = total - got, first = (rem + 1) / 2;
    iovec riov[2] = {{buf.data() + got, first},
                     {buf.data() + got + first, rem - first}};
    mmsghdr r[2] = {};
    for (int i = 0; i < 2; i++) {
      r[i].msg_hdr.msg_iov = &riov[i];
      r[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned vlen = rem - first > 0 ? 2 : 1;
    int k = Sys(recvmmsg(fd, r, vlen, MSG_WAITFORONE, nullptr), "recvmmsg");
    TT_CHECK(k >= 1 && r[0].msg_len > 0, "recvmmsg returned %d", k);
    TT_CHECK(k == 1 || r[0].msg_len == first, "recvmmsg filled a hole");
    for (int i = 0; i < k; i++) got += r[i].msg_len;
  }
  ExpectSlice("mmsg", off, buf.data(), total);
}

// Sends a slice, waits for its echo with `wait`, reads it back.
template <typename Wait>
void WaitStep(int fd, const char* step, Wait wait) {
  uint64_t off = g_off;
  std::string s = NextSlice(4096);
  WriteAll(fd, s);
  int n = wait();
  TT_CHECK(n == 1, "%s returned %d (%s)", step, n, strerror(errno));
  ReadBack(fd, step, off, s.size());
}

void Waits(int fd) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR2);
  timespec ts{10, 0};
  WaitStep(fd, "ppoll", [&] {
    pollfd p{fd, POLLIN, 0};
    return ppoll(&p, 1, &ts, &mask);
  });
  WaitStep(fd, "pselect", [&] {
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    return pselect(fd + 1, &rd, nullptr, nullptr, &ts, &mask);
  });
  int ep = Sys(epoll_create(4), "epoll_create");
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.fd = fd;
  Sys(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e), "epoll_ctl");
  WaitStep(fd, "epoll_pwait",
           [&] { return epoll_pwait(ep, &e, 1, 10000, &mask); });
  WaitStep(fd, "epoll_pwait2",
           [&] { return epoll_pwait2(ep, &e, 1, &ts, &mask); });
  close(ep);
}

// The fortified entry points: fixed-size buffers let the compiler pass their
// sizes, so glibc routes these calls through the __*_chk functions.
void Fortified(int fd) {
  char buf[4096];
  pollfd p[1] = {{fd, POLLIN, 0}};
  // Sizes unknown at compile time: glibc calls __*_chk only then.
  volatile size_t size = sizeof(buf);
  volatile nfds_t one = 1;
  timespec ts{10, 0};
  const char* steps[] = {"read", "recv", "recvfrom", "poll", "ppoll"};
  for (const char* step : steps) {
    uint64_t off = g_off;
    std::string s = NextSlice(sizeof(buf));
    WriteAll(fd, s);
    if (strcmp(step, "poll") == 0) TT_CHECK(poll(p, one, 10000) == 1, "poll");
    if (strcmp(step, "ppoll") == 0)
      TT_CHECK(ppoll(p, one, &ts, nullptr) == 1, "ppoll");
    for (size_t got = 0; got < sizeof(buf);) {
      ssize_t k;
      if (strcmp(step, "recv") == 0)
        k = recv(fd, buf, size, 0);
      else if (strcmp(step, "recvfrom") == 0)
        k = recvfrom(fd, buf, size, 0, nullptr, nullptr);
      else
        k = read(fd, buf, size);
      Sys(k, step);
      TT_CHECK(k > 0, "%s: EOF", step);
      ExpectSlice(step, off + got, buf, k);
      got += k;
    }
  }
}

int Main(int argc, char** argv) {
  g_prog = "tt_misc";
  Args a(argc, argv);
  StartWatchdog(a.Int("timeout", 30));
  int fd = Connect(a.Str("host", "127.0.0.1"), a.Int("port", 0));
  SockOpts(fd);
  Mmsg(fd);
  Waits(fd);
  Fortified(fd);
  Sys(shutdown(fd, SHUT_WR), "shutdown");
  char c;
  TT_CHECK(ReadFull(fd, &c, 1) == 0, "expected EOF");
  printf("OK tt_misc bytes=%llu sum=%s\n", (unsigned long long)g_off,
         Hex(g_sum.h).c_str());
  return 0;
}

}  // namespace
}  // namespace tt

int main(int argc, char** argv) { return tt::Main(argc, argv); }
