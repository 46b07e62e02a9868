// Text and JSON pieces shared by `usmc ss` and `usmc stats`: endpoints,
// cursors, modes, states, counter names, a minimal JSON writer, and the
// argument parsers of both commands.
#ifndef USMC_STATS_FORMAT_H_
#define USMC_STATS_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "stats/layout.h"
#include "stats/snapshot.h"

namespace usmc::stats {

// "127.0.0.1:6379", "[::1]:6379", "[fe80::1%2]:80"; "*:*" for an unknown
// endpoint.
std::string FormatEndpoint(const Endpoint& e);
std::string FormatAddress(
    const Endpoint& e);  // without the port; "*" when unknown

// A cursor word as smcss prints it: "wrap:count" in hex, "0000:00001000".
std::string FormatCursor(uint64_t word);
// Bytes from cursor `from` to cursor `to` in a ring of ring_bytes (0 if not
// within one ring).
uint64_t CursorDistance(uint64_t from, uint64_t to, uint32_t ring_bytes);

// Mode column: "SHM", "TCP NOLISTENER", "TCP PEERDECL/NOSMCDDEV" (the peer
// declined with that diagnosis); with_code: "TCP 0x0a000002/NOLISTENER" as
// smcss shows codes.
std::string FormatMode(const ConnRecord& r, bool with_code);
const char* ModeName(uint32_t mode);  // "SHM", "TCP", "RDMA", "LISTEN", "?"
// A link group id as `usmc ss` shows it: "0x1a2b" (lower-case hex, no
// padding).
std::string FormatLinkGroup(uint32_t lgr);
std::string ReasonName(uint32_t code);  // "NOLISTENER", or "0x..." when unknown
std::string ReasonHex(uint32_t code);   // "0x0a000002"
const char* StateName(
    const ConnRecord& r);  // ACTIVE, LISTEN, APPCLOSEWAIT, ...
std::vector<std::string> FlagNames(
    uint32_t flags);                 // "SHUT_RD", "PEER_FIN", ...
const char* RoleName(uint8_t role);  // "client" / "server"

// JSON key of a scalar counter (Counter < kScalarCounters): "conns_shm_client",
// ...
const char* CounterKey(Counter c);
uint32_t RingBucketBytes(int bucket);  // 16384 << bucket

// Appends JSON to a string; the caller keeps the structure balanced.
class Json {
 public:
  Json& BeginObject();
  Json& EndObject();
  Json& BeginArray();
  Json& EndArray();
  Json& Key(const std::string& k);
  Json& Str(const std::string& v);
  Json& Num(uint64_t v);
  Json& Int(int64_t v);
  Json& Real(double v);
  Json& Bool(bool v);
  Json& Null();
  const std::string& str() const { return out_; }

 private:
  void Sep();
  std::string out_;
  bool need_comma_ = false;
};
std::string JsonEscape(const std::string& s);

// The keys "lgr" ("0x1a2b") and "links" (int) of an RDMA connection; null for
// any other record.
void LinkGroupJson(Json& j, const ConnRecord& r);

// Argument parsing: false on anything but a plain decimal in range.
bool ParsePort(const char* s, uint16_t* port);
bool ParsePid(const char* s, pid_t* pid);
bool ParseSeconds(const char* s,
                  double* secs);  // > 0, at most a day, decimals allowed
bool ParseCount(const char* s, long* n);  // >= 1

}  // namespace usmc::stats

#endif  // USMC_STATS_FORMAT_H_
