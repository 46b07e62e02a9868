// fabric_perf: latency and bandwidth of the fabric link (one link).
//   --mode lat: ping-pong of --size byte RMA writes with remote CQ data;
//               prints the median and mean one-way latency (RTT / 2).
//   --mode bw:  --bytes of --size writes, --window in flight, into a ring of
//               window * size; prints MB/s (a write counts when completed,
//               i.e. delivered, since completions are delivery-complete).
// --wait busy polls the CQ; --wait fd sleeps on its fd (fi_trywait + poll).
// The server (--role recv) echoes in lat mode and just absorbs in bw mode.
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "link/fabric/link_group.h"
#include "stream_common.h"

namespace usmc::fabric::tools {
namespace {

class Perf : public GroupHandler {
 public:
  explicit Perf(const Args& a) : a_(a) {}

  bool Setup() {
    GroupOptions o;
    o.role = a_.role;
    o.local_addrs = a_.local;
    o.wait_fd = a_.wait_fd;
    o.keepalive_ms = 30000;
    std::string err;
    group_ = LinkGroup::Create(o, this, &err);
    ring_bytes_ = std::max<size_t>(4096, a_.size * a_.window);
    ring_ = static_cast<uint8_t*>(MapOrDie(ring_bytes_));
    if (!group_ || group_->RegisterRegion(ring_, ring_bytes_, true, &id_)) {
      fprintf(stderr, "fabric_perf: %s\n", err.c_str());
      return false;
    }
    const bool server = a_.role == Role::kServer;
    const int fd = server ? AcceptOob(a_.oob) : ConnectOob(a_.oob);
    if (fd < 0 || !group_->EstablishOverFd(fd, 10000, &err)) {
      fprintf(stderr, "fabric_perf: establish: %s\n", err.c_str());
      return false;
    }
    close(fd);
    return true;
  }

  int Run() {
    if (a_.role == Role::kServer) return Serve();
    const int rc = a_.mode == "bw" ? Bandwidth() : Latency();
    CdcMsg bye;
    bye.conn_flags = kCdcFlagClosed;
    while (group_->SendCdc(bye) != 0 && !down_) Pump();
    for (int i = 0; i < 20; ++i) Pump();
    return rc;
  }

 private:
  void OnWriteComplete(const WriteRequest&) override { ++completed_; }
  void OnRemoteData(uint8_t, uint64_t d) override {
    last_data_ = d;
    ++remote_;
    if (a_.role == Role::kServer && a_.mode == "lat") Post(d, 0);
  }
  void OnCdc(uint8_t, const CdcMsg& m) override {
    if (m.conn_flags & kCdcFlagClosed) closed_ = true;
  }
  void OnGroupDown(uint32_t) override { down_ = true; }

  // Busy polling yields after a run of empty polls: on a 2-vCPU machine the
  // kernel's network softirq work may be queued behind the spinning thread.
  void Pump() {
    if (a_.wait_fd) {
      group_->Wait(100);
    } else if (group_->Poll() == 0 && ++idle_ % 64 == 0) {
      sched_yield();
    }
  }

  bool Post(uint64_t data, uint64_t offset) {
    WriteRequest w;
    w.local = ring_ + offset;
    w.len = a_.size;
    w.local_region = id_;
    w.remote_region = 0;
    w.remote_offset = offset;
    w.cq_data = data;
    int rc;
    while ((rc = group_->Write(w)) == -EAGAIN && !down_) group_->Poll();
    if (rc == 0) ++posted_;
    return rc == 0;
  }

  int Serve() {
    while (!closed_ && !down_) Pump();
    printf("SERVER remote_data=%llu\n",
           static_cast<unsigned long long>(remote_));
    return down_ ? 1 : 0;
  }

  int Latency() {
    std::vector<double> us;
    const int warmup = std::min(1000, a_.iters / 10);
    for (int i = 1; i <= a_.iters + warmup && !down_; ++i) {
      const uint64_t t0 = NowNs();
      if (!Post(i, 0)) return 1;
      while (last_data_ != static_cast<uint64_t>(i) && !down_) Pump();
      if (i > warmup) us.push_back((NowNs() - t0) / 2000.0);
    }
    if (down_ || us.empty()) return 1;
    std::sort(us.begin(), us.end());
    double sum = 0;
    for (double v : us) sum += v;
    printf(
        "LAT size=%zu wait=%s iters=%zu one_way_median_us=%.2f "
        "mean_us=%.2f p99_us=%.2f\n",
        a_.size, a_.wait_fd ? "fd" : "busy", us.size(), us[us.size() / 2],
        sum / us.size(), us[us.size() * 99 / 100]);
    return 0;
  }

  int Bandwidth() {
    const uint64_t writes = a_.bytes / a_.size;
    const uint64_t t0 = NowNs();
    uint64_t next = 0;
    while (completed_ < writes && !down_) {
      while (next < writes && posted_ - completed_ < uint64_t(a_.window)) {
        if (!Post(next + 1, (next % a_.window) * a_.size)) return 1;
        ++next;
      }
      Pump();
    }
    const double s = (NowNs() - t0) / 1e9;
    printf(
        "BW size=%zu window=%d wait=%s bytes=%llu seconds=%.3f "
        "MBps=%.1f\n",
        a_.size, a_.window, a_.wait_fd ? "fd" : "busy",
        static_cast<unsigned long long>(writes * a_.size), s,
        writes * a_.size / s / 1e6);
    return down_ ? 1 : 0;
  }

  Args a_;
  std::unique_ptr<LinkGroup> group_;
  uint8_t* ring_ = nullptr;
  size_t ring_bytes_ = 0;
  uint32_t id_ = 0;
  uint64_t posted_ = 0;
  uint64_t completed_ = 0;
  uint64_t remote_ = 0;
  uint64_t last_data_ = 0;
  bool closed_ = false;
  bool down_ = false;
  unsigned idle_ = 0;
};

}  // namespace
}  // namespace usmc::fabric::tools

int main(int argc, char** argv) {
  namespace tools = usmc::fabric::tools;
  tools::Args a;
  a.expect_links = 1;
  if (!tools::ParseArgs(argc, argv, &a)) return 2;
  tools::Perf p(a);
  if (!p.Setup()) return 1;
  return p.Run();
}
