// tt_client: a plain TCP client for the integration tests (see tt_proto.h for
// the protocols it speaks with tt_server).
//
//   tt_client --port P [--host 127.0.0.1] --proto echo|banner|halfclose|http
//             [--bytes N] [--seed S] [--conns C] [--parallel T]
//             [--io threads|lockstep|poll|select|epoll|epoll2|epollpipe]
//             [--send write|send|writev|sendmsg|sendfile]
//             [--recv read|recv|readv|recvmsg|waitall]
//             [--nbconnect] [--requests K] [--hold] [--timeout SEC]
//
// Each of T threads makes C connections in turn; connection i sends N bytes of
// pattern(seed + i). Prints "OK tt_client ... conns=.. bytes=B sum=S" where B
// and S (sum of per-connection FNV-1a) describe the payload the server must
// have received. Echo data is verified byte by byte. --hold keeps the last
// connection established (no shutdown) after printing the result, until stdin
// reaches EOF, so the test can inspect the socket with ss.
#include <poll.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "tt_nbecho.h"

namespace tt {
namespace {

struct Options {
  std::string host, proto, io, send_m, recv_m;
  int port = 0;
  uint64_t bytes = 0, seed = 0;
  long conns = 1, parallel = 1, requests = 1;
  bool nbconnect = false, hold = false;
};

struct Totals {
  std::mutex mu;
  uint64_t bytes = 0, sum = 0;
  long conns = 0;
  std::string nbconnect = "no";
  int held_fd = -1;
};

// EINPROGRESS (or immediate success), then POLLOUT, then SO_ERROR.
int ConnectNonBlocking(const Options& o, std::string* how) {
  Addr a = ParseAddr(o.host, o.port);
  int fd = Sys(socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK, 0), "socket");
  int rc = connect(fd, a.sa(), a.len);
  TT_CHECK(rc == 0 || errno == EINPROGRESS,
           "non-blocking connect: %s (want EINPROGRESS)", strerror(errno));
  *how = rc == 0 ? "immediate" : "einprogress";
  pollfd p{fd, POLLOUT, 0};
  int n;
  while ((n = poll(&p, 1, 10000)) < 0 && errno == EINTR) {
  }
  TT_CHECK(n == 1 && (p.revents & POLLOUT), "no POLLOUT after connect");
  int err = -1;
  socklen_t len = sizeof(err);
  Sys(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), "SO_ERROR");
  TT_CHECK(err == 0, "SO_ERROR after connect: %s", strerror(err));
  SetNonBlocking(fd, false);
  return fd;
}

int Open(const Options& o, Totals* t) {
  std::string how;
  int fd = o.nbconnect ? ConnectNonBlocking(o, &how) : Connect(o.host, o.port);
  if (o.nbconnect) {
    std::lock_guard<std::mutex> lock(t->mu);
    t->nbconnect = how;
  }
  Addr peer = SockName(fd, true);
  TT_CHECK(Port(peer) == o.port, "getpeername port %d, connected to %d",
           Port(peer), o.port);
  return fd;
}

// ---- echo ------------------------------------------------------------------

// One thread sends while another receives on the same socket. With --hold
// the connection stays established: no shutdown, the echo is read by count.
void EchoThreads(int fd, const Payload& pl, const Options& o) {
  std::thread sender([&] {
    SendAll(fd, pl, o.send_m);
    if (!o.hold) Sys(shutdown(fd, SHUT_WR), "shutdown");
  });
  EchoCheck chk{&pl};
  if (o.hold) {
    std::string buf(pl.size, '\0');
    TT_CHECK(ReadFull(fd, buf.data(), pl.size) == pl.size, "short echo");
    chk.Take(buf.data(), pl.size);
  } else {
    RecvAll(fd, &chk, o.recv_m);
  }
  sender.join();
}

void EchoLockstep(int fd, const Payload& pl, const Options& o) {
  EchoCheck chk{&pl};
  char buf[16384];
  for (uint64_t off = 0; off < pl.size;) {
    size_t n = pl.size - off < sizeof(buf) ? pl.size - off : sizeof(buf);
    for (size_t s = 0; s < n;) {
      ssize_t k = SendSome(fd, pl, off + s, n - s, o.send_m);
      Sys(k, "send");
      s += k;
    }
    for (size_t r = 0; r < n;) {
      ssize_t k = RecvSome(fd, buf, n - r, o.recv_m);
      Sys(k, "receive");
      TT_CHECK(k > 0, "EOF in lockstep echo");
      chk.Take(buf, k);
      r += k;
    }
    off += n;
  }
  Sys(shutdown(fd, SHUT_WR), "shutdown");
  TT_CHECK(read(fd, buf, 1) == 0, "no EOF after echo");
  chk.Finish();
}

void RunEcho(int fd, const Payload& pl, const Options& o) {
  if (o.io == "threads") return EchoThreads(fd, pl, o);
  if (o.io == "lockstep") return EchoLockstep(fd, pl, o);
  NbEcho(fd, pl, o.io, o.send_m, o.recv_m).Run();
}

// ---- banner (server-first) -------------------------------------------------

void RunBanner(int fd, const Payload& pl, const Options& o) {
  std::string greet = ReadLine(fd);
  char token[64], peer[128];
  TT_CHECK(sscanf(greet.c_str(), "TTBANNER 1 %63s %127s", token, peer) == 2,
           "bad greeting '%s'", greet.c_str());
  const char* colon = strrchr(peer, ':');
  int seen_port = colon ? atoi(colon + 1) : -1;
  int my_port = Port(SockName(fd, false));
  TT_CHECK(seen_port == my_port, "server sees port %d, getsockname says %d",
           seen_port, my_port);
  WriteAll(fd, "HELLO " + std::string(token) + " " + std::to_string(pl.size) +
                   " " + std::to_string(pl.seed) + "\n");
  SendAll(fd, pl, o.send_m);
  std::string done = ReadLine(fd);
  std::string want =
      "DONE " + std::to_string(pl.size) + " " + Hex(PayloadSum(pl));
  TT_CHECK(done == want, "got '%s', want '%s'", done.c_str(), want.c_str());
  char c;
  TT_CHECK(ReadFull(fd, &c, 1) == 0, "data after DONE");
}

// ---- half-close ------------------------------------------------------------

void RunHalfClose(int fd, const Payload& pl, const Options& o) {
  SendAll(fd, pl, o.send_m);
  Sys(shutdown(fd, SHUT_WR), "shutdown");
  ssize_t k = send(fd, "x", 1, MSG_NOSIGNAL);
  TT_CHECK(k < 0 && errno == EPIPE, "send after SHUT_WR: %zd (%s), want EPIPE",
           k, strerror(errno));
  std::string reply = ReadToEof(fd);
  std::string want =
      "SUM " + std::to_string(pl.size) + " " + Hex(PayloadSum(pl)) + "\n";
  TT_CHECK(reply == want, "got '%s', want '%s'", reply.c_str(), want.c_str());
}

// ---- http ------------------------------------------------------------------

// One GET of /N (N bytes of pattern(N)); returns the request bytes sent.
std::string HttpGet(int fd, uint64_t n, bool last) {
  std::string req = "GET /" + std::to_string(n) + " HTTP/1.1\r\nHost: tt\r\n";
  req += last ? "Connection: close\r\n\r\n" : "\r\n";
  WriteAll(fd, req);
  std::string head;
  while (head.size() < 4 || head.compare(head.size() - 4, 4, "\r\n\r\n")) {
    char c;
    TT_CHECK(ReadFull(fd, &c, 1) == 1, "EOF in response header");
    head += c;
  }
  TT_CHECK(head.rfind("HTTP/1.1 200", 0) == 0, "status: %s", head.c_str());
  size_t p = head.find("Content-Length: ");
  TT_CHECK(p != std::string::npos, "no Content-Length");
  uint64_t len = strtoull(head.c_str() + p + 16, nullptr, 10);
  TT_CHECK(len == n, "Content-Length %llu, want %llu", (unsigned long long)len,
           (unsigned long long)n);
  std::string body(len, '\0');
  TT_CHECK(ReadFull(fd, body.data(), len) == len, "short body");
  size_t bad = FindMismatch(n, 0, body.data(), len);
  TT_CHECK(bad == len, "body mismatch at byte %zu", bad);
  return req;
}

// Request i asks for N - i bytes; the request bytes are the payload.
void RunHttp(int fd, const Payload& pl, const Options& o, Fnv* sent,
             uint64_t* sent_bytes) {
  for (long i = 0; i < o.requests; i++) {
    uint64_t n = pl.size > static_cast<uint64_t>(i) ? pl.size - i : 0;
    std::string req = HttpGet(fd, n, i + 1 == o.requests);
    sent->Update(req.data(), req.size());
    *sent_bytes += req.size();
  }
  char c;
  TT_CHECK(ReadFull(fd, &c, 1) == 0, "no EOF after Connection: close");
}

// ---- driver ----------------------------------------------------------------

void OneConnection(const Options& o, uint64_t seed, bool keep, Totals* t) {
  Payload pl(seed, o.bytes, o.send_m == "sendfile");
  int fd = Open(o, t);
  Fnv sent;
  uint64_t sent_bytes = pl.size;
  if (o.proto == "echo")
    RunEcho(fd, pl, o);
  else if (o.proto == "banner")
    RunBanner(fd, pl, o);
  else if (o.proto == "halfclose")
    RunHalfClose(fd, pl, o);
  else if (o.proto == "http")
    sent_bytes = 0, RunHttp(fd, pl, o, &sent, &sent_bytes);
  else
    Fail("unknown protocol '%s'", o.proto.c_str());
  uint64_t sum = o.proto == "http" ? sent.h : PayloadSum(pl);
  std::lock_guard<std::mutex> lock(t->mu);
  t->bytes += sent_bytes;
  t->sum += sum;
  t->conns++;
  if (keep)
    t->held_fd = fd;
  else
    close(fd);
}

Options Parse(const Args& a) {
  Options o;
  o.host = a.Str("host", "127.0.0.1");
  o.port = a.Int("port", 0);
  o.proto = a.Str("proto", "echo");
  o.io = a.Str("io", "threads");
  o.send_m = a.Str("send", "write");
  o.recv_m = a.Str("recv", "read");
  o.bytes = a.Int("bytes", 1 << 20);
  o.seed = a.Int("seed", 1);
  o.conns = a.Int("conns", 1);
  o.parallel = a.Int("parallel", 1);
  o.requests = a.Int("requests", 1);
  o.nbconnect = a.Has("nbconnect");
  o.hold = a.Has("hold");
  TT_CHECK(!o.hold || (o.proto == "echo" && o.io == "threads"),
           "--hold needs --proto echo --io threads");
  TT_CHECK(o.port > 0, "--port is required");
  CheckMethods(o.send_m, o.recv_m);
  return o;
}

int Main(int argc, char** argv) {
  g_prog = "tt_client";
  Args args(argc, argv);
  StartWatchdog(args.Int("timeout", 30));
  Options o = Parse(args);
  Totals t;
  std::vector<std::thread> threads;
  for (long th = 0; th < o.parallel; th++) {
    threads.emplace_back([&o, &t, th] {
      for (long i = 0; i < o.conns; i++) {
        bool keep = o.hold && th == 0 && i + 1 == o.conns;
        OneConnection(o, o.seed + th * o.conns + i, keep, &t);
      }
    });
  }
  for (auto& th : threads) th.join();
  int lport = t.held_fd >= 0 ? Port(SockName(t.held_fd, false)) : 0;
  printf(
      "OK tt_client proto=%s io=%s conns=%ld bytes=%llu sum=%s "
      "nbconnect=%s lport=%d\n",
      o.proto.c_str(), o.io.c_str(), t.conns, (unsigned long long)t.bytes,
      Hex(t.sum).c_str(), t.nbconnect.c_str(), lport);
  fflush(stdout);
  if (t.held_fd >= 0) {
    char buf[64];
    while (read(0, buf, sizeof(buf)) > 0) {
    }
    close(t.held_fd);
  }
  return 0;
}

}  // namespace
}  // namespace tt

int main(int argc, char** argv) { return tt::Main(argc, argv); }
