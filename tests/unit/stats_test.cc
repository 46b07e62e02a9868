// src/stats: formatting and argument parsing for `usmc ss`/`usmc stats`, and
// the arena read back through /proc by the same code the CLI uses.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "engine/arena.h"
#include "stats/format.h"
#include "stats/record.h"
#include "stats/snapshot.h"
#include "stats/summary.h"
#include "wire/cdc.h"

namespace usmc::stats {
namespace {

Endpoint V4(const char* addr, uint16_t port) {
  Endpoint e{};
  e.family = AF_INET;
  e.port = port;
  inet_pton(AF_INET, addr, e.addr);
  return e;
}

Endpoint V6(const char* addr, uint16_t port) {
  Endpoint e{};
  e.family = AF_INET6;
  e.port = port;
  inet_pton(AF_INET6, addr, e.addr);
  return e;
}

TEST(StatsFormatTest, Endpoints) {
  EXPECT_EQ(FormatEndpoint(V4("127.0.0.1", 6379)), "127.0.0.1:6379");
  EXPECT_EQ(FormatEndpoint(V6("::1", 80)), "[::1]:80");
  Endpoint scoped = V6("fe80::1", 22);
  scoped.scope_id = 2;
  EXPECT_EQ(FormatEndpoint(scoped), "[fe80::1%2]:22");
  EXPECT_EQ(FormatAddress(V4("10.1.2.3", 1)), "10.1.2.3");
  EXPECT_EQ(FormatEndpoint(Endpoint{}), "*:*");
  EXPECT_EQ(FormatAddress(Endpoint{}), "*");
}

TEST(StatsFormatTest, CursorsAsSmcssPrintsThem) {
  EXPECT_EQ(FormatCursor(wire::Cursor(0, 0).ToWord()), "0000:00000000");
  EXPECT_EQ(FormatCursor(wire::Cursor(3, 0x10000).ToWord()), "0003:00010000");
  EXPECT_EQ(CursorDistance(wire::Cursor(2, 0x10000).ToWord(),
                           wire::Cursor(3, 0x10000).ToWord(), 0x40000),
            0x40000u);
  EXPECT_EQ(CursorDistance(wire::Cursor(1, 10).ToWord(),
                           wire::Cursor(1, 25).ToWord(), 100),
            15u);
  EXPECT_EQ(CursorDistance(wire::Cursor(1, 25).ToWord(),
                           wire::Cursor(1, 10).ToWord(), 100),
            0u);
  EXPECT_EQ(CursorDistance(0, 5, 0), 0u);
}

TEST(StatsFormatTest, Modes) {
  ConnRecord r;
  r.mode = kModeShm;
  EXPECT_EQ(FormatMode(r, false), "SHM");
  r.mode = kModeTcp;
  r.reason = wire::kDeclNoListener;
  EXPECT_EQ(FormatMode(r, false), "TCP NOLISTENER");
  EXPECT_EQ(FormatMode(r, true), "TCP 0x0a000002/NOLISTENER");
  r.reason = wire::kDeclNoSmcdDev;
  r.origin = kOriginPeer;
  EXPECT_EQ(FormatMode(r, false), "TCP PEERDECL/NOSMCDDEV");
  r.reason = wire::kDeclPeerDecl;
  EXPECT_EQ(FormatMode(r, false), "TCP PEERDECL");
  r.reason = 0x07777777;
  r.origin = kOriginLocal;
  EXPECT_EQ(FormatMode(r, false), "TCP 0x07777777");
  r.mode = kModeListen;
  EXPECT_EQ(FormatMode(r, false), "SHM");
  EXPECT_STREQ(StateName(r), "LISTEN");
  r.mode = kModeRdma;
  EXPECT_EQ(FormatMode(r, false), "RDMA");
  EXPECT_EQ(FormatMode(r, true), "RDMA");
}

TEST(StatsFormatTest, RdmaConnections) {
  EXPECT_TRUE(IsAccelerated(kModeShm));
  EXPECT_TRUE(IsAccelerated(kModeRdma));
  EXPECT_FALSE(IsAccelerated(kModeTcp));
  EXPECT_FALSE(IsAccelerated(kModeListen));
  EXPECT_EQ(FormatLinkGroup(0x1a2b), "0x1a2b");
  EXPECT_EQ(FormatLinkGroup(0), "0x0");
  EXPECT_EQ(FormatLinkGroup(0xffffffffu), "0xffffffff");
  ConnRecord r;
  r.mode = kModeShm;
  Json shm;
  shm.BeginObject();
  LinkGroupJson(shm, r);
  shm.EndObject();
  EXPECT_EQ(shm.str(), R"({"lgr":null,"links":null})");
  r.mode = kModeRdma;
  r.lgr = 0x1a2b;
  r.links = 2;
  Json rdma;
  rdma.BeginObject();
  LinkGroupJson(rdma, r);
  rdma.EndObject();
  EXPECT_EQ(rdma.str(), R"({"lgr":"0x1a2b","links":2})");
  // states follow the flags as for SHM
  r.flags = engine::kPeerFin;
  EXPECT_STREQ(StateName(r), "APPCLOSEWAIT");
  r.flags = engine::kBroken;
  EXPECT_STREQ(StateName(r), "PEERABORT");
}

TEST(StatsFormatTest, StatesAndFlags) {
  ConnRecord r;
  r.mode = kModeShm;
  EXPECT_STREQ(StateName(r), "ACTIVE");
  r.flags = engine::kShutWr;
  EXPECT_STREQ(StateName(r), "PEERCLOSEWAIT");
  r.flags = engine::kPeerFin;
  EXPECT_STREQ(StateName(r), "APPCLOSEWAIT");
  r.flags = engine::kPeerFin | engine::kShutWr;
  EXPECT_STREQ(StateName(r), "CLOSED");
  r.flags = engine::kBroken;
  EXPECT_STREQ(StateName(r), "PEERABORT");
  EXPECT_EQ(FlagNames(engine::kShutRd | engine::kNonBlock),
            (std::vector<std::string>{"SHUT_RD", "NONBLOCK"}));
  EXPECT_TRUE(FlagNames(0).empty());
}

TEST(StatsFormatTest, ReasonSlotsRoundTrip) {
  for (uint32_t code : kReasonCodes) {
    int slot = ReasonSlot(code);
    ASSERT_LT(slot, kOtherReasonSlot) << ReasonHex(code);
    EXPECT_EQ(ReasonSlotCode(slot), code);
  }
  EXPECT_EQ(ReasonSlot(0x12345678), kOtherReasonSlot);
  EXPECT_EQ(ReasonSlotCode(kOtherReasonSlot), 0u);
  EXPECT_EQ(RingSizeBucket(16384), 0);
  EXPECT_EQ(RingSizeBucket(262144), 4);
  EXPECT_EQ(RingSizeBucket(1u << 30), kRingSizeBuckets - 1);
  EXPECT_EQ(RingBucketBytes(4), 262144u);
  EXPECT_TRUE(IsHandshakeError(wire::kDeclClcTimeout));
  EXPECT_FALSE(IsHandshakeError(wire::kDeclPeerNoSmc));
  EXPECT_STREQ(CounterKey(kBytesOut), "bytes_out");
  EXPECT_STREQ(CounterKey(kSlotsReused), "slots_reused");
  EXPECT_STREQ(CounterKey(kConnRdmaClient), "conns_rdma_client");
  EXPECT_STREQ(CounterKey(kConnRdmaServer), "conns_rdma_server");
  EXPECT_STREQ(CounterKey(kLinkGroups), "link_groups");
  EXPECT_STREQ(CounterKey(kLinksAdded), "links_added");
  EXPECT_STREQ(CounterKey(kLinkFailures), "link_failures");
  EXPECT_STREQ(CounterKey(kFailovers), "failovers");
  for (int i = 0; i < static_cast<int>(kScalarCounters); ++i)
    EXPECT_STRNE(CounterKey(static_cast<Counter>(i)), "?") << i;
}

TEST(StatsFormatTest, Json) {
  Json j;
  j.BeginObject()
      .Key("a")
      .Num(1)
      .Key("b\"")
      .Str("x\n\\")
      .Key("c")
      .BeginArray()
      .Int(-2)
      .Bool(true)
      .Null();
  j.EndArray()
      .Key("d")
      .Real(2.5)
      .Key("e")
      .BeginObject()
      .EndObject()
      .EndObject();
  EXPECT_EQ(j.str(),
            R"({"a":1,"b\"":"x\u000a\\","c":[-2,true,null],"d":2.50,"e":{}})");
}

TEST(StatsFormatTest, Arguments) {
  uint16_t port = 0;
  EXPECT_TRUE(ParsePort("6379", &port));
  EXPECT_EQ(port, 6379);
  for (const char* bad : {"0", "65536", "-1", "80x", "", " 80"})
    EXPECT_FALSE(ParsePort(bad, &port)) << bad;
  EXPECT_FALSE(ParsePort(nullptr, &port));
  pid_t pid = 0;
  EXPECT_TRUE(ParsePid("4242", &pid));
  EXPECT_EQ(pid, 4242);
  EXPECT_FALSE(ParsePid("0", &pid));
  EXPECT_FALSE(ParsePid("abc", &pid));
  double secs = 0;
  EXPECT_TRUE(ParseSeconds("0.5", &secs));
  EXPECT_DOUBLE_EQ(secs, 0.5);
  EXPECT_TRUE(ParseSeconds("2", &secs));
  for (const char* bad : {"0", "-1", "x", "1e9", ""})
    EXPECT_FALSE(ParseSeconds(bad, &secs)) << bad;
  long n = 0;
  EXPECT_TRUE(ParseCount("3", &n));
  EXPECT_EQ(n, 3);
  EXPECT_FALSE(ParseCount("0", &n));
}

TEST(StatsSummaryTest, SinceResetAndAverages) {
  ArenaSnapshot a;
  a.totals.assign(kCounterCount, 0);
  a.baseline.assign(kCounterCount, 0);
  a.totals[kConnShmClient] = 3;
  a.totals[kConnShmServer] = 1;
  a.totals[kSendCalls] = 30;
  a.totals[kRecvCalls] = 10;
  a.totals[kBytesOut] = 5;
  a.baseline[kBytesOut] =
      9;  // a counter below its baseline reads 0, never wraps
  ConnRecord live;
  live.mode = kModeShm;
  live.ring_bytes = 65536;
  ConnRecord stale = live;
  stale.live = false;
  a.records = {live, stale};
  Summary s = Summarize(a);
  EXPECT_EQ(s.c[kBytesOut], 0u);
  EXPECT_EQ(s.conns_shm(), 4u);
  EXPECT_DOUBLE_EQ(s.AvgRequestsPerConn(), 10.0);
  EXPECT_EQ(s.live_shm, 1u);
  EXPECT_EQ(s.rings_in_use, (std::map<uint32_t, uint64_t>{{65536, 1}}));
  Summary host;
  Accumulate(&host, s);
  Accumulate(&host, s);
  EXPECT_EQ(host.processes, 2u);
  EXPECT_EQ(host.c[kConnShmClient], 6u);
  EXPECT_EQ(host.rings_in_use[65536], 2u);
}

TEST(StatsSummaryTest, RdmaAndLinkCounters) {
  ArenaSnapshot a;
  a.totals.assign(kCounterCount, 0);
  a.baseline.assign(kCounterCount, 0);
  a.totals[kConnShmClient] = 1;
  a.totals[kConnRdmaClient] = 2;
  a.totals[kConnRdmaServer] = 1;
  a.totals[kConnTcpServer] = 5;
  a.totals[kSendCalls] = 40;
  a.totals[kLinkFailures] = 3;
  a.baseline[kLinkFailures] = 1;  // stats reset covers the new counters
  ConnRecord rdma;
  rdma.mode = kModeRdma;
  rdma.ring_bytes = 262144;
  ConnRecord shm;
  shm.mode = kModeShm;
  shm.ring_bytes = 65536;
  a.records = {rdma, rdma, shm};
  Summary s = Summarize(a);
  EXPECT_EQ(s.conns_shm(), 1u);
  EXPECT_EQ(s.conns_rdma(), 3u);
  EXPECT_EQ(s.conns_total(), 9u);
  EXPECT_DOUBLE_EQ(s.AvgRequestsPerConn(), 10.0);  // SHM and RDMA alike
  EXPECT_EQ(s.live_shm, 1u);
  EXPECT_EQ(s.live_rdma, 2u);
  EXPECT_EQ(s.rings_in_use,
            (std::map<uint32_t, uint64_t>{{65536, 1}, {262144, 2}}));
  EXPECT_EQ(s.c[kLinkFailures], 2u);
  Summary host;
  Accumulate(&host, s);
  Accumulate(&host, s);
  EXPECT_EQ(host.live_rdma, 4u);
  EXPECT_EQ(host.c[kConnRdmaClient], 4u);
}

// Records a NOLISTENER fallback on fds[0] and an accelerated connection (1234
// bytes out) on fds[1].
engine::ConnState* RecordTwo(const int fds[2]) {
  sockaddr_in local{}, peer{};
  local.sin_family = peer.sin_family = AF_INET;
  local.sin_port = htons(1111);
  peer.sin_port = htons(2222);
  inet_pton(AF_INET, "127.0.0.1", &local.sin_addr);
  inet_pton(AF_INET, "127.0.0.2", &peer.sin_addr);
  Decision d;
  d.fd = fds[0];
  d.role = kRoleClient;
  d.reason = wire::kDeclNoListener;
  d.local = reinterpret_cast<sockaddr*>(&local);
  d.peer = reinterpret_cast<sockaddr*>(&peer);
  RecordDecision(d);
  engine::ConnState* st = engine::Arena::Get().Alloc();
  if (st == nullptr) return nullptr;
  st->id.ring_bytes = 65536;
  Add(st->bytes_out, 1234);
  d.fd = fds[1];
  d.reason = 0;
  d.st = st;
  RecordDecision(d);
  return st;
}

// The arena of this very process, read back through /proc like `usmc ss` does.
TEST(StatsArenaTest, RecordsReadBackThroughProc) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  engine::ConnState* st = RecordTwo(fds);
  ASSERT_NE(st, nullptr);

  auto arenas = ScanArenas(getpid());
  ASSERT_EQ(arenas.size(), 1u);
  const ArenaSnapshot& a = arenas[0];
  EXPECT_EQ(a.creator, getpid());
  EXPECT_EQ(a.pids, std::vector<pid_t>{getpid()});
  ASSERT_EQ(a.records.size(), 2u);
  const ConnRecord& tcp =
      a.records[0].mode == kModeTcp ? a.records[0] : a.records[1];
  const ConnRecord& shm =
      a.records[0].mode == kModeShm ? a.records[0] : a.records[1];
  EXPECT_EQ(tcp.reason, wire::kDeclNoListener);
  EXPECT_EQ(FormatEndpoint(tcp.local), "127.0.0.1:1111");
  EXPECT_EQ(FormatEndpoint(tcp.peer), "127.0.0.2:2222");
  EXPECT_TRUE(tcp.live);
  EXPECT_EQ(shm.bytes_out, 1234u);
  EXPECT_EQ(shm.ring_bytes, 65536u);
  EXPECT_EQ(a.totals[kConnTcpClient], 1u);
  EXPECT_EQ(a.totals[kConnShmClient], 1u);
  EXPECT_EQ(a.totals[kFallbackLocal + ReasonSlot(wire::kDeclNoListener)], 1u);
  EXPECT_EQ(a.totals[kBytesOut], 1234u);

  std::string error;
  ASSERT_TRUE(ResetArena(a, &error)) << error;
  auto after = ScanArenas(getpid());
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(SinceReset(after[0])[kBytesOut], 0u);
  EXPECT_NE(after[0].reset_ns, 0u);

  FdClosed(fds[0]);  // the fallback record goes with its fd
  engine::Arena::Get().Free(st);
  auto gone = ScanArenas(getpid());
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_TRUE(gone[0].records.empty());
  EXPECT_EQ(gone[0].totals[kBytesOut],
            1234u);  // folded into the process totals
  close(fds[0]);
  close(fds[1]);
}

// An accelerated connection the engine says runs over RDMA: mode RDMA, the RDMA
// counters (not the SHM ones), and the link group the engine publishes.
TEST(StatsArenaTest, RdmaDecisionReadsBackAsRdma) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto before = ScanArenas(getpid());
  CounterArray base(kCounterCount, 0);
  if (!before.empty()) base = before[0].totals;
  engine::ConnState* st = engine::Arena::Get().Alloc();
  ASSERT_NE(st, nullptr);
  st->id.ring_bytes = 131072;
  Add(st->bytes_in, 777);
  Decision d;
  d.fd = fds[0];
  d.role = kRoleServer;
  d.st = st;
  d.rdma = true;
  RecordDecision(d);
  st->id.lgr.store(0x1a2b, std::memory_order_relaxed);
  st->id.links.store(2, std::memory_order_relaxed);

  auto arenas = ScanArenas(getpid());
  ASSERT_EQ(arenas.size(), 1u);
  const ArenaSnapshot& a = arenas[0];
  const ConnRecord* r = nullptr;
  for (const ConnRecord& x : a.records) {
    if (x.fd == fds[0]) r = &x;
  }
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->mode, kModeRdma);
  EXPECT_EQ(FormatMode(*r, false), "RDMA");
  EXPECT_EQ(r->role, kRoleServer);
  EXPECT_EQ(r->lgr, 0x1a2bu);
  EXPECT_EQ(r->links, 2u);
  EXPECT_TRUE(r->live);
  EXPECT_EQ(a.totals[kConnRdmaServer] - base[kConnRdmaServer], 1u);
  EXPECT_EQ(a.totals[kConnShmServer], base[kConnShmServer]);
  EXPECT_EQ(a.totals[kConnShmClient], base[kConnShmClient]);
  EXPECT_EQ(a.totals[kRingSizes + RingSizeBucket(131072)] -
                base[kRingSizes + RingSizeBucket(131072)],
            1u);
  EXPECT_EQ(a.totals[kBytesIn] - base[kBytesIn], 777u);  // live bytes count
  Summary s = Summarize(a);
  EXPECT_EQ(s.live_rdma, 1u);

  engine::Arena::Get().Free(st);
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace usmc::stats
