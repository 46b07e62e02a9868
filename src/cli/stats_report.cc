// The `usmc stats` report: text (like `smcd stats`) and JSON, for the host and
// per process.
#include "cli/stats_report.h"

#include <time.h>

#include <cstdio>
#include <string>

#include "cli/table.h"
#include "stats/format.h"
#include "stats/summary.h"

namespace usmc::cli {
namespace {

using stats::Summary;

std::string N(uint64_t v) { return std::to_string(v); }

std::string Real(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string Clock(uint64_t realtime_ns) {
  time_t t = static_cast<time_t>(realtime_ns / 1000000000ull);
  tm local;
  localtime_r(&t, &local);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
  return buf;
}

std::string RingSize(uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
    return N(bytes >> 20) + "M";
  if (bytes >= 1024 && bytes % 1024 == 0) return N(bytes >> 10) + "K";
  return N(bytes);
}

std::string Sizes(const std::map<uint32_t, uint64_t>& m) {
  std::string out;
  for (const auto& [bytes, n] : m)
    out += (out.empty() ? "" : "  ") + RingSize(bytes) + ": " + N(n);
  return out.empty() ? "-" : out;
}

std::map<uint32_t, uint64_t> Allocated(const Summary& s) {
  std::map<uint32_t, uint64_t> m;
  for (int b = 0; b < stats::kRingSizeBuckets; ++b) {
    if (uint64_t n = s.c[stats::kRingSizes + b])
      m[stats::RingBucketBytes(b)] = n;
  }
  return m;
}

void AddConnectionRows(const Summary& s, Table* t) {
  using namespace stats;  // NOLINT: counter names
  const auto& c = s.c;
  t->AddRow({"Connections", "total", "client", "server"});
  t->AddRow({"  accelerated (SHM)", N(s.conns_shm()), N(c[kConnShmClient]),
             N(c[kConnShmServer])});
  t->AddRow({"  accelerated (RDMA)", N(s.conns_rdma()), N(c[kConnRdmaClient]),
             N(c[kConnRdmaServer])});
  t->AddRow({"  fallback (TCP)", N(s.conns_tcp()), N(c[kConnTcpClient]),
             N(c[kConnTcpServer])});
  t->AddRow({"  handshake errors",
             N(c[kHandshakeErrClient] + c[kHandshakeErrServer]),
             N(c[kHandshakeErrClient]), N(c[kHandshakeErrServer])});
  t->AddRow({"  listeners", N(c[kListeners])});
  t->AddRow({"  open now (SHM/RDMA/TCP/listen)",
             N(s.live_shm) + "/" + N(s.live_rdma) + "/" + N(s.live_tcp) + "/" +
                 N(s.live_listeners)});
}

void AddDataPathRows(const Summary& s, Table* t) {
  using namespace stats;  // NOLINT: counter names
  const auto& c = s.c;
  bool on = s.counters_compiled;
  auto opt = [&](uint64_t v) { return on ? N(v) : std::string("n/a"); };
  t->AddRow({"Data", "sent", "received"});
  t->AddRow({"  bytes", N(c[kBytesOut]), N(c[kBytesIn])});
  t->AddRow({"  calls", opt(c[kSendCalls]), opt(c[kRecvCalls])});
  t->AddRow(
      {"  avg requests per conn", on ? Real(s.AvgRequestsPerConn()) : "n/a"});
  t->AddRow({"Ring full", "local", "peer"});
  t->AddRow({"  events", opt(c[kRingFullLocal]), opt(c[kRingFullPeer])});
  t->AddRow({"Wake-ups", "sent", "received"});
  t->AddRow(
      {"  doorbells", opt(c[kDoorbellsSent]), opt(c[kDoorbellsReceived])});
  t->AddRow({"  sleeps", opt(c[kSleeps])});
  t->AddRow({"  spin wake-ups", opt(c[kSpinWakeups])});
}

void AddRingRows(const Summary& s, Table* t) {
  using namespace stats;  // NOLINT: counter names
  t->AddRow({"Rings"});
  t->AddRow({"  allocated by size", Sizes(Allocated(s))});
  t->AddRow({"  in use by size", Sizes(s.rings_in_use)});
  t->AddRow({"  segments created", N(s.c[kSegmentsCreated])});
  t->AddRow({"  slots reused", N(s.c[kSlotsReused])});
}

// The cross-host link groups (SMC-R): created, links up, links lost, failovers.
void AddLinkRows(const Summary& s, Table* t) {
  using namespace stats;  // NOLINT: counter names
  t->AddRow({"Links (RDMA)"});
  t->AddRow({"  link groups", N(s.c[kLinkGroups])});
  t->AddRow({"  links added", N(s.c[kLinksAdded])});
  t->AddRow({"  link failures", N(s.c[kLinkFailures])});
  t->AddRow({"  failovers", N(s.c[kFailovers])});
}

std::string CountersText(const Summary& s) {
  Table t({false, true, true, true});
  AddConnectionRows(s, &t);
  AddDataPathRows(s, &t);
  AddRingRows(s, &t);
  AddLinkRows(s, &t);
  return t.Render("  ");
}

std::string FallbacksText(const Summary& s) {
  using namespace stats;  // NOLINT: counter names
  const auto& c = s.c;
  Table r({false, true, true});
  r.AddRow({"Fallback reasons", "local", "peer"});
  bool any = false;
  for (int slot = 0; slot < kReasonSlots; ++slot) {
    uint64_t local = c[kFallbackLocal + slot], peer = c[kFallbackPeer + slot];
    if (local == 0 && peer == 0) continue;
    uint32_t code = ReasonSlotCode(slot);
    r.AddRow(
        {"  " + (code != 0 ? ReasonName(code) + " (" + ReasonHex(code) + ")"
                           : std::string("OTHER")),
         N(local), N(peer)});
    any = true;
  }
  return any ? r.Render("  ") : std::string();
}

std::string ProcessTable(const std::vector<stats::ArenaSnapshot>& arenas) {
  using namespace stats;  // NOLINT: counter names
  Table t({true, false, true, true, true, true, true, true, true, true, true});
  t.AddRow({"PID", "Program", "SHM", "RDMA", "TCP", "HsErr", "Open", "Sent",
            "Received", "Calls", "RingFull"});
  for (const ArenaSnapshot& a : arenas) {
    Summary s = Summarize(a);
    const auto& c = s.c;
    std::string pids = N(static_cast<uint64_t>(a.creator));
    if (a.pids.size() > 1 || (a.pids.size() == 1 && a.pids[0] != a.creator)) {
      pids.clear();
      for (pid_t p : a.pids) {
        if (!pids.empty()) pids += ',';
        pids += N(static_cast<uint64_t>(p));
      }
    }
    t.AddRow({pids, a.program, N(s.conns_shm()), N(s.conns_rdma()),
              N(s.conns_tcp()),
              N(c[kHandshakeErrClient] + c[kHandshakeErrServer]),
              N(s.live_shm + s.live_rdma + s.live_tcp), N(c[kBytesOut]),
              N(c[kBytesIn]), N(c[kSendCalls] + c[kRecvCalls]),
              N(c[kRingFullLocal]) + "/" + N(c[kRingFullPeer])});
  }
  return t.Render("  ");
}

void CountersJson(stats::Json& j, const Summary& s) {
  using namespace stats;  // NOLINT: counter names
  j.BeginObject();
  for (int i = 0; i < static_cast<int>(kScalarCounters); ++i)
    j.Key(CounterKey(static_cast<Counter>(i))).Num(s.c[i]);
  j.Key("conns_shm").Num(s.conns_shm()).Key("conns_rdma").Num(s.conns_rdma());
  j.Key("conns_tcp").Num(s.conns_tcp());
  j.Key("conns_total").Num(s.conns_total());
  j.Key("handshake_errors")
      .Num(s.c[kHandshakeErrClient] + s.c[kHandshakeErrServer]);
  j.Key("avg_requests_per_conn").Real(s.AvgRequestsPerConn());
  j.Key("open_shm").Num(s.live_shm).Key("open_rdma").Num(s.live_rdma);
  j.Key("open_tcp").Num(s.live_tcp);
  j.Key("open_listeners").Num(s.live_listeners);
  j.Key("counters_compiled").Bool(s.counters_compiled);
  j.Key("rings_allocated").BeginObject();
  for (const auto& [bytes, n] : Allocated(s)) j.Key(N(bytes)).Num(n);
  j.EndObject();
  j.Key("rings_in_use").BeginObject();
  for (const auto& [bytes, n] : s.rings_in_use) j.Key(N(bytes)).Num(n);
  j.EndObject();
  j.Key("fallback_reasons").BeginObject();
  for (int slot = 0; slot < kReasonSlots; ++slot) {
    uint64_t local = s.c[kFallbackLocal + slot],
             peer = s.c[kFallbackPeer + slot];
    if (local == 0 && peer == 0) continue;
    uint32_t code = ReasonSlotCode(slot);
    j.Key(code != 0 ? ReasonName(code) : "OTHER").BeginObject();
    j.Key("code")
        .Str(ReasonHex(code))
        .Key("local")
        .Num(local)
        .Key("peer")
        .Num(peer);
    j.EndObject();
  }
  j.EndObject();
  j.EndObject();
}

}  // namespace

std::string StatsText(const std::vector<stats::ArenaSnapshot>& arenas) {
  Summary host;
  uint64_t last_reset = 0;
  size_t pids = 0;
  for (const auto& a : arenas) {
    stats::Accumulate(&host, stats::Summarize(a));
    last_reset = std::max(last_reset, a.reset_ns);
    pids += a.pids.size();
  }
  std::string out = "usmc stats: " + N(arenas.size()) + " process" +
                    (arenas.size() == 1 ? "" : "es") + " under usmc (" +
                    N(pids) + " pid" + (pids == 1 ? "" : "s") + ")";
  if (last_reset != 0) out += ", last reset " + Clock(last_reset);
  out += "\n";
  if (!host.counters_compiled)
    out += "(counters compiled out: built with USMC_COUNTERS=OFF)\n";
  out += "\nHost\n" + CountersText(host) + FallbacksText(host);
  if (!arenas.empty()) out += "\nProcesses\n" + ProcessTable(arenas);
  return out;
}

std::string StatsJson(const std::vector<stats::ArenaSnapshot>& arenas,
                      uint64_t now_ns) {
  Summary host;
  for (const auto& a : arenas) stats::Accumulate(&host, stats::Summarize(a));
  stats::Json j;
  j.BeginObject();
  j.Key("time_ns").Num(now_ns);
  j.Key("processes_count").Num(arenas.size());
  j.Key("host");
  CountersJson(j, host);
  j.Key("processes").BeginArray();
  for (const auto& a : arenas) {
    j.BeginObject();
    j.Key("pid").Int(a.creator);
    j.Key("pids").BeginArray();
    for (pid_t p : a.pids) j.Int(p);
    j.EndArray();
    j.Key("program").Str(a.program).Key("uid").Num(a.uid);
    j.Key("start_ns").Num(a.start_ns).Key("reset_ns").Num(a.reset_ns);
    j.Key("counters");
    CountersJson(j, stats::Summarize(a));
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return j.str();
}

}  // namespace usmc::cli
