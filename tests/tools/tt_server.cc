// tt_server: a plain TCP server for the integration tests.
//
//   tt_server --proto echo|banner|halfclose|http
//             --model blocking|thread|fork|exec|epoll-lt|epoll-et|oneshot|
//                     poll|select
//             [--bind 127.0.0.1] [--port 0] [--v6only 0|1] [--conns N]
//             [--timeout SEC]
//
// Prints "LISTEN port=N" once listening, serves N connections (0 = until
// killed), then prints "OK tt_server ... conns=N bytes=B sum=S kinds=K", where
// bytes/sum are the payload received and the sum (mod 2^64) of the per-
// connection FNV-1a checksums; the test compares them with the client's.
//
// Models: blocking = one connection at a time (accept); thread = one thread
// per connection; fork = one child per connection, the parent closes its copy;
// exec = like fork, but the child execs this program with
// "--serve-fd FD --report-fd FD" and serves the inherited connection; the
// rest are the non-blocking loops of tt_loop.h (accept4).
#include <sys/wait.h>

#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tt_loop.h"

namespace tt {
namespace {

void WriteResult(int report_fd, const ConnResult& r) {
  Sys(write(report_fd, &r, sizeof(r)), "write report");
}

// Reads result records until every writer has closed the pipe.
std::vector<ConnResult> ReadResults(int fd) {
  std::vector<ConnResult> out;
  ConnResult r;
  size_t k;
  while ((k = ReadFull(fd, &r, sizeof(r))) == sizeof(r)) out.push_back(r);
  TT_CHECK(k == 0, "short result record (%zu bytes)", k);
  return out;
}

int AcceptOne(int lfd) {
  for (;;) {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd >= 0 || errno != EINTR) return Sys(fd, "accept");
  }
}

std::vector<ConnResult> RunBlocking(int lfd, const std::string& proto,
                                    long conns) {
  std::vector<ConnResult> out;
  for (long i = 0; conns == 0 || i < conns; i++)
    out.push_back(ServeBlocking(AcceptOne(lfd), proto));
  return out;
}

std::vector<ConnResult> RunThreads(int lfd, const std::string& proto,
                                   long conns) {
  std::vector<ConnResult> out;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (long i = 0; conns == 0 || i < conns; i++) {
    int fd = AcceptOne(lfd);
    threads.emplace_back([fd, &proto, &mu, &out] {
      ConnResult r = ServeBlocking(fd, proto);
      std::lock_guard<std::mutex> lock(mu);
      out.push_back(r);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

// Child side of the exec model: serve the inherited fd, report, exit.
[[noreturn]] void ServeInherited(const Args& args) {
  int fd = args.Int("serve-fd", -1);
  int report = args.Int("report-fd", -1);
  TT_CHECK(fd >= 0 && report >= 0, "--serve-fd needs --report-fd");
  int type = 0;
  socklen_t len = sizeof(type);
  Sys(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), "inherited fd");
  TT_CHECK(type == SOCK_STREAM, "inherited fd %d is not a stream socket", fd);
  WriteResult(report, ServeBlocking(fd, args.Str("proto", "echo")));
  _exit(0);
}

[[noreturn]] void ExecChild(int fd, int report, const std::string& proto) {
  std::string sfd = std::to_string(fd), rfd = std::to_string(report);
  const char* argv[] = {g_prog,      "--serve-fd", sfd.c_str(),   "--report-fd",
                        rfd.c_str(), "--proto",    proto.c_str(), nullptr};
  execv("/proc/self/exe", const_cast<char**>(argv));
  Fail("execv: %s", strerror(errno));
}

// fork (exec = false) or fork+exec (exec = true) per connection.
std::vector<ConnResult> RunForks(int lfd, const std::string& proto, long conns,
                                 bool exec) {
  TT_CHECK(conns > 0, "--model fork/exec needs --conns N");
  int p[2];
  Sys(pipe(p), "pipe");
  Sys(fcntl(p[0], F_SETFD, FD_CLOEXEC), "cloexec");
  Sys(fcntl(lfd, F_SETFD, FD_CLOEXEC), "cloexec");
  std::vector<pid_t> kids;
  for (long i = 0; i < conns; i++) {
    int fd = AcceptOne(lfd);
    pid_t pid = Sys(fork(), "fork");
    if (pid == 0) {
      close(lfd);
      close(p[0]);
      if (exec) ExecChild(fd, p[1], proto);
      WriteResult(p[1], ServeBlocking(fd, proto));
      _exit(0);
    }
    close(fd);  // the parent's copy; the child keeps the connection alive
    kids.push_back(pid);
  }
  close(p[1]);
  std::vector<ConnResult> out = ReadResults(p[0]);
  for (pid_t pid : kids) {
    int st = 0;
    Sys(waitpid(pid, &st, 0), "waitpid");
    TT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "child %d ended with status 0x%x", pid, st);
  }
  return out;
}

std::vector<ConnResult> RunModel(const std::string& model, int lfd,
                                 const std::string& proto, long conns) {
  if (model == "blocking") return RunBlocking(lfd, proto, conns);
  if (model == "thread") return RunThreads(lfd, proto, conns);
  if (model == "fork") return RunForks(lfd, proto, conns, false);
  if (model == "exec") return RunForks(lfd, proto, conns, true);
  static const std::map<std::string, Model> loops = {
      {"epoll-lt", Model::kEpollLt},
      {"epoll-et", Model::kEpollEt},
      {"oneshot", Model::kEpollOneshot},
      {"poll", Model::kPoll},
      {"select", Model::kSelect}};
  auto it = loops.find(model);
  TT_CHECK(it != loops.end(), "unknown model '%s'", model.c_str());
  return Loop(lfd, proto, it->second, conns).Run();
}

void PrintSummary(const std::vector<ConnResult>& rs, const std::string& model,
                  const std::string& proto, long conns) {
  uint64_t bytes = 0, sum = 0;
  std::set<std::string> kinds;
  for (size_t i = 0; i < rs.size(); i++) {
    TT_CHECK(rs[i].ok, "connection %zu: %s", i, rs[i].error);
    bytes += rs[i].bytes;
    sum += rs[i].sum;
    kinds.insert(rs[i].kind);
  }
  TT_CHECK(static_cast<long>(rs.size()) == conns,
           "%zu connection results, expected %ld", rs.size(), conns);
  std::string k;
  for (auto& s : kinds) k += (k.empty() ? "" : ",") + s;
  printf(
      "OK tt_server model=%s proto=%s conns=%zu bytes=%llu sum=%s kinds=%s\n",
      model.c_str(), proto.c_str(), rs.size(),
      static_cast<unsigned long long>(bytes), Hex(sum).c_str(), k.c_str());
}

int Main(int argc, char** argv) {
  g_prog = "tt_server";
  Args args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  StartWatchdog(args.Int("timeout", 60));
  if (args.Has("serve-fd")) ServeInherited(args);
  std::string model = args.Str("model", "blocking");
  std::string proto = args.Str("proto", "echo");
  long conns = args.Int("conns", 1);
  int lfd = Listen(args.Str("bind", "127.0.0.1"), args.Int("port", 0),
                   args.Int("v6only", -1));
  printf("LISTEN port=%d\n", Port(SockName(lfd, false)));
  fflush(stdout);
  std::vector<ConnResult> rs = RunModel(model, lfd, proto, conns);
  close(lfd);
  PrintSummary(rs, model, proto, conns);
  return 0;
}

}  // namespace
}  // namespace tt

int main(int argc, char** argv) { return tt::Main(argc, argv); }
