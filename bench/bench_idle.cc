// bench_idle: opens K connections to an epoll echo server (one 1-byte ping
// each, so both ends have set them up), then both sides hold them idle, each
// blocked in epoll_wait. After a settle time (the spin window) it measures CPU
// use of itself and of the server (utime+stime from /proc/PID/stat) over S
// seconds, and the memory (VmRSS, Pss) of both. One JSON line.
#include <sys/eventfd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr char kHelp[] =
    "usage: bench_idle [--server | --client] [--tcp PORT | --unix PATH]\n"
    "         [--host IP] [--conns K] [--settle SEC] [--seconds S]\n"
    "         [--server-pid PID]\n"
    "  --server: epoll echo server, print READY <port> <pid>\n"
    "  --client: hold K connections and measure (the server's CPU and memory\n"
    "  too if --server-pid is given); neither: fork both.\n"
    "  Defaults: K 1000, settle 1 s, S 3 s.\n";

int Serve(int lfd, const bench::Endpoint&) {
  bench::EchoStats stats = bench::RunEchoServer(lfd);
  bench::Json().Add("role", "server").Add("accepted", stats.accepted).Print();
  return 0;
}

std::vector<int> OpenAll(const bench::Endpoint& ep, long conns) {
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(conns));
  for (long i = 0; i < conns; ++i) {
    int fd = bench::ConnectTo(ep);
    if (fd < 0) bench::Die("connect #" + std::to_string(i));
    char ping = 'i';
    if (!bench::WriteFull(fd, &ping, 1) || !bench::ReadFull(fd, &ping, 1)) {
      bench::Die("ping #" + std::to_string(i));
    }
    fds.push_back(fd);
  }
  return fds;
}

// Blocks in epoll_wait on every connection until `stop` is signalled. An
// event on a connection (the peer went away) is counted and the fd dropped.
long Hold(const std::vector<int>& fds, int stop) {
  int ep = epoll_create1(0);
  if (ep < 0) bench::Die("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  for (int fd : fds) {
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) bench::Die("epoll_ctl");
  }
  ev.data.fd = stop;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, stop, &ev) != 0) bench::Die("epoll_ctl");
  long unexpected = 0;
  epoll_event events[64];
  for (bool done = false; !done;) {
    int n = epoll_wait(ep, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == stop) {
        done = true;
      } else {
        epoll_ctl(ep, EPOLL_CTL_DEL, events[i].data.fd, nullptr);
        ++unexpected;
      }
    }
  }
  close(ep);
  return unexpected;
}

struct Sample {
  double t;
  long self_ticks;
  long server_ticks;
};

Sample Take(pid_t server) {
  return {bench::NowSec(), bench::CpuTicks(getpid()),
          server > 0 ? bench::CpuTicks(server) : -1};
}

double CpuPct(long ticks0, long ticks1, double seconds) {
  if (ticks0 < 0 || ticks1 < 0) return -1;
  double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return 100.0 * static_cast<double>(ticks1 - ticks0) / hz / seconds;
}

void AddMemory(bench::Json* json, const char* who, pid_t pid) {
  std::string prefix = who;
  json->Add(prefix + "_rss_kb", bench::ProcKb(pid, "status", "VmRSS:"));
  json->Add(prefix + "_pss_kb", bench::ProcKb(pid, "smaps_rollup", "Pss:"));
}

int Measure(const bench::Endpoint& ep, pid_t server, long conns, double settle,
            double seconds) {
  double t_open = bench::NowSec();
  std::vector<int> fds = OpenAll(ep, conns);
  double setup_s = bench::NowSec() - t_open;
  int stop = eventfd(0, 0);
  if (stop < 0) bench::Die("eventfd");
  long unexpected = 0;
  std::thread holder([&] { unexpected = Hold(fds, stop); });
  usleep(static_cast<useconds_t>(settle * 1e6));
  Sample s0 = Take(server);
  usleep(static_cast<useconds_t>(seconds * 1e6));
  Sample s1 = Take(server);
  bench::Json json;
  json.Add("bench", "idle")
      .Add("transport", ep.Transport())
      .Add("conns", conns);
  json.Add("setup_s", setup_s).Add("seconds", s1.t - s0.t);
  json.Add("client_cpu_pct", CpuPct(s0.self_ticks, s1.self_ticks, s1.t - s0.t));
  json.Add("server_cpu_pct",
           CpuPct(s0.server_ticks, s1.server_ticks, s1.t - s0.t));
  AddMemory(&json, "client", getpid());
  if (server > 0) AddMemory(&json, "server", server);
  uint64_t one = 1;
  if (write(stop, &one, sizeof(one)) != sizeof(one)) bench::Die("eventfd");
  holder.join();
  for (int fd : fds) close(fd);
  if (!bench::SendQuit(ep)) std::perror("quit request");
  json.Add("unexpected_events", unexpected).Print();
  return unexpected == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv, {"server", "client", "help"});
  if (flags.Has("help")) bench::Usage(kHelp);
  long conns = flags.Int("conns", 1000);
  // The server does not know K: both ends ask for plenty.
  bench::RaiseFdLimit(
      std::max<rlim_t>(static_cast<rlim_t>(conns) * 2 + 256, 65536));
  double settle = flags.Num("settle", 1.0);
  double seconds = flags.Num("seconds", 3.0);
  if (conns < 1 || seconds <= 0) bench::Usage(kHelp);
  return bench::RunRoles(flags, Serve,
                         [&](const bench::Endpoint& ep, pid_t server) {
                           return Measure(ep, server, conns, settle, seconds);
                         });
}
