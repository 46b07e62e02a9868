// usmc ss: the sockets of the processes running under usmc, like smcss(8), read
// from their arenas (src/stats/snapshot.h).
#include <getopt.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/table.h"
#include "stats/format.h"
#include "stats/snapshot.h"

namespace usmc::cli {
namespace {

using stats::ArenaSnapshot;
using stats::ConnRecord;

struct SsOptions {
  bool all = false;
  bool listening = false;
  bool details = false;
  bool json = false;
  pid_t pid = 0;
  uint16_t port = 0;
};

struct Row {
  const ArenaSnapshot* arena;
  const ConnRecord* rec;
};

int Usage() {
  fputs("usage: usmc ss [-a | -l] [-d] [--json] [--pid PID] [--port PORT]\n",
        stderr);
  return 2;
}

bool ParseArgs(int argc, char** argv, SsOptions* o) {
  static const option kLong[] = {{"all", no_argument, nullptr, 'a'},
                                 {"listening", no_argument, nullptr, 'l'},
                                 {"details", no_argument, nullptr, 'd'},
                                 {"json", no_argument, nullptr, 'j'},
                                 {"pid", required_argument, nullptr, 'p'},
                                 {"port", required_argument, nullptr, 'P'},
                                 {nullptr, 0, nullptr, 0}};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "ald", kLong, nullptr)) != -1) {
    switch (c) {
      case 'a':
        o->all = true;
        break;
      case 'l':
        o->listening = true;
        break;
      case 'd':
        o->details = true;
        break;
      case 'j':
        o->json = true;
        break;
      case 'p':
        if (!stats::ParsePid(optarg, &o->pid)) {
          fprintf(stderr, "usmc ss: bad --pid '%s'\n", optarg);
          return false;
        }
        break;
      case 'P':
        if (!stats::ParsePort(optarg, &o->port)) {
          fprintf(stderr, "usmc ss: bad --port '%s'\n", optarg);
          return false;
        }
        break;
      default:
        return false;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "usmc ss: unexpected argument '%s'\n", argv[optind]);
    return false;
  }
  if (o->all && o->listening) {
    fputs("usmc ss: -a and -l exclude each other\n", stderr);
    return false;
  }
  return true;
}

bool Selected(const ConnRecord& r, const SsOptions& o) {
  if (!r.live) return false;
  bool listener = r.mode == stats::kModeListen;
  if (o.listening) {
    if (!listener) return false;
  } else if (!o.all && (listener || r.mode == stats::kModeTcp)) {
    return false;
  }
  return o.port == 0 || r.local.port == o.port ||
         (!listener && r.peer.port == o.port);
}

std::vector<Row> Rows(const std::vector<ArenaSnapshot>& arenas,
                      const SsOptions& o) {
  std::vector<Row> rows;
  for (const ArenaSnapshot& a : arenas) {
    for (const ConnRecord& r : a.records) {
      if (Selected(r, o)) rows.push_back({&a, &r});
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    if (x.rec->pid != y.rec->pid) return x.rec->pid < y.rec->pid;
    return x.rec->fd < y.rec->fd;
  });
  return rows;
}

uint64_t InFlight(const ConnRecord& r) {
  return stats::CursorDistance(r.tx_peer_cons, r.tx_prod, r.ring_bytes);
}
uint64_t Unread(const ConnRecord& r) {
  return stats::CursorDistance(r.rx_cons, r.rx_peer_prod, r.ring_bytes);
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// The LGR and Links columns: with -d, and whenever an RDMA connection is
// listed.
bool ShowLinks(const std::vector<Row>& rows, const SsOptions& o) {
  if (o.details) return true;
  return std::any_of(rows.begin(), rows.end(), [](const Row& row) {
    return row.rec->mode == stats::kModeRdma;
  });
}

void AddLinks(const ConnRecord& r, std::vector<std::string>* cells) {
  bool rdma = r.mode == stats::kModeRdma;
  cells->push_back(rdma ? stats::FormatLinkGroup(r.lgr) : "-");
  cells->push_back(rdma ? std::to_string(r.links) : "-");
}

void AddDetails(const ConnRecord& r, std::vector<std::string>* cells) {
  bool accel = stats::IsAccelerated(r.mode);
  auto dash = [&](const std::string& v) {
    return accel ? v : std::string("-");
  };
  cells->push_back(stats::RoleName(r.role));
  cells->push_back(std::to_string(r.fd));
  cells->push_back(dash(std::to_string(r.ring_bytes)));
  cells->push_back(dash(stats::FormatCursor(r.tx_prod)));
  cells->push_back(dash(stats::FormatCursor(r.tx_peer_cons)));
  cells->push_back(dash(stats::FormatCursor(r.rx_peer_prod)));
  cells->push_back(dash(stats::FormatCursor(r.rx_cons)));
  cells->push_back(dash(std::to_string(InFlight(r))));
  cells->push_back(dash(std::to_string(Unread(r))));
  cells->push_back(dash(std::to_string(r.bytes_out)));
  cells->push_back(dash(std::to_string(r.bytes_in)));
  std::string flags = Join(stats::FlagNames(r.flags), ",");
  cells->push_back(flags.empty() ? "-" : flags);
}

std::vector<std::string> Header(const SsOptions& o, bool links) {
  std::vector<std::string> head = {
      "State", "UID", "PID/Program", "Local Address", "Peer Address", "Mode"};
  if (links) {
    head.push_back("LGR");
    head.push_back("Links");
  }
  if (o.details) {
    for (const char* h : {"Role", "Fd", "Ring", "txprod-Cursor",
                          "txcons-Cursor", "rxprod-Cursor", "rxcons-Cursor",
                          "Inflight", "Unread", "Sent", "Received", "Flags"}) {
      head.push_back(h);
    }
  }
  return head;
}

void PrintTable(const std::vector<Row>& rows, const SsOptions& o) {
  bool links = ShowLinks(rows, o);
  Table t;
  t.AddRow(Header(o, links));
  for (const Row& row : rows) {
    const ConnRecord& r = *row.rec;
    bool listener = r.mode == stats::kModeListen;
    std::vector<std::string> cells = {
        stats::StateName(r),
        std::to_string(row.arena->uid),
        std::to_string(r.pid) + "/" + row.arena->program,
        stats::FormatEndpoint(r.local),
        listener ? "*:*" : stats::FormatEndpoint(r.peer),
        stats::FormatMode(r, o.details)};
    if (links) AddLinks(r, &cells);
    if (o.details) AddDetails(r, &cells);
    t.AddRow(cells);
  }
  fputs(t.Render().c_str(), stdout);
}

void EndpointJson(stats::Json& j, const char* key, const stats::Endpoint& e) {
  j.Key(key).Str(stats::FormatEndpoint(e));
  j.Key(std::string(key) + "_addr").Str(stats::FormatAddress(e));
  j.Key(std::string(key) + "_port").Num(e.port);
}

void ReasonJson(stats::Json& j, const ConnRecord& r) {
  if (r.mode != stats::kModeTcp) {
    j.Key("reason").Null().Key("reason_code").Null();
    j.Key("reason_origin").Null();
    return;
  }
  j.Key("reason").Str(stats::ReasonName(r.reason));
  j.Key("reason_code").Str(stats::ReasonHex(r.reason));
  j.Key("reason_origin").Str(r.origin == stats::kOriginPeer ? "peer" : "local");
}

void RecordJson(stats::Json& j, const Row& row) {
  const ConnRecord& r = *row.rec;
  bool accel = stats::IsAccelerated(r.mode);
  j.BeginObject();
  j.Key("state").Str(stats::StateName(r));
  j.Key("uid").Num(row.arena->uid);
  j.Key("pid").Int(r.pid);
  j.Key("pids").BeginArray();
  for (pid_t p : row.arena->pids) j.Int(p);
  j.EndArray();
  j.Key("program").Str(row.arena->program);
  j.Key("fd").Int(r.fd);
  j.Key("inode").Num(r.inode);
  j.Key("role").Str(stats::RoleName(r.role));
  j.Key("mode").Str(
      stats::ModeName(r.mode == stats::kModeListen ? stats::kModeShm : r.mode));
  j.Key("listening").Bool(r.mode == stats::kModeListen);
  ReasonJson(j, r);
  stats::LinkGroupJson(j, r);
  EndpointJson(j, "local", r.local);
  EndpointJson(j, "peer", r.peer);
  j.Key("ring_bytes").Num(accel ? r.ring_bytes : 0);
  j.Key("bytes_out").Num(r.bytes_out).Key("bytes_in").Num(r.bytes_in);
  j.Key("send_calls").Num(r.send_calls).Key("recv_calls").Num(r.recv_calls);
  j.Key("ring_full_local")
      .Num(r.ring_full_local)
      .Key("ring_full_peer")
      .Num(r.ring_full_peer);
  j.Key("tx_prod").Str(stats::FormatCursor(r.tx_prod));
  j.Key("tx_peer_cons").Str(stats::FormatCursor(r.tx_peer_cons));
  j.Key("rx_peer_prod").Str(stats::FormatCursor(r.rx_peer_prod));
  j.Key("rx_cons").Str(stats::FormatCursor(r.rx_cons));
  j.Key("tx_inflight")
      .Num(accel ? InFlight(r) : 0)
      .Key("rx_unread")
      .Num(accel ? Unread(r) : 0);
  j.Key("flags").BeginArray();
  for (const auto& f : stats::FlagNames(r.flags)) j.Str(f);
  j.EndArray();
  j.Key("created_ns").Num(r.created_ns);
  j.EndObject();
}

}  // namespace

int SsCommand(int argc, char** argv) {
  SsOptions o;
  if (!ParseArgs(argc, argv, &o)) return Usage();
  std::vector<stats::ArenaSnapshot> arenas = stats::ScanArenas(o.pid);
  std::vector<Row> rows = Rows(arenas, o);
  if (o.json) {
    stats::Json j;
    j.BeginArray();
    for (const Row& row : rows) RecordJson(j, row);
    j.EndArray();
    printf("%s\n", j.str().c_str());
  } else {
    PrintTable(rows, o);
  }
  return 0;
}

}  // namespace usmc::cli
