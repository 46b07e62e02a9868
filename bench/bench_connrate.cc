// bench_connrate: short connections (connect, one 64 B request, 64 B reply,
// close) for a duration, from --concurrency client threads, against an epoll
// echo server. Reports connections per second as one JSON line.
#include <atomic>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr char kHelp[] =
    "usage: bench_connrate [--server | --client] [--tcp PORT | --unix PATH]\n"
    "         [--host IP] [--duration SEC] [--concurrency N] [--keep-server]\n"
    "  --server: epoll echo server, print READY <port> <pid>; it exits on the\n"
    "  client's quit request (not sent with --keep-server)\n"
    "  --client: connect repeatedly; neither: fork both. Defaults: 2 s, 1.\n";

constexpr size_t kMessage = 64;
constexpr long kMaxErrors = 100;

int Serve(int lfd, const bench::Endpoint&) {
  bench::EchoStats stats = bench::RunEchoServer(lfd);
  bench::Json().Add("role", "server").Add("accepted", stats.accepted).Print();
  return 0;
}

struct Worker {
  long conns = 0;
  long errors = 0;
  double busy_s = 0;  // sum of connection lifetimes, for the mean
};

// One short connection; false (errno kept) on failure.
bool OneConnection(const bench::Endpoint& ep) {
  int fd = bench::ConnectTo(ep);
  if (fd < 0) return false;
  char buf[kMessage];
  std::memset(buf, 'r', sizeof(buf));
  bool ok = bench::WriteFull(fd, buf, sizeof(buf)) &&
            bench::ReadFull(fd, buf, sizeof(buf));
  int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

void Loop(const bench::Endpoint& ep, double deadline, std::atomic<long>* errors,
          Worker* w) {
  for (double t0 = bench::NowSec(); t0 < deadline;) {
    if (OneConnection(ep)) {
      ++w->conns;
    } else {
      ++w->errors;
      if (errors->fetch_add(1) == 0) std::perror("connection");
      if (errors->load() > kMaxErrors) return;
    }
    double t1 = bench::NowSec();
    w->busy_s += t1 - t0;
    t0 = t1;
  }
}

int Measure(const bench::Endpoint& ep, double duration, int concurrency,
            bool quit) {
  std::vector<Worker> workers(static_cast<size_t>(concurrency));
  std::vector<std::thread> threads;
  std::atomic<long> errors{0};
  double start = bench::NowSec();
  double deadline = start + duration;
  for (auto& w : workers) threads.emplace_back(Loop, ep, deadline, &errors, &w);
  for (auto& t : threads) t.join();
  double seconds = bench::NowSec() - start;
  Worker sum;
  for (const auto& w : workers) {
    sum.conns += w.conns;
    sum.errors += w.errors;
    sum.busy_s += w.busy_s;
  }
  if (quit && !bench::SendQuit(ep)) std::perror("quit request");
  double done = static_cast<double>(sum.conns + sum.errors);
  bench::Json()
      .Add("bench", "connrate")
      .Add("transport", ep.Transport())
      .Add("concurrency", static_cast<long>(concurrency))
      .Add("conns", sum.conns)
      .Add("errors", sum.errors)
      .Add("seconds", seconds)
      .Add("cps", static_cast<double>(sum.conns) / seconds)
      .Add("mean_us", done > 0 ? sum.busy_s / done * 1e6 : 0.0)
      .Print();
  return sum.errors > kMaxErrors || sum.conns == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv, {"server", "client", "keep-server", "help"});
  if (flags.Has("help")) bench::Usage(kHelp);
  double duration = flags.Num("duration", 2.0);
  int concurrency = static_cast<int>(flags.Int("concurrency", 1));
  if (concurrency < 1) bench::Usage(kHelp);
  bool quit = !flags.Has("keep-server");
  return bench::RunRoles(flags, Serve, [&](const bench::Endpoint& ep, pid_t) {
    return Measure(ep, duration, concurrency, quit);
  });
}
