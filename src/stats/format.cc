#include "stats/format.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "engine/arena.h"
#include "wire/cdc.h"
#include "wire/decline.h"

namespace usmc::stats {

std::string FormatAddress(const Endpoint& e) {
  char host[INET6_ADDRSTRLEN + 16] = "*";
  if (e.family == AF_INET) {
    inet_ntop(AF_INET, e.addr, host, sizeof host);
  } else if (e.family == AF_INET6) {
    inet_ntop(AF_INET6, e.addr, host, sizeof host);
    if (e.scope_id != 0) {
      std::string h = std::string(host) + "%" + std::to_string(e.scope_id);
      return h;
    }
  }
  return host;
}

std::string FormatEndpoint(const Endpoint& e) {
  if (e.family != AF_INET && e.family != AF_INET6) return "*:*";
  std::string host = FormatAddress(e);
  if (e.family == AF_INET6) host = "[" + host + "]";
  return host + ":" + std::to_string(e.port);
}

std::string FormatCursor(uint64_t word) {
  wire::Cursor c = wire::Cursor::FromWord(word);
  char buf[32];
  snprintf(buf, sizeof buf, "%04x:%08x", c.wrap(), c.count());
  return buf;
}

uint64_t CursorDistance(uint64_t from, uint64_t to, uint32_t ring_bytes) {
  if (ring_bytes == 0) return 0;
  int64_t d = wire::Cursor::Distance(wire::Cursor::FromWord(from),
                                     wire::Cursor::FromWord(to), ring_bytes);
  return d > 0 ? static_cast<uint64_t>(d) : 0;
}

const char* ModeName(uint32_t mode) {
  switch (mode) {
    case kModeShm:
      return "SHM";
    case kModeTcp:
      return "TCP";
    case kModeRdma:
      return "RDMA";
    case kModeListen:
      return "LISTEN";
    default:
      return "?";
  }
}

std::string FormatLinkGroup(uint32_t lgr) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%x", lgr);
  return buf;
}

std::string ReasonHex(uint32_t code) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", code);
  return buf;
}

std::string ReasonName(uint32_t code) {
  std::string name = wire::DeclineName(code);
  return name == "UNKNOWN" ? ReasonHex(code) : name;
}

std::string FormatMode(const ConnRecord& r, bool with_code) {
  if (r.mode == kModeListen)
    return "SHM";  // a listener that offers shared memory
  if (r.mode != kModeTcp) return ModeName(r.mode);
  std::string name = ReasonName(r.reason);
  if (r.origin == kOriginPeer && r.reason != wire::kDeclPeerDecl)
    name = "PEERDECL/" + name;
  return with_code ? "TCP " + ReasonHex(r.reason) + "/" + name : "TCP " + name;
}

const char* StateName(const ConnRecord& r) {
  if (r.mode == kModeListen) return "LISTEN";
  if (!IsAccelerated(r.mode)) return "ACTIVE";
  uint32_t f = r.flags;
  if (f & (engine::kBroken | engine::kPeerReset)) return "PEERABORT";
  bool peer_done = f & engine::kPeerFin;
  bool we_done = f & engine::kShutWr;
  if (peer_done && we_done) return "CLOSED";
  if (peer_done)
    return "APPCLOSEWAIT";  // the peer finished; the application has not closed
  if (we_done) return "PEERCLOSEWAIT";  // we finished writing; the peer has not
  return "ACTIVE";
}

std::vector<std::string> FlagNames(uint32_t flags) {
  static constexpr struct {
    uint32_t bit;
    const char* name;
  } kNames[] = {
      {engine::kShutRd, "SHUT_RD"},   {engine::kShutWr, "SHUT_WR"},
      {engine::kPeerFin, "PEER_FIN"}, {engine::kPeerReset, "PEER_RESET"},
      {engine::kBroken, "BROKEN"},    {engine::kNonBlock, "NONBLOCK"},
  };
  std::vector<std::string> out;
  for (const auto& n : kNames) {
    if (flags & n.bit) out.push_back(n.name);
  }
  return out;
}

const char* RoleName(uint8_t role) {
  return role == kRoleServer ? "server" : "client";
}

const char* CounterKey(Counter c) {
  static constexpr const char* kKeys[kScalarCounters] = {
      "conns_shm_client",
      "conns_shm_server",
      "conns_tcp_client",
      "conns_tcp_server",
      "handshake_errors_client",
      "handshake_errors_server",
      "listeners",
      "bytes_out",
      "bytes_in",
      "send_calls",
      "recv_calls",
      "ring_full_local",
      "ring_full_peer",
      "doorbells_sent",
      "doorbells_received",
      "sleeps",
      "spin_wakeups",
      "segments_created",
      "slots_reused",
      "conns_rdma_client",
      "conns_rdma_server",
      "link_groups",
      "links_added",
      "link_failures",
      "failovers",
  };
  static_assert(kKeys[kScalarCounters - 1] != nullptr, "name the new counter");
  return c < kScalarCounters ? kKeys[c] : "?";
}

uint32_t RingBucketBytes(int bucket) { return 16384u << bucket; }

// ---- JSON
// -----------------------------------------------------------------------------------------

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

void Json::Sep() {
  if (need_comma_) out_ += ',';
  need_comma_ = true;
}
Json& Json::BeginObject() {
  Sep();
  out_ += '{';
  need_comma_ = false;
  return *this;
}
Json& Json::EndObject() {
  out_ += '}';
  need_comma_ = true;
  return *this;
}
Json& Json::BeginArray() {
  Sep();
  out_ += '[';
  need_comma_ = false;
  return *this;
}
Json& Json::EndArray() {
  out_ += ']';
  need_comma_ = true;
  return *this;
}
Json& Json::Key(const std::string& k) {
  Sep();
  out_ += '"' + JsonEscape(k) + "\":";
  need_comma_ = false;
  return *this;
}
Json& Json::Str(const std::string& v) {
  Sep();
  out_ += '"' + JsonEscape(v) + '"';
  return *this;
}
Json& Json::Num(uint64_t v) {
  Sep();
  out_ += std::to_string(v);
  return *this;
}
Json& Json::Int(int64_t v) {
  Sep();
  out_ += std::to_string(v);
  return *this;
}
Json& Json::Real(double v) {
  Sep();
  char buf[32];
  snprintf(buf, sizeof buf, "%.2f", std::isfinite(v) ? v : 0.0);
  out_ += buf;
  return *this;
}
Json& Json::Bool(bool v) {
  Sep();
  out_ += v ? "true" : "false";
  return *this;
}
Json& Json::Null() {
  Sep();
  out_ += "null";
  return *this;
}

void LinkGroupJson(Json& j, const ConnRecord& r) {
  if (r.mode != kModeRdma) {
    j.Key("lgr").Null().Key("links").Null();
    return;
  }
  j.Key("lgr").Str(FormatLinkGroup(r.lgr));
  j.Key("links").Num(r.links);
}

// ---- arguments
// ------------------------------------------------------------------------------------

namespace {
bool ParseDecimal(const char* s, long long lo, long long hi, long long* out) {
  if (s == nullptr || *s < '0' || *s > '9') return false;
  errno = 0;
  char* end = nullptr;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}
}  // namespace

bool ParsePort(const char* s, uint16_t* port) {
  long long v;
  if (!ParseDecimal(s, 1, 65535, &v)) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

bool ParsePid(const char* s, pid_t* pid) {
  long long v;
  if (!ParseDecimal(s, 1, 0x3fffffff, &v)) return false;
  *pid = static_cast<pid_t>(v);
  return true;
}

bool ParseSeconds(const char* s, double* secs) {
  if (s == nullptr || ((*s < '0' || *s > '9') && *s != '.')) return false;
  char* end = nullptr;
  double v = strtod(s, &end);
  if (*end != '\0' || !(v > 0) || v > 86400) return false;
  *secs = v;
  return true;
}

bool ParseCount(const char* s, long* n) {
  long long v;
  if (!ParseDecimal(s, 1, 1000000000, &v)) return false;
  *n = static_cast<long>(v);
  return true;
}

}  // namespace usmc::stats
