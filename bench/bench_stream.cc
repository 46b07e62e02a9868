// bench_stream: one-way bulk transfer with fixed-size writes (64 KiB) for a
// duration or a byte count. The receiver counts (and with --verify checks)
// every byte and answers the count; the sender reports MB/s (10^6 B/s) as one
// JSON line, from its first write until the receiver's count arrived.
#include <cstdint>
#include <vector>

#include "bench_common.h"

namespace {

constexpr char kHelp[] =
    "usage: bench_stream [--server | --client] [--tcp PORT | --unix PATH]\n"
    "         [--host IP] [--duration SEC | --bytes N] [--chunk BYTES]\n"
    "         [--verify]\n"
    "  --server: receive from one client, print READY <port> <pid>\n"
    "  --client: send; neither: fork both. Defaults: 2 s, 65536-byte writes.\n"
    "  --verify: the data carries a pattern that the receiver checks\n";

constexpr size_t kPatternPeriod = 251;  // prime, so chunks do not line up

struct Hello {
  uint32_t chunk;
  uint32_t verify;
};

// Byte i of the stream is i % kPatternPeriod; a window at stream offset `off`
// starts at pattern[off % kPatternPeriod].
std::vector<unsigned char> MakePattern(size_t chunk) {
  std::vector<unsigned char> p(chunk + kPatternPeriod);
  for (size_t i = 0; i < p.size(); ++i) p[i] = i % kPatternPeriod;
  return p;
}

int Receive(int lfd, const bench::Endpoint&) {
  int fd = bench::AcceptOne(lfd);
  close(lfd);
  Hello hello{};
  if (!bench::ReadFull(fd, &hello, sizeof(hello)) || hello.chunk == 0) return 1;
  std::vector<unsigned char> buf(hello.chunk);
  std::vector<unsigned char> pattern = MakePattern(hello.chunk);
  uint64_t total = 0;
  bool intact = true;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) bench::Die("read");
    if (n == 0) break;
    if (hello.verify && intact) {
      const unsigned char* want = &pattern[total % kPatternPeriod];
      intact = std::memcmp(buf.data(), want, static_cast<size_t>(n)) == 0;
    }
    total += static_cast<uint64_t>(n);
  }
  bool ok = bench::WriteFull(fd, &total, sizeof(total));
  close(fd);
  bench::Json()
      .Add("role", "receiver")
      .Add("bytes", static_cast<long>(total))
      .AddBool("intact", intact)
      .Print();
  return ok && intact ? 0 : 1;
}

struct Options {
  double duration;
  uint64_t bytes;  // 0: send for `duration`
  size_t chunk;
  bool verify;
};

uint64_t SendAll(int fd, const Options& opt, double start) {
  std::vector<unsigned char> pattern = MakePattern(opt.chunk);
  uint64_t sent = 0;
  double deadline = start + opt.duration;
  for (;;) {
    size_t n = opt.chunk;
    if (opt.bytes) {
      if (sent >= opt.bytes) break;
      if (opt.bytes - sent < n) n = opt.bytes - sent;
    } else if (bench::NowSec() >= deadline) {
      break;
    }
    const unsigned char* p =
        opt.verify ? &pattern[sent % kPatternPeriod] : pattern.data();
    if (!bench::WriteFull(fd, p, n)) bench::Die("write");
    sent += n;
  }
  return sent;
}

int Send(const bench::Endpoint& ep, const Options& opt) {
  int fd = bench::ConnectTo(ep);
  if (fd < 0) bench::Die("connect");
  Hello hello{static_cast<uint32_t>(opt.chunk), opt.verify ? 1u : 0u};
  if (!bench::WriteFull(fd, &hello, sizeof(hello))) bench::Die("write");
  double start = bench::NowSec();
  uint64_t sent = SendAll(fd, opt, start);
  if (shutdown(fd, SHUT_WR) != 0) bench::Die("shutdown");
  uint64_t received = 0;
  if (!bench::ReadFull(fd, &received, sizeof(received))) {
    bench::Die("reading the receiver's count");
  }
  double seconds = bench::NowSec() - start;
  close(fd);
  bool verified = received == sent;
  bench::Json()
      .Add("bench", "stream")
      .Add("transport", ep.Transport())
      .Add("chunk", static_cast<long>(opt.chunk))
      .Add("bytes", static_cast<long>(sent))
      .Add("received", static_cast<long>(received))
      .Add("seconds", seconds)
      .Add("mbps", static_cast<double>(sent) / seconds / 1e6)
      .AddBool("verified", verified)
      .Print();
  if (!verified) std::fprintf(stderr, "byte count mismatch\n");
  return verified ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv, {"server", "client", "verify", "help"});
  if (flags.Has("help")) bench::Usage(kHelp);
  Options opt{
      flags.Num("duration", 2.0), static_cast<uint64_t>(flags.Num("bytes", 0)),
      static_cast<size_t>(flags.Int("chunk", 65536)), flags.Has("verify")};
  if (opt.chunk == 0) bench::Usage(kHelp);
  return bench::RunRoles(flags, Receive, [&](const bench::Endpoint& ep, pid_t) {
    return Send(ep, opt);
  });
}
