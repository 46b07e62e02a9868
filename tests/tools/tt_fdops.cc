// tt_fdops: process- and fd-level operations on a connection, run as the
// client of "tt_server --proto echo":
//
//   tt_fdops --case dup|fork|eintr --port P [--host H] [--bytes N]
//
//   dup   : the payload is written through dup, dup2, dup3(O_CLOEXEC) and
//           fcntl(F_DUPFD_CLOEXEC) copies while other copies are closed
//           (close and close_range); a thread reads the echo through the
//           dup3 copy meanwhile.
//           The connection must survive until the last copy is closed.
//   fork  : (1) the parent sends half, a forked child sends the rest and shuts
//           the write side, a parent thread reads the whole echo; (2) the
//           parent closes its copy right after fork and the child does the
//           echo. Needs "tt_server --conns 2".
//   eintr : a blocked recv returns EINTR on a signal without SA_RESTART and
//           keeps waiting with SA_RESTART (while another thread sends).
// Built with 64-bit file offsets, as Debian's redis is: glibc then routes
// fcntl() to fcntl64 (the other tools use plain fcntl).
#define _FILE_OFFSET_BITS 64
#include <pthread.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "tt_common.h"

namespace tt {
namespace {

void SendRange(int fd, uint64_t seed, uint64_t off, uint64_t n) {
  char buf[65536];
  while (n > 0) {
    size_t k = n < sizeof(buf) ? n : sizeof(buf);
    FillPattern(seed, off, buf, k);
    WriteAll(fd, buf, k);
    off += k;
    n -= k;
  }
}

// Reads the echo until EOF and checks it is exactly pattern(seed)[0, n).
void ExpectEcho(int fd, uint64_t seed, uint64_t n) {
  char buf[65536];
  uint64_t got = 0;
  size_t k;
  while ((k = ReadFull(fd, buf, sizeof(buf))) > 0) {
    TT_CHECK(got + k <= n, "echo longer than the payload");
    size_t bad = FindMismatch(seed, got, buf, k);
    TT_CHECK(bad == k, "echo mismatch at byte %llu",
             (unsigned long long)(got + bad));
    got += k;
  }
  TT_CHECK(got == n, "echo: %llu of %llu bytes", (unsigned long long)got,
           (unsigned long long)n);
}

// ---- dup -------------------------------------------------------------------

std::string Dup(const Args& a) {
  uint64_t n = a.Int("bytes", 1 << 20), q = n / 4;
  int fd = Connect(a.Str("host", "127.0.0.1"), a.Int("port", 0));
  int d1 = Sys(dup(fd), "dup");
  int d2 = Sys(dup2(fd, 200), "dup2");
  int d3 = Sys(dup3(fd, 201, O_CLOEXEC), "dup3");
  int d4 = Sys(fcntl(fd, F_DUPFD_CLOEXEC, 300), "F_DUPFD_CLOEXEC");
  TT_CHECK(d2 == 200 && d3 == 201 && d4 >= 300, "unexpected fd numbers");
  TT_CHECK(Sys(fcntl(d3, F_GETFD), "F_GETFD") & FD_CLOEXEC, "dup3: no CLOEXEC");
  TT_CHECK(!(Sys(fcntl(d2, F_GETFD), "F_GETFD") & FD_CLOEXEC),
           "dup2 copy has CLOEXEC");
  std::thread reader([d3, n] { ExpectEcho(d3, 5, n); });
  SendRange(fd, 5, 0, q);
  close(fd);
  SendRange(d1, 5, q, q);
  close(d1);
  SendRange(d2, 5, 2 * q, q);
  Sys(close_range(200, 200, 0), "close_range");
  SendRange(d4, 5, 3 * q, n - 3 * q);
  Sys(shutdown(d4, SHUT_WR), "shutdown");
  Sys(close_range(300, 400, 0), "close_range");
  TT_CHECK(fcntl(d4, F_GETFD) < 0 && errno == EBADF, "close_range left fd");
  reader.join();
  close(d3);
  return "copies=5";
}

// ---- fork ------------------------------------------------------------------

void WaitChild(pid_t pid, const char* what) {
  int st = 0;
  Sys(waitpid(pid, &st, 0), "waitpid");
  TT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s child: status 0x%x", what,
           st);
}

std::string Fork(const Args& a) {
  uint64_t n = a.Int("bytes", 1 << 20);
  std::string host = a.Str("host", "127.0.0.1");
  int port = a.Int("port", 0);
  // (1) both hold the connection; parent and child each send a part.
  int fd = Connect(host, port);
  std::thread reader([fd, n] { ExpectEcho(fd, 11, n); });
  SendRange(fd, 11, 0, n / 2);
  fflush(stdout);
  pid_t pid = Sys(fork(), "fork");
  if (pid == 0) {
    SendRange(fd, 11, n / 2, n - n / 2);
    Sys(shutdown(fd, SHUT_WR), "shutdown");
    _exit(0);
  }
  WaitChild(pid, "sending");
  reader.join();
  close(fd);
  // (2) the parent closes its copy at once; the child does the whole echo.
  fd = Connect(host, port);
  pid = Sys(fork(), "fork");
  if (pid == 0) {
    std::thread sender([fd, n] {
      SendRange(fd, 12, 0, n);
      Sys(shutdown(fd, SHUT_WR), "shutdown");
    });
    ExpectEcho(fd, 12, n);
    sender.join();
    _exit(0);
  }
  close(fd);
  WaitChild(pid, "echoing");
  return "shared=ok handed=ok";
}

// ---- eintr -----------------------------------------------------------------

std::atomic<int> g_signals{0};
void OnUsr1(int) { g_signals++; }

void Handle(bool restart) {
  struct sigaction sa {};
  sa.sa_handler = OnUsr1;
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigemptyset(&sa.sa_mask);
  Sys(sigaction(SIGUSR1, &sa, nullptr), "sigaction");
}

// Signals `target` every 20 ms until *stop (or `count` signals, then sends a
// byte on fd if fd >= 0).
std::thread Pester(pthread_t target, std::atomic<bool>* stop, int count,
                   int fd) {
  return std::thread([=] {
    for (int i = 0; !*stop && (count == 0 || i < count); i++) {
      pthread_kill(target, SIGUSR1);
      usleep(20000);
    }
    if (fd >= 0) WriteAll(fd, "g", 1);
  });
}

std::string Eintr(const Args& a) {
  int fd = Connect(a.Str("host", "127.0.0.1"), a.Int("port", 0));
  char c;
  Handle(false);
  std::atomic<bool> stop{false};
  std::thread t = Pester(pthread_self(), &stop, 0, -1);
  ssize_t k = recv(fd, &c, 1, 0);  // nothing will come
  int err = errno;
  stop = true;
  t.join();
  TT_CHECK(k < 0 && err == EINTR, "recv without SA_RESTART: %zd (%s)", k,
           strerror(err));
  Handle(true);
  int before = g_signals;
  stop = false;
  t = Pester(pthread_self(), &stop, 5, fd);
  k = recv(fd, &c, 1, 0);  // restarted until the echo of "g" arrives
  err = errno;
  t.join();
  TT_CHECK(k == 1 && c == 'g', "recv with SA_RESTART: %zd (%s)", k,
           strerror(err));
  TT_CHECK(g_signals > before, "no signal was delivered");
  Sys(shutdown(fd, SHUT_WR), "shutdown");
  TT_CHECK(ReadFull(fd, &c, 1) == 0, "expected EOF");
  return "eintr=ok restart=ok";
}

int Main(int argc, char** argv) {
  g_prog = "tt_fdops";
  Args a(argc, argv);
  StartWatchdog(a.Int("timeout", 30));
  std::string c = a.Str("case", "");
  std::string info;
  if (c == "dup")
    info = Dup(a);
  else if (c == "fork")
    info = Fork(a);
  else if (c == "eintr")
    info = Eintr(a);
  else
    Fail("unknown case '%s'", c.c_str());
  printf("OK tt_fdops case=%s %s\n", c.c_str(), info.c_str());
  return 0;
}

}  // namespace
}  // namespace tt

int main(int argc, char** argv) { return tt::Main(argc, argv); }
