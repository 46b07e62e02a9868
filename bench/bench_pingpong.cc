// bench_pingpong: N-byte request/response round trips over one connection,
// blocking I/O. The client times every round trip after a warm-up and prints
// median, p99 and mean RTT in microseconds as one JSON line.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "bench_common.h"

namespace {

constexpr char kHelp[] =
    "usage: bench_pingpong [--server | --client] [--tcp PORT | --unix PATH]\n"
    "         [--host IP] [--size BYTES] [--iters N] [--warmup N]\n"
    "         [--duration SEC]\n"
    "  --server: serve one client, print READY <port> <pid> once listening\n"
    "  --client: connect and measure; neither: fork both (port 0 = any)\n"
    "  the client measures --iters round trips or --duration seconds,\n"
    "  whichever ends first (defaults 100000 and 2.0; size 64; warmup 1000)\n";

// Sent once by the client so the server needs no size flag.
struct Hello {
  uint32_t size;
  uint32_t reserved;
};

int Serve(int lfd, const bench::Endpoint& ep) {
  int fd = bench::AcceptOne(lfd);
  close(lfd);
  bench::SetNoDelay(ep, fd);
  Hello hello{};
  if (!bench::ReadFull(fd, &hello, sizeof(hello))) return 1;
  std::vector<char> buf(hello.size);
  long rounds = 0;
  while (bench::ReadFull(fd, buf.data(), buf.size())) {
    if (!bench::WriteFull(fd, buf.data(), buf.size())) return 1;
    ++rounds;
  }
  close(fd);
  return rounds > 0 ? 0 : 1;
}

struct Options {
  size_t size;
  long iters;
  long warmup;
  double duration;
};

bool RoundTrip(int fd, std::vector<char>* buf) {
  return bench::WriteFull(fd, buf->data(), buf->size()) &&
         bench::ReadFull(fd, buf->data(), buf->size());
}

double Percentile(const std::vector<int64_t>& sorted, double p) {
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1));
  return static_cast<double>(sorted[i]) / 1000.0;
}

void Report(const bench::Endpoint& ep, const Options& opt,
            std::vector<int64_t> ns) {
  std::sort(ns.begin(), ns.end());
  double sum = std::accumulate(ns.begin(), ns.end(), 0.0);
  bench::Json()
      .Add("bench", "pingpong")
      .Add("transport", ep.Transport())
      .Add("size", static_cast<long>(opt.size))
      .Add("iters", static_cast<long>(ns.size()))
      .Add("median_us", Percentile(ns, 0.5))
      .Add("p99_us", Percentile(ns, 0.99))
      .Add("mean_us", sum / static_cast<double>(ns.size()) / 1000.0)
      .Add("min_us", Percentile(ns, 0.0))
      .Add("max_us", Percentile(ns, 1.0))
      .Print();
}

int Measure(const bench::Endpoint& ep, const Options& opt) {
  int fd = bench::ConnectTo(ep);
  if (fd < 0) bench::Die("connect");
  bench::SetNoDelay(ep, fd);
  Hello hello{static_cast<uint32_t>(opt.size), 0};
  if (!bench::WriteFull(fd, &hello, sizeof(hello))) bench::Die("write");
  std::vector<char> buf(opt.size, 'p');
  for (long i = 0; i < opt.warmup; ++i) {
    if (!RoundTrip(fd, &buf)) bench::Die("warm-up round trip");
  }
  std::vector<int64_t> ns;
  ns.reserve(static_cast<size_t>(opt.iters));
  int64_t deadline = bench::NowNs() + static_cast<int64_t>(opt.duration * 1e9);
  int64_t t0 = bench::NowNs();
  while (static_cast<long>(ns.size()) < opt.iters && t0 < deadline) {
    if (!RoundTrip(fd, &buf)) bench::Die("round trip");
    int64_t t1 = bench::NowNs();
    ns.push_back(t1 - t0);
    t0 = t1;
  }
  close(fd);
  Report(ep, opt, std::move(ns));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv, {"server", "client", "help"});
  if (flags.Has("help")) bench::Usage(kHelp);
  Options opt{static_cast<size_t>(flags.Int("size", 64)),
              flags.Int("iters", 100000), flags.Int("warmup", 1000),
              flags.Num("duration", 2.0)};
  if (opt.size == 0 || opt.iters <= 0) bench::Usage(kHelp);
  return bench::RunRoles(flags, Serve, [&](const bench::Endpoint& ep, pid_t) {
    return Measure(ep, opt);
  });
}
