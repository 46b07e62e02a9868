// fabric_stream: one byte stream over a usmc fabric LinkGroup, the way an
// SMC-R connection uses it. The receiver (server role) exposes a ring; the
// sender (client role) copies a position-dependent pattern into its send
// ring and RMA-writes it to the same offsets of the receiver's ring, with
// the new producer position as remote CQ data. The receiver checks every
// byte against the pattern (so a lost, duplicated or reordered byte shows),
// and returns its consumer position in CDC messages. Send space is freed
// only on write completion; after a failover the sender trims re-issued
// writes to what the receiver has not consumed yet.
//
// Output: PROGRESS / LINK_UP / LINK_DOWN / RESULT lines on stdout.
// Usage: fabric_stream --role send|recv --local IP[,IP] --oob IP:PORT
//          [--bytes N] [--ring N] [--chunk N] [--rate MBPS] [--wait busy|fd]
//          [--keepalive MS] [--expect-links N] [--links-timeout S]
// Both sides must be given the same --bytes and --ring.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "link/fabric/link_group.h"
#include "stream_common.h"

namespace usmc::fabric::tools {
namespace {

class Stream : public GroupHandler {
 public:
  explicit Stream(const Args& a) : a_(a) {}

  bool Setup();
  int Run() { return a_.role == Role::kServer ? Receive() : Send(); }

 private:
  // GroupHandler
  void OnWriteComplete(const WriteRequest& w) override;
  void OnRemoteData(uint8_t, uint64_t d) override;
  void OnCdc(uint8_t, const CdcMsg& m) override;
  size_t OnReissue(const WriteRequest& w) override;
  void OnLinkUp(uint8_t i) override {
    printf("LINK_UP link=%u realtime_ns=%llu active=%d\n", i,
           static_cast<unsigned long long>(RealtimeNs()),
           group_ ? group_->ActiveLinks() : 0);
    fflush(stdout);
  }
  void OnLinkDown(uint8_t i, uint32_t reason) override {
    printf("LINK_DOWN link=%u reason=0x%x realtime_ns=%llu\n", i, reason,
           static_cast<unsigned long long>(RealtimeNs()));
    fflush(stdout);
  }
  void OnGroupDown(uint32_t reason) override {
    fprintf(stderr, "fabric_stream: link group down (0x%x)\n", reason);
    failed_ = true;
  }

  int Receive();
  int Send();
  void Pump(int max_ms);
  bool WaitLinks(int want, int timeout_s);
  void Consume();
  bool SendConsumer(uint8_t conn_flags);
  bool Produce();
  void Report(const char* role);

  Args a_;
  std::unique_ptr<LinkGroup> group_;
  uint8_t* ring_ = nullptr;   // receiver: RMB; sender: send ring
  uint8_t* small_ = nullptr;  // sender: the RMB it must offer (unused)
  uint32_t ring_id_ = 0;
  bool failed_ = false;
  bool closed_ = false;  // receiver: sender said it is done
  // receiver
  uint64_t prod_ = 0;
  uint64_t cons_ = 0;
  uint64_t cons_sent_ = 0;
  uint64_t mismatches_ = 0;
  // sender
  uint64_t sent_ = 0;
  uint64_t peer_cons_ = 0;
  std::map<uint64_t, uint64_t> outstanding_;  // start -> end
  uint64_t started_ns_ = 0;
  uint64_t next_progress_ = 0;
  Checksum sum_;
  std::vector<uint8_t> scratch_;
};

bool Stream::Setup() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  GroupOptions o;
  o.role = a_.role;
  o.local_addrs = a_.local;
  o.wait_fd = a_.wait_fd;
  o.keepalive_ms = a_.keepalive_ms;
  std::string err;
  group_ = LinkGroup::Create(o, this, &err);
  ring_ = static_cast<uint8_t*>(MapOrDie(a_.ring));
  const bool recv = a_.role == Role::kServer;
  if (!group_ || group_->RegisterRegion(ring_, a_.ring, recv, &ring_id_) != 0) {
    fprintf(stderr, "fabric_stream: setup: %s\n", err.c_str());
    return false;
  }
  if (!recv) {
    small_ = static_cast<uint8_t*>(MapOrDie(4096));
    uint32_t id;
    if (group_->RegisterRegion(small_, 4096, true, &id) != 0) return false;
  }
  const int fd = recv ? AcceptOob(a_.oob) : ConnectOob(a_.oob);
  if (fd < 0 || !group_->EstablishOverFd(fd, 10000, &err)) {
    fprintf(stderr, "fabric_stream: establish: %s\n", err.c_str());
    return false;
  }
  close(fd);
  scratch_.resize(a_.chunk);
  return true;
}

void Stream::Pump(int max_ms) {
  if (a_.wait_fd) {
    group_->Wait(max_ms);
  } else {
    group_->Poll();
  }
}

bool Stream::WaitLinks(int want, int timeout_s) {
  const uint64_t end = NowNs() + uint64_t(timeout_s) * 1000000000ull;
  while (group_->ActiveLinks() < want && !failed_ && NowNs() < end) Pump(10);
  return group_->ActiveLinks() >= want;
}

// ---- receiver ----

void Stream::OnRemoteData(uint8_t, uint64_t d) {
  // Re-issued writes after a failover repeat older positions: keep the max.
  if (d <= prod_) return;
  if (d > cons_ + a_.ring || d > a_.bytes) {
    fprintf(stderr, "fabric_stream: bad producer position %llu\n",
            static_cast<unsigned long long>(d));
    failed_ = true;
    return;
  }
  prod_ = d;
}

void Stream::Consume() {
  while (cons_ < prod_) {
    const uint64_t off = cons_ % a_.ring;
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>({prod_ - cons_, a_.ring - off, a_.chunk}));
    FillPattern(scratch_.data(), cons_, n);
    if (std::memcmp(scratch_.data(), ring_ + off, n) != 0) {
      for (size_t i = 0; i < n; ++i) {
        if (scratch_[i] != ring_[off + i] && mismatches_++ == 0) {
          fprintf(stderr, "fabric_stream: first mismatch at byte %llu\n",
                  static_cast<unsigned long long>(cons_ + i));
        }
      }
    }
    sum_.Add(ring_ + off, n);
    cons_ += n;
  }
}

bool Stream::SendConsumer(uint8_t conn_flags) {
  CdcMsg m;
  m.cons_wrap = static_cast<uint16_t>(cons_ / a_.ring);
  m.cons_count = static_cast<uint32_t>(cons_ % a_.ring);
  m.conn_flags = conn_flags;
  if (group_->SendCdc(m) != 0) return false;
  cons_sent_ = cons_;
  return true;
}

int Stream::Receive() {
  while (!failed_ && !closed_) {
    Pump(5);
    Consume();
    const bool update = cons_ - cons_sent_ >= a_.ring / 8 ||
                        (cons_ == prod_ && cons_ != cons_sent_);
    if (update) SendConsumer(0);
  }
  Report("recv");
  const int rc = failed_ || mismatches_ != 0 || cons_ != a_.bytes ? 1 : 0;
  // The sender leaves first; its links closing is not a failure any more.
  const uint64_t end = NowNs() + 2000000000ull;
  while (!failed_ && NowNs() < end) Pump(5);
  return rc;
}

// ---- sender ----

void Stream::OnCdc(uint8_t, const CdcMsg& m) {
  if (a_.role == Role::kServer) {
    if (m.conn_flags & kCdcFlagClosed) closed_ = true;
    return;
  }
  const uint64_t pos = Unwrap(peer_cons_, m.cons_wrap, m.cons_count, a_.ring);
  if (pos > sent_) {
    fprintf(stderr, "fabric_stream: consumer ahead of producer\n");
    failed_ = true;
    return;
  }
  peer_cons_ = std::max(peer_cons_, pos);
}

void Stream::OnWriteComplete(const WriteRequest& w) {
  outstanding_.erase(w.cookie);
}

size_t Stream::OnReissue(const WriteRequest& w) {
  const uint64_t start = w.cq_data - w.len;
  if (peer_cons_ <= start) return 0;
  return static_cast<size_t>(std::min<uint64_t>(peer_cons_ - start, w.len));
}

bool Stream::Produce() {
  const uint64_t fin =
      outstanding_.empty() ? sent_ : outstanding_.begin()->first;
  uint64_t limit = std::min(fin, peer_cons_) + a_.ring;
  if (a_.rate_mbps > 0) {
    const double s = (NowNs() - started_ns_) / 1e9;
    const uint64_t paced = a_.chunk + uint64_t(s * a_.rate_mbps * 1e6);
    limit = std::min<uint64_t>(limit, paced & ~uint64_t{7});
  }
  limit = std::min(limit, a_.bytes);
  if (sent_ >= limit) return false;
  // Whole chunks only (but for the tail and the ring's end): small writes
  // would only measure per-write overhead.
  if (limit - sent_ < a_.chunk && limit != a_.bytes &&
      a_.ring - sent_ % a_.ring >= a_.chunk) {
    return false;
  }
  const uint64_t off = sent_ % a_.ring;
  const size_t n = static_cast<size_t>(
      std::min<uint64_t>({limit - sent_, a_.ring - off, a_.chunk}));
  FillPattern(ring_ + off, sent_, n);
  WriteRequest w;
  w.local = ring_ + off;
  w.len = n;
  w.local_region = ring_id_;
  w.remote_region = 0;
  w.remote_offset = off;
  w.cq_data = sent_ + n;
  w.cookie = sent_;
  if (group_->Write(w) != 0) return false;
  sum_.Add(ring_ + off, n);
  outstanding_[sent_] = sent_ + n;
  sent_ += n;
  return true;
}

int Stream::Send() {
  if (!WaitLinks(a_.expect_links, a_.links_timeout_s)) {
    fprintf(stderr, "fabric_stream: only %d links came up\n",
            group_->ActiveLinks());
  }
  started_ns_ = NowNs();
  next_progress_ = a_.bytes / 16;
  while (!failed_ && (peer_cons_ < a_.bytes || !outstanding_.empty())) {
    bool any = false;
    while (!failed_ && Produce()) any = true;
    if (sent_ >= next_progress_) {
      printf("PROGRESS bytes=%llu\n", static_cast<unsigned long long>(sent_));
      next_progress_ += a_.bytes / 16;
    }
    if (!any || a_.wait_fd) Pump(a_.rate_mbps > 0 ? 1 : 5);
  }
  const double secs = (NowNs() - started_ns_) / 1e9;
  printf("THROUGHPUT bytes=%llu seconds=%.3f mbps=%.1f\n",
         static_cast<unsigned long long>(sent_), secs, sent_ / secs / 1e6);
  const bool links_ok = WaitLinks(a_.expect_links, a_.links_timeout_s);
  CdcMsg bye;
  bye.conn_flags = kCdcFlagClosed;
  const uint64_t end = NowNs() + 2000000000ull;
  while (!failed_ && group_->SendCdc(bye) != 0 && NowNs() < end) Pump(5);
  const uint64_t linger = NowNs() + 50000000ull;
  while (!failed_ && NowNs() < linger) Pump(5);
  Report("send");
  return failed_ || !links_ok || peer_cons_ != a_.bytes ? 1 : 0;
}

void Stream::Report(const char* role) {
  const GroupCounters& c = group_->counters();
  printf(
      "RESULT role=%s bytes=%llu checksum=%016llx mismatches=%llu "
      "links=%d failovers=%llu link_failures=%llu links_added=%llu "
      "add_failures=%llu reissued_writes=%llu reissued_bytes=%llu "
      "writes=%llu remote_data=%llu keepalives=%llu protocol_errors=%llu\n",
      role,
      static_cast<unsigned long long>(role[0] == 'r' ? cons_ : peer_cons_),
      static_cast<unsigned long long>(sum_.value()),
      static_cast<unsigned long long>(mismatches_), group_->ActiveLinks(),
      static_cast<unsigned long long>(c.failovers),
      static_cast<unsigned long long>(c.link_failures),
      static_cast<unsigned long long>(c.links_added),
      static_cast<unsigned long long>(c.add_failures),
      static_cast<unsigned long long>(c.reissued_writes),
      static_cast<unsigned long long>(c.reissued_bytes),
      static_cast<unsigned long long>(c.writes),
      static_cast<unsigned long long>(c.remote_data),
      static_cast<unsigned long long>(c.keepalives_sent),
      static_cast<unsigned long long>(c.protocol_errors));
}

}  // namespace
}  // namespace usmc::fabric::tools

int main(int argc, char** argv) {
  namespace tools = usmc::fabric::tools;
  tools::Args a;
  if (!tools::ParseArgs(argc, argv, &a)) return 2;
  tools::Stream s(a);
  if (!s.Setup()) return 1;
  return s.Run();
}
