#include "engine/handshake.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/arena.h"
#include "engine/links.h"
#include "util/log.h"
#include "util/once.h"
#include "util/sys.h"
#include "wire/decline.h"

namespace usmc::engine {

namespace {

constexpr int kOfferWaitMs = 1000;  // the offer is queued before the Accept;
                                    // this only covers a slow kernel

long EnvLong(const char* name, long dflt) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? strtol(v, nullptr, 0) : dflt;
}

}  // namespace

std::unique_ptr<Conn> MakeConn(int fd, shm::Side side, shm::Segment* seg,
                               uint32_t slot, RemoteConn* remote) {
  ConnState* st = Arena::Get().Alloc();
  if (st == nullptr) return nullptr;
  Conn::Setup s;
  s.tcp_fd = fd;
  s.side = side;
  s.st = st;
  s.seg = seg;
  s.slot = slot;
  s.remote = remote;
  if (remote != nullptr) AttachRecord(remote, st);
  return std::make_unique<Conn>(s);
}

uint64_t ClcDeadlineNs() {
  return static_cast<uint64_t>(EnvLong("USMC_CLC_TIMEOUT_MS", 6000)) * 1000000;
}

uint64_t HostPeerId() {
  static constinit util::Once<uint64_t> id;
  return id.Get([] {
    uint64_t h = 1469598103934665603ull;  // FNV-1a of the boot id: same for
                                          // every process of this boot
    char buf[64] = {0};
    int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD,
                                      "/proc/sys/kernel/random/boot_id",
                                      O_RDONLY | O_CLOEXEC));
    if (fd >= 0) {
      sys::Read(fd, buf, sizeof buf - 1);
      sys::Close(fd);
    }
    for (char* p = buf; *p != '\0'; ++p)
      h = (h ^ static_cast<uint8_t>(*p)) * 1099511628211ull;
    return h;
  });
}

uint32_t RingBytesFor(uint64_t requested) {
  uint32_t r = shm::kMinRingBytes;
  while (r < requested && r < shm::kMaxRingBytes) r <<= 1;
  return r;
}

uint32_t DefaultRingBytes() {
  // `usmc run -r/-t` export USMC_RCVBUF/USMC_SNDBUF (like smc_run); a slot's
  // two rings share a size.
  static constinit util::Once<uint32_t> bytes;
  return bytes.Get([] {
    long v = EnvLong("USMC_RING_BYTES", 256 * 1024);
    v = std::max({v, EnvLong("USMC_RCVBUF", 0), EnvLong("USMC_SNDBUF", 0)});
    return RingBytesFor(static_cast<uint64_t>(v));
  });
}

bool SendDecline(int fd, uint32_t code) {
  wire::Decline d;
  d.peer_id = HostPeerId();
  d.diagnosis = wire::IsWireDeclineCode(code) ? code : wire::kDeclIntErr;
  return SendClcMessage(fd, d);
}

bool SendClc(int fd, const uint8_t* buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = sys::Send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

wire::ParseStatus ReadClc(int fd, uint8_t* buf, size_t cap, size_t* len,
                          wire::ClcHeader* hdr) {
  ssize_t n = sys::Recv(fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0)
    return (errno == EAGAIN || errno == EINTR) ? wire::ParseStatus::kNeedMore
                                               : wire::ParseStatus::kMalformed;
  if (n == 0) return wire::ParseStatus::kMalformed;  // EOF inside the handshake
  wire::ParseStatus s = wire::ParseHeader({buf, static_cast<size_t>(n)}, hdr);
  if (s != wire::ParseStatus::kOk) return s;
  if (static_cast<size_t>(n) < hdr->length) return wire::ParseStatus::kNeedMore;
  ssize_t got = sys::Recv(fd, buf, hdr->length, MSG_DONTWAIT);
  if (got != hdr->length) return wire::ParseStatus::kMalformed;
  *len = hdr->length;
  return wire::ParseStatus::kOk;
}

// ---- client
// -------------------------------------------------------------------------------------

ClientHandshake::ClientHandshake(int tcp_fd, uint32_t ring_bytes, bool remote,
                                 bool wait_hello)
    : fd_(tcp_fd),
      ring_bytes_(ring_bytes),
      remote_(remote),
      wait_hello_(remote && wait_hello) {}

ClientHandshake::~ClientHandshake() {
  if (conn_) conn_->Close();
  if (rslot_held_) ReleaseRemoteSlot(rslot_);
}

HsResult ClientHandshake::Start() {
  if (wait_hello_) {
    awaiting_hello_ = true;
    return HsResult::kWantRead;
  }
  if (remote_) return SendProposal();
  shm::Station* station = LocalStation();
  if (station == nullptr) {
    reason_ = wire::kDeclNoSmcdDev;
    return HsResult::kReset;  // the server expects a proposal (marked SYN): we
                              // cannot go quiet
  }
  wire::Proposal p;
  p.peer_id = HostPeerId();
  p.pid = static_cast<uint32_t>(station->pid());
  p.station_nonce = station->nonce();
  p.rx_size_code = wire::CompressRingSize(ring_bytes_);
  p.tx_size_code = p.rx_size_code;
  if (!SendClcMessage(fd_, p)) {
    reason_ = wire::kDeclIntErr;
    return HsResult::kReset;
  }
  return HsResult::kWantRead;
}

HsResult ClientHandshake::Decline(uint32_t code) {
  reason_ = code;
  return SendDecline(fd_, code) ? HsResult::kFallback : HsResult::kReset;
}

bool ClientHandshake::GiveUp() {
  reason_ = wire::kDeclClcTimeout;
  if (awaiting_hello_) return true;  // nothing sent: nothing to decline
  return SendDecline(fd_, wire::kDeclTimeoutCl);
}

HsResult ClientHandshake::Step() {
  uint8_t buf[wire::kClcMaxSize];
  size_t len = 0;
  wire::ClcHeader hdr;
  wire::ParseStatus s = ReadClc(fd_, buf, sizeof buf, &len, &hdr);
  if (s == wire::ParseStatus::kNeedMore) return HsResult::kWantRead;
  if (s == wire::ParseStatus::kNotClc) {
    // The server wrote application data first: it fell back and will drop our
    // proposal (or, cross-host, it is no usmc server: we sent nothing).
    reason_ = awaiting_hello_ ? wire::kDeclPeerNoSmc : wire::kDeclServerFirst;
    return HsResult::kFallback;
  }
  if (s != wire::ParseStatus::kOk) {
    reason_ = wire::kDeclClcMalformed;
    return HsResult::kReset;
  }
  if (remote_ && hdr.type == wire::ClcType::kProposal) {
    if (awaiting_hello_) return OnHello(buf, len);
    return HsResult::kWantRead;  // a hello we did not wait for: skip it
  }
  if (hdr.type == wire::ClcType::kDecline) {
    wire::Decline d;
    bool ok = wire::Decode({buf, len}, &d) == wire::ParseStatus::kOk;
    reason_ = ok && d.diagnosis != 0 ? d.diagnosis : wire::kDeclPeerDecl;
    peer_declined_ = true;
    return HsResult::kFallback;
  }
  // The whole message was consumed by its length, so the stream is in step: a
  // bad Accept is declined and both ends carry on over TCP.
  wire::Accept a;
  wire::ParseStatus ds = hdr.type == wire::ClcType::kAccept
                             ? wire::Decode({buf, len}, &a)
                             : wire::ParseStatus::kMalformed;
  if (ds == wire::ParseStatus::kUnsupportedVersion)
    return Decline(wire::kDeclVersMismat);
  if (ds != wire::ParseStatus::kOk) return Decline(wire::kDeclClcMalformed);
  return OnAccept(a);
}

HsResult ClientHandshake::OnAccept(const wire::Accept& a) {
  if (remote_ || a.smcr) {
    return remote_ && a.smcr ? OnAcceptRemote(a)
                             : Decline(wire::kDeclModeUnsupp);
  }
  if (a.peer_id != HostPeerId()) return Decline(wire::kDeclNoSmcdDev);
  shm::Segment* seg =
      FindOfferedSegment(static_cast<pid_t>(a.server_pid), a.link_nonce,
                         a.segment_id, kOfferWaitMs);
  if (seg == nullptr) {
    USMC_LOG("fd=%d no segment %u of link %llx from pid %u (errno %d)", fd_,
             a.segment_id, static_cast<unsigned long long>(a.link_nonce),
             a.server_pid, errno);
    return Decline(wire::kDeclErrRtok);
  }
  uint32_t ring = wire::DecompressRingSize(a.c2s_size_code);
  if (a.slot >= seg->slot_count() || ring != seg->ring_bytes() ||
      wire::DecompressRingSize(a.s2c_size_code) != ring ||
      seg->slot(a.slot)->token.load(std::memory_order_acquire) !=
          a.conn_token) {
    USMC_LOG("fd=%d slot %u of segment %u does not match the Accept", fd_,
             a.slot, a.segment_id);
    return Decline(wire::kDeclErrRtok);
  }
  conn_ = MakeConn(fd_, shm::Side::kClient, seg, a.slot);
  if (!conn_) return Decline(wire::kDeclMem);
  wire::Confirm c;
  c.peer_id = HostPeerId();
  c.link_nonce = a.link_nonce;
  c.segment_id = a.segment_id;
  c.slot = a.slot;
  c.conn_token = a.conn_token;
  if (!SendClcMessage(fd_, c)) {
    reason_ = wire::kDeclIntErr;
    return HsResult::kReset;  // the destructor closes conn_
  }
  return HsResult::kDone;
}

}  // namespace usmc::engine
