// The layout of a process's arena memfd ("usmc-arena") as `usmc ss` and `usmc
// stats` read it.
//
// The arena is written by libusmc.so (src/engine/arena.*, src/stats/record.*)
// and mapped read-only by the CLI through /proc/PID/fd/N, so everything here is
// plain values and offsets: no pointers, no virtual functions, the same bytes
// in every process whatever its address space. A reader checks kArenaMagic,
// kArenaVersion and the sizes in the header before it trusts any offset.
//
//   [ArenaHeader][ProcCounters][Baseline][thread bitmap][ThreadBlock...][record
//   bitmap][ConnState...]
//
// The only part the CLI writes is the Baseline (`usmc stats reset`); libusmc.so
// never reads it.
#ifndef USMC_STATS_LAYOUT_H_
#define USMC_STATS_LAYOUT_H_

#include <atomic>
#include <cstdint>

#include "wire/decline.h"

namespace usmc::stats {

inline constexpr uint64_t kArenaMagic = 0x314e524143534d55ull;  // "USMCARN1"
// 2: RDMA connection counters, link counters, ConnIdentity::lgr and ::links.
inline constexpr uint32_t kArenaVersion = 2;
inline constexpr char kArenaName[] =
    "usmc-arena";  // memfd name; /proc shows "/memfd:usmc-arena"

// What a record describes (ConnIdentity::mode). 0 = not published yet
// (handshake, or being reused).
enum Mode : uint32_t {
  kModeNone = 0,
  kModeShm = 1,
  kModeTcp = 2,
  kModeRdma = 3,
  kModeListen = 4
};
enum RecordRole : uint8_t { kRoleClient = 0, kRoleServer = 1 };
enum Origin : uint8_t {
  kOriginLocal = 0,
  kOriginPeer = 1
};  // who decided a fallback

// An IPv4 or IPv6 endpoint; family 0 = unknown.
struct Endpoint {
  uint16_t family;  // AF_INET / AF_INET6
  uint16_t port;    // host byte order
  uint32_t scope_id;
  uint8_t addr[16];  // 4 bytes for AF_INET
};

// Who a record is. Written once by the process that decided, then published by
// storing `mode` (release); immutable until the record is freed, except `lgr`
// and `links` of an RDMA connection, which the engine updates at any time
// (relaxed stores) as links come and go.
struct ConnIdentity {
  std::atomic<uint32_t> mode;
  uint8_t role;
  uint8_t origin;
  uint16_t reserved;
  int32_t fd;       // in the creating process
  int32_t pid;      // the creating process
  uint32_t reason;  // wire::DeclineCode of a fallback, 0 otherwise
  uint32_t ring_bytes;
  uint64_t inode;  // of the TCP socket (socket:[inode]); tells live records
                   // from stale ones
  uint64_t created_ns;  // CLOCK_REALTIME
  Endpoint local;
  Endpoint peer;
  std::atomic<uint32_t> lgr;    // RDMA: link group id, 0 = none
  std::atomic<uint32_t> links;  // RDMA: active links of that group now
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(ConnIdentity) == 96 && alignof(ConnIdentity) == 8,
              "ConnIdentity is read by other processes: fixed layout");

// An accelerated connection (a ring pair, cursors, counters): over shared
// memory or over RDMA.
inline bool IsAccelerated(uint32_t mode) {
  return mode == kModeShm || mode == kModeRdma;
}

// Per-direction counters of a connection, written only by the holder of that
// direction's lock with plain load+store (no read-modify-write), read by
// anyone.
struct DirCounters {
  std::atomic<uint64_t>
      calls;  // send (tx) / recv (rx) calls that reached the ring
  std::atomic<uint64_t> full;  // tx: a send found the ring full; rx: a recv
                               // found it full (peer blocked)
};

inline constexpr int kRingSizeBuckets = 10;  // 16 KiB .. 8 MiB
inline constexpr int kReasonSlots = 32;      // known fallback reasons + "other"

// Process (arena) counters. Slots up to kScalarCounters are plain counts; then
// the rings allocated by size (bucket b = 16 KiB << b), then fallbacks by
// reason slot (ReasonSlot) decided locally and by peer.
enum Counter : uint32_t {
  kConnShmClient,
  kConnShmServer,
  kConnTcpClient,
  kConnTcpServer,
  kHandshakeErrClient,
  kHandshakeErrServer,
  kListeners,
  kBytesOut,
  kBytesIn,
  kSendCalls,
  kRecvCalls,
  kRingFullLocal,
  kRingFullPeer,
  kDoorbellsSent,
  kDoorbellsReceived,
  kSleeps,
  kSpinWakeups,
  kSegmentsCreated,
  kSlotsReused,
  kConnRdmaClient,  // accelerated cross-host (RDMA) connections
  kConnRdmaServer,
  kLinkGroups,    // link groups created
  kLinksAdded,    // links that became active
  kLinkFailures,  // an active link declared dead
  kFailovers,     // a dead link's traffic moved to a surviving link
  kScalarCounters,
  kRingSizes = kScalarCounters,
  kFallbackLocal = kRingSizes + kRingSizeBuckets,
  kFallbackPeer = kFallbackLocal + kReasonSlots,
  kNumCounters = kFallbackPeer + kReasonSlots,
};
inline constexpr int kCounterCount = kNumCounters;

// Counters kept per thread (events outside any connection lock: wake-ups).
// Thread counter i adds to process counter kDoorbellsSent + i.
enum ThreadCounter : uint32_t {
  kTDoorbellsSent,
  kTDoorbellsReceived,
  kTSleeps,
  kTSpinWakeups,
  kThreadCounters
};

struct alignas(64) ThreadBlock {
  std::atomic<uint64_t> v[kThreadCounters];
};

struct ProcCounters {
  std::atomic<uint64_t> v[kNumCounters];
};

// `usmc stats reset`: the totals at reset time. seq is odd while the CLI
// writes.
struct Baseline {
  std::atomic<uint64_t> seq;
  uint64_t reset_ns;  // CLOCK_REALTIME, 0 = never reset
  uint64_t v[kNumCounters];
};

// The header, the counters and the baseline have a page each (the CLI maps the
// baseline's page to write it).
inline constexpr uint64_t kArenaPageBytes = 4096;
static_assert(sizeof(ProcCounters) <= kArenaPageBytes);
static_assert(sizeof(Baseline) <= kArenaPageBytes);

struct ArenaHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_bytes;  // sizeof(ArenaHeader)
  uint32_t record_bytes;  // sizeof(engine::ConnState)
  uint32_t record_capacity;
  uint32_t thread_capacity;
  uint32_t counters_compiled;  // 0 when built with USMC_COUNTERS=OFF
  uint64_t counters_off;
  uint64_t baseline_off;
  uint64_t thread_bitmap_off;
  uint64_t threads_off;
  uint64_t record_bitmap_off;
  uint64_t records_off;
  uint64_t total_bytes;
  int32_t pid;  // creator
  char comm[16];
  uint64_t start_ns;  // CLOCK_REALTIME at creation
  std::atomic<uint32_t>
      record_high;  // no record at or above this index was ever used
  std::atomic<uint32_t> thread_high;
};
static_assert(sizeof(ArenaHeader) <= kArenaPageBytes);

inline constexpr uint32_t kReasonCodes[] = {
    wire::kDeclMem,         wire::kDeclTimeoutCl,   wire::kDeclTimeoutAl,
    wire::kDeclCnfErr,      wire::kDeclPeerNoSmc,   wire::kDeclIpsec,
    wire::kDeclNoSmcDev,    wire::kDeclNoSmcdDev,   wire::kDeclNoSmcrDev,
    wire::kDeclModeUnsupp,  wire::kDeclRmbeEc,      wire::kDeclOptUnsupp,
    wire::kDeclDiffPrefix,  wire::kDeclNoActLink,   wire::kDeclNoSrvLink,
    wire::kDeclVersMismat,  wire::kDeclMaxDmb,      wire::kDeclSyncErr,
    wire::kDeclPeerDecl,    wire::kDeclIntErr,      wire::kDeclErrRtok,
    wire::kDeclErrRdyLnk,   wire::kDeclErrRegBuf,   wire::kDeclRule,
    wire::kDeclNoListener,  wire::kDeclClcTimeout,  wire::kDeclClcMalformed,
    wire::kDeclServerFirst, wire::kDeclUnsupported,
};
inline constexpr int kOtherReasonSlot = kReasonSlots - 1;
static_assert(sizeof(kReasonCodes) / sizeof(kReasonCodes[0]) < kReasonSlots);

// The counter slot of a fallback reason; unknown codes share kOtherReasonSlot.
inline int ReasonSlot(uint32_t code) {
  for (int i = 0;
       i < static_cast<int>(sizeof(kReasonCodes) / sizeof(kReasonCodes[0]));
       ++i) {
    if (kReasonCodes[i] == code) return i;
  }
  return kOtherReasonSlot;
}

// The code of a reason slot, 0 for kOtherReasonSlot and unused slots.
inline uint32_t ReasonSlotCode(int slot) {
  int n = static_cast<int>(sizeof(kReasonCodes) / sizeof(kReasonCodes[0]));
  return slot >= 0 && slot < n ? kReasonCodes[slot] : 0;
}

// Ring bucket of a ring size (16 KiB << bucket), clamped to the table.
inline int RingSizeBucket(uint32_t bytes) {
  int b = 0;
  while (b + 1 < kRingSizeBuckets && (16384u << b) < bytes) ++b;
  return b;
}

// Reset of a connection or a fallback in the CLC handshake (the connection is
// reset, not continued).
inline bool IsHandshakeError(uint32_t code) {
  return code == wire::kDeclClcTimeout || code == wire::kDeclClcMalformed ||
         code == wire::kDeclSyncErr || code == wire::kDeclIntErr ||
         code == wire::kDeclTimeoutCl || code == wire::kDeclTimeoutAl;
}

}  // namespace usmc::stats

#endif  // USMC_STATS_LAYOUT_H_
