// Two processes on 127.0.0.1 (and 127.0.0.2 for a second link) talk through
// the libfabric tcp provider: real endpoints, real RMA writes with remote CQ
// data, real LLC flows. The child is the server (it exposes the ring); the
// parent is the client and runs the checks. The child reports by exit code.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "link/fabric/link_group.h"
#include "util/sys.h"

namespace usmc::fabric {
namespace {

constexpr size_t kRing = 8 << 20;
constexpr size_t kChunk = 64 << 10;

uint8_t Pattern(uint64_t pos) {
  return static_cast<uint8_t>((pos * 2654435761u) >> 13);
}

struct Recorder : GroupHandler {
  std::vector<uint64_t> remote_data;
  uint64_t max_data = 0;
  std::vector<CdcMsg> cdcs;
  uint64_t completed = 0;
  uint64_t completed_bytes = 0;
  uint64_t cons_hint = 0;  // bytes the peer consumed (for OnReissue)
  bool group_down = false;
  void OnWriteComplete(const WriteRequest& w) override {
    ++completed;
    completed_bytes += w.len;
  }
  void OnRemoteData(uint8_t, uint64_t d) override {
    remote_data.push_back(d);
    max_data = std::max(max_data, d);
  }
  void OnCdc(uint8_t, const CdcMsg& m) override { cdcs.push_back(m); }
  size_t OnReissue(const WriteRequest& w) override {
    return w.remote_offset + w.len <= cons_hint ? w.len : 0;
  }
  void OnGroupDown(uint32_t) override { group_down = true; }
};

void* Map(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

GroupOptions Options(Role role, bool two_links) {
  GroupOptions o;
  o.role = role;
  o.local_addrs = {"127.0.0.1", two_links ? "127.0.0.2" : ""};
  o.provider = "tcp";
  o.keepalive_ms = 2000;
  o.readd_ms = 100;
  return o;
}

bool PollUntil(LinkGroup& g, const std::function<bool()>& done, int ms,
               bool sleep = false) {
  const uint64_t end = sys::NowNs() + uint64_t(ms) * 1000000;
  while (!done()) {
    if (sys::NowNs() > end) return false;
    if (sleep) {
      g.Wait(5);
    } else {
      g.Poll();
    }
  }
  return true;
}

// True once the other process closed its end of the socket pair.
bool PeerGone(int fd) {
  char c;
  return sys::Recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

// Forks a server child that runs `body` on an established group and exits
// with its result; returns the child's pid. `fd` is the parent's end.
using ServerBody = std::function<int(LinkGroup&, Recorder&, uint8_t*, int)>;

// The server's ring is the first kRing - kGuard bytes of its mapping; the
// rest is a guard area that no write may touch.
constexpr size_t kGuard = 4096;
constexpr uint8_t kGuardByte = 0xEE;

bool GuardIntact(const uint8_t* ring) {
  for (size_t i = kRing - kGuard; i < kRing; ++i) {
    if (ring[i] != kGuardByte) return false;
  }
  return true;
}

pid_t ForkServer(bool two_links, int* fd, const ServerBody& body,
                 uint32_t keepalive_ms = 2000) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  const pid_t pid = fork();
  if (pid != 0) {
    close(sv[1]);
    *fd = sv[0];
    return pid;
  }
  close(sv[0]);
  Recorder rec;
  std::string err;
  GroupOptions opt = Options(Role::kServer, two_links);
  opt.keepalive_ms = keepalive_ms;
  auto g = LinkGroup::Create(opt, &rec, &err);
  auto* ring = static_cast<uint8_t*>(Map(kRing));
  if (ring != nullptr) std::memset(ring + kRing - kGuard, kGuardByte, kGuard);
  uint32_t id = 0;
  if (!g || ring == nullptr ||
      g->RegisterRegion(ring, kRing - kGuard, true, &id) != 0 ||
      !g->EstablishOverFd(sv[1], 5000, &err)) {
    fprintf(stderr, "server: %s\n", err.c_str());
    _exit(90);
  }
  _exit(body(*g, rec, ring, sv[1]));
}

int Reap(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class FabricLoopback : public ::testing::Test {
 protected:
  void SetUp() override { setenv("USMC_FABRIC_ALLOW_TCP", "1", 1); }

  // Client side: a group with a source buffer and a small ring of its own.
  bool Connect(bool two_links, int fd, uint32_t keepalive_ms = 2000) {
    std::string err;
    GroupOptions opt = Options(Role::kClient, two_links);
    opt.keepalive_ms = keepalive_ms;
    group_ = LinkGroup::Create(opt, &rec_, &err);
    src_ = static_cast<uint8_t*>(Map(kRing));
    own_ = static_cast<uint8_t*>(Map(kChunk));
    uint32_t own_id = 0;
    if (src_ != nullptr) {
      for (size_t i = 0; i < kRing; ++i) src_[i] = Pattern(i);
    }
    if (!group_ || src_ == nullptr || own_ == nullptr ||
        group_->RegisterRegion(src_, kRing, false, &src_id_) != 0 ||
        group_->RegisterRegion(own_, kChunk, true, &own_id) != 0 ||
        !group_->EstablishOverFd(fd, 5000, &err)) {
      ADD_FAILURE() << "client: " << err;
      return false;
    }
    return true;
  }

  int Write(uint64_t off, size_t len, uint64_t data) {
    WriteRequest w;
    w.local = src_ + off;
    w.len = len;
    w.local_region = src_id_;
    w.remote_region = 0;
    w.remote_offset = off;
    w.cq_data = data;
    w.cookie = off;
    int rc;
    while ((rc = group_->Write(w)) == -EAGAIN) group_->Poll();
    return rc;
  }

  Recorder rec_;
  std::unique_ptr<LinkGroup> group_;
  uint8_t* src_ = nullptr;
  uint8_t* own_ = nullptr;
  uint32_t src_id_ = 0;
};

// The server checks every byte up to the last cursor, then reports it in a
// CDC and stays until the client hangs up.
int VerifyAndAck(LinkGroup& g, Recorder& rec, uint8_t* ring, int fd,
                 uint64_t total) {
  if (!PollUntil(
          g,
          [&] {
            return !rec.remote_data.empty() && rec.remote_data.back() == total;
          },
          10000, true)) {
    return 10;
  }
  for (uint64_t i = 0; i < total; ++i) {
    if (ring[i] != Pattern(i)) return 11;
  }
  if (ring[total] != 0 || !GuardIntact(ring)) return 12;
  CdcMsg m;
  m.cons_count = static_cast<uint32_t>(total);
  if (g.SendCdc(m) != 0) return 13;
  PollUntil(
      g, [&] { return PeerGone(fd); }, 10000);
  return 0;
}

TEST_F(FabricLoopback, WritesWithCqDataAndCdc) {
  int fd = -1;
  const uint64_t total = 3 * 4096 + 64;
  const pid_t pid = ForkServer(
      false, &fd, [&](LinkGroup& g, Recorder& r, uint8_t* ring, int sfd) {
        return VerifyAndAck(g, r, ring, sfd, total);
      });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Connect(false, fd));
  EXPECT_EQ(group_->provider(), "tcp");
  EXPECT_EQ(group_->ActiveLinks(), 1);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Write(i * 4096, 4096, i + 1), 0);
  ASSERT_EQ(Write(3 * 4096, 64, total), 0);  // below inject_size
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return rec_.cdcs.size() == 1; }, 10000));
  EXPECT_EQ(rec_.completed, 4u);
  ASSERT_EQ(rec_.cdcs.size(), 1u);
  EXPECT_EQ(rec_.cdcs[0].cons_count, total);
  EXPECT_EQ(group_->counters().writes, 4u);
  EXPECT_EQ(group_->counters().write_bytes, total);
  EXPECT_EQ(group_->counters().link_failures, 0u);
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

TEST_F(FabricLoopback, RefusesWritesOutsideRegions) {
  int fd = -1;
  const pid_t pid = ForkServer(
      false, &fd, [&](LinkGroup& g, Recorder& r, uint8_t* ring, int sfd) {
        return VerifyAndAck(g, r, ring, sfd, 4096);
      });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Connect(false, fd));
  WriteRequest w;
  w.local = src_;
  w.len = 4096;
  w.local_region = src_id_;
  w.remote_offset = kRing - kGuard - 100;  // runs past the peer's ring
  EXPECT_EQ(group_->Write(w), -EINVAL);
  w.remote_offset = UINT64_MAX - 10;  // wraps
  EXPECT_EQ(group_->Write(w), -EINVAL);
  w.remote_offset = 0;
  w.remote_region = 77;  // never announced
  EXPECT_EQ(group_->Write(w), -EINVAL);
  w.remote_region = 0;
  w.local = src_ + kRing - 10;  // source outside its region
  EXPECT_EQ(group_->Write(w), -EINVAL);
  EXPECT_EQ(group_->counters().bounds_rejects, 4u);
  ASSERT_EQ(Write(0, 4096, 4096), 0);
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return rec_.cdcs.size() == 1; }, 10000));
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

// Operator deletes the link that carries the stream while 64 KiB writes are
// in flight: the writes go again on the other link, the server sees every
// byte, both sides count one failover, and the server re-adds the link.
TEST_F(FabricLoopback, FailoverReissuesAndReaddsLink) {
  int fd = -1;
  const uint64_t total = kRing - kGuard;
  const pid_t pid = ForkServer(
      true, &fd, [&](LinkGroup& g, Recorder& r, uint8_t* ring, int sfd) {
        if (!PollUntil(
                g, [&] { return r.max_data == total; }, 20000))
          return 20;
        for (uint64_t i = 0; i < total; ++i) {
          if (ring[i] != Pattern(i)) return 21;
        }
        if (!GuardIntact(ring)) return 22;
        CdcMsg m;
        m.cons_count = static_cast<uint32_t>(total);
        if (g.SendCdc(m) != 0) return 23;
        if (!PollUntil(
                g, [&] { return g.ActiveLinks() == 2; }, 10000))
          return 24;
        if (g.counters().failovers != 1 || g.counters().link_failures != 1) {
          return 25;
        }
        PollUntil(
            g, [&] { return PeerGone(sfd); }, 10000);
        return 0;
      });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Connect(true, fd));
  ASSERT_TRUE(PollUntil(
      *group_, [&] { return group_->ActiveLinks() == 2; }, 5000));
  const int first = group_->primary();
  uint64_t posted = 0;
  for (uint64_t off = 0; off < total; off += kChunk) {
    const size_t len = std::min<uint64_t>(kChunk, total - off);
    ASSERT_EQ(Write(off, len, off + len), 0);
    ++posted;
    if (posted == total / kChunk / 2) group_->DeleteLink(first);
  }
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return rec_.completed == posted; }, 20000));
  EXPECT_EQ(rec_.completed_bytes, total);
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return rec_.cdcs.size() == 1; }, 10000));
  EXPECT_NE(group_->primary(), first);
  const GroupCounters& c = group_->counters();
  EXPECT_EQ(c.failovers, 1u);
  EXPECT_EQ(c.link_failures, 1u);
  printf("in flight at delete: %lu writes re-issued (%lu bytes)\n",
         static_cast<unsigned long>(c.reissued_writes),
         static_cast<unsigned long>(c.reissued_bytes));
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return group_->ActiveLinks() == 2; }, 10000));
  EXPECT_EQ(c.links_added, 3u);
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

// A peer that stops answering (it stops driving its endpoint) is declared
// dead after keepalive + probe wait; with no other link the group is down.
TEST_F(FabricLoopback, SilentPeerIsDetected) {
  int fd = -1;
  const pid_t pid =
      ForkServer(false, &fd, [&](LinkGroup&, Recorder&, uint8_t*, int sfd) {
        for (int i = 0; i < 300 && !PeerGone(sfd); ++i) usleep(10000);
        return 0;
      });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Connect(false, fd, 100));
  const uint64_t t0 = sys::NowNs();
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return rec_.group_down; }, 3000, true));
  const double ms = (sys::NowNs() - t0) / 1e6;
  printf("silent peer detected after %.1f ms (keepalive 100 + probe 100)\n",
         ms);
  EXPECT_GE(ms, 100.0);
  EXPECT_LE(ms, 1000.0);
  EXPECT_EQ(group_->counters().link_failures, 1u);
  EXPECT_EQ(group_->Write(WriteRequest{}), -ECONNABORTED);
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

// The client has one interface, the server two: the client declines the
// second link (NO_ASYM) and the server stops offering it.
TEST_F(FabricLoopback, AsymmetricGroupStopsAddingLinks) {
  int fd = -1;
  const pid_t pid =
      ForkServer(true, &fd, [&](LinkGroup& g, Recorder&, uint8_t*, int sfd) {
        const uint64_t end = sys::NowNs() + 1000000000ull;
        PollUntil(
            g, [&] { return sys::NowNs() > end; }, 2000);
        if (g.ActiveLinks() != 1 || g.counters().add_failures != 1) return 40;
        PollUntil(
            g, [&] { return PeerGone(sfd); }, 10000);
        return 0;
      });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Connect(false, fd));
  const uint64_t end = sys::NowNs() + 1200000000ull;
  PollUntil(
      *group_, [&] { return sys::NowNs() > end; }, 2000);
  EXPECT_EQ(group_->ActiveLinks(), 1);
  EXPECT_EQ(group_->counters().link_failures, 0u);
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

// A region registered while both links are up is registered on both and
// announced on both; the peer can write into it through either link.
TEST_F(FabricLoopback, LateRegionReachableOnEveryLink) {
  int fd = -1;
  const pid_t pid =
      ForkServer(true, &fd, [&](LinkGroup& g, Recorder& r, uint8_t*, int sfd) {
        if (!PollUntil(
                g, [&] { return g.ActiveLinks() == 2; }, 5000))
          return 50;
        auto* extra = static_cast<uint8_t*>(Map(kChunk));
        uint32_t id = 0;
        if (g.RegisterRegion(extra, kChunk, true, &id) != 0 || id != 1)
          return 51;
        if (!PollUntil(
                g, [&] { return g.RegionConfirmed(id); }, 5000))
          return 52;
        if (!PollUntil(
                g, [&] { return r.remote_data.size() == 2; }, 5000)) {
          return 53;
        }
        for (size_t i = 0; i < 2 * 4096; ++i) {
          if (extra[i] != Pattern(i)) return 54;
        }
        PollUntil(
            g, [&] { return PeerGone(sfd); }, 10000);
        return 0;
      });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Connect(true, fd));
  ASSERT_TRUE(PollUntil(
      *group_,
      [&] {
        return group_->PeerRegionOnLink(1, 0) && group_->PeerRegionOnLink(1, 1);
      },
      5000));
  for (int link = 0; link < 2; ++link) {
    WriteRequest w;
    w.local = src_ + link * 4096;
    w.len = 4096;
    w.local_region = src_id_;
    w.remote_region = 1;
    w.remote_offset = link * 4096;
    w.link_hint = link;
    ASSERT_EQ(group_->Write(w), 0);
  }
  EXPECT_TRUE(PollUntil(
      *group_, [&] { return rec_.completed == 2; }, 5000));
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

}  // namespace
}  // namespace usmc::fabric
