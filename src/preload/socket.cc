#include "preload/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "bpf/capability.h"
#include "preload/epoll.h"
#include "preload/fdtable.h"
#include "stats/record.h"
#include "util/log.h"
#include "util/sys.h"
#include "wire/decline.h"

namespace usmc::preload {

namespace {

std::mutex g_pool_mu;
Socket* g_free = nullptr;

void ResetTcp(int fd) {
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  sys::Connect(fd, &unspec,
               sizeof unspec);  // tcp_disconnect: RST, ECONNRESET for the app
}

// Doorbells are single bytes: Nagle would hold one back until the previous is
// acked (delayed ACK, ~40 ms). The application's own TCP_NODELAY/TCP_CORK no
// longer reach an accelerated socket.
void SetNoDelay(int fd) {
  int one = 1;
  sys::SetSockOpt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void FormatAddr(const sockaddr_storage& ss, char* out, size_t cap) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    snprintf(out, cap, "%s:%u", host, port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    snprintf(out, cap, "[%s]:%u", host, port);
  } else {
    snprintf(out, cap, "?");
  }
}

}  // namespace

Socket* Socket::New(SockState st, Role role, int fd) {
  Socket* s = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (g_free != nullptr) {
      s = g_free;
      g_free = s->next_free_;
    }
  }
  if (s == nullptr) s = new Socket();
  s->Reset(st, role, fd);
  return s;
}

Socket* Socket::Adopt(int fd, Role role, std::unique_ptr<engine::Conn> conn) {
  Socket* s = New(SockState::kActive, role, fd);
  s->nonblock = conn->nonblocking();
  s->conn_ = std::move(conn);
  return s;
}

void Socket::Reset(SockState st, Role role, int fd) {
  state_.store(st, std::memory_order_relaxed);
  role_ = role;
  fd_.store(fd, std::memory_order_relaxed);
  fds.store(0, std::memory_order_relaxed);
  rcvtimeo_ms = sndtimeo_ms = -1;
  ring_bytes = engine::DefaultRingBytes();
  nonblock = false;
  registry = shm::RegistryEntry();
  saved_tos = shm::SavedTos();
  hs_deadline_ns = 0;
  reason = 0;
  was_reset = false;
  next_free_ = nullptr;
  refs_.store(1, std::memory_order_release);  // the creator's reference
}

void Socket::Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }

bool Socket::TryRef() {
  int r = refs_.load(std::memory_order_relaxed);
  while (r > 0) {
    if (refs_.compare_exchange_weak(r, r + 1, std::memory_order_acq_rel))
      return true;
  }
  return false;
}

void Socket::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  Destroy();
  std::lock_guard<std::mutex> lock(g_pool_mu);
  next_free_ = g_free;
  g_free = this;
}

void Socket::Destroy() {
  if (conn_) conn_->Close();
  conn_.reset();
  client_hs_.reset();
  server_hs_.reset();
  registry.Close();
}

void Socket::set_fd(int fd) {
  fd_.store(fd, std::memory_order_relaxed);
  if (conn_) conn_->set_tcp_fd(fd);
}

bool Socket::OnResult(engine::HsResult r) {
  uint32_t why = client_hs_   ? client_hs_->reason()
                 : server_hs_ ? server_hs_->reason()
                              : 0;
  switch (r) {
    case engine::HsResult::kWantRead:
      if (sys::NowNs() < hs_deadline_ns) return true;
      reason = wire::kDeclClcTimeout;
      LogMode(fd(), false, role_,
              reason);  // before the reset, while the peer address is known
      if (role_ == Role::kClient && client_hs_->GiveUp()) {
        // Declined: the server (if it ever answers) falls back too; an Accept
        // it may already have sent is dropped at our first read.
        state_.store(SockState::kStripProposal, std::memory_order_release);
        EpollMakeNative(fd(), this);
        return true;
      }
      was_reset = true;
      ResetTcp(fd());
      return false;
    case engine::HsResult::kDone:
      conn_ = role_ == Role::kClient ? client_hs_->TakeConn()
                                     : server_hs_->TakeConn();
      conn_->SetNonBlocking(nonblock);
      SetNoDelay(fd());
      client_hs_.reset();
      server_hs_.reset();
      state_.store(SockState::kActive, std::memory_order_release);
      LogMode(fd(), true, role_, 0, conn_->state(), false, nullptr, 0,
              conn_->remote() != nullptr);
      return true;
    case engine::HsResult::kFallback:
      reason = why;
      LogMode(fd(), false, role_, why, nullptr,
              why == wire::kDeclPeerDecl ||
                  (client_hs_ && client_hs_->peer_declined()));
      return false;
    case engine::HsResult::kReset:
      reason = why;
      was_reset = true;
      LogMode(fd(), false, role_, why);
      ResetTcp(fd());
      return false;
  }
  return false;
}

// The BPF signal (bpf/capability.h) decides after the TCP handshake: a peer
// that did not signal gets plain TCP (kPlain); one that did runs the
// handshake (kHandshake) or, when our rules say tcp, is declined (kDeclined):
// it falls back at once, and the hello it sent at accept is dropped at our
// first read (kStripProposal).
Socket::Signal Socket::CheckSignal() {
  if (!probe_signal) return Signal::kHandshake;
  if (bpf::LookupPeerCapability(fd()) != bpf::PeerCapability::kCapable) {
    reason = wire::kDeclPeerNoSmc;
    LogMode(fd(), false, role_, reason);
    return Signal::kPlain;
  }
  if (!decline_remote) return Signal::kHandshake;
  reason = wire::kDeclRule;
  LogMode(fd(), false, role_, reason);
  if (!engine::SendDecline(fd(), wire::kDeclPeerNoSmc)) {
    was_reset = true;
    ResetTcp(fd());
    return Signal::kPlain;
  }
  state_.store(SockState::kStripProposal, std::memory_order_release);
  EpollMakeNative(fd(), this);
  return Signal::kDeclined;
}

bool Socket::StartClient() {
  switch (CheckSignal()) {
    case Signal::kPlain:
      return false;
    case Signal::kDeclined:
      return true;
    case Signal::kHandshake:
      break;
  }
  client_hs_ = std::make_unique<engine::ClientHandshake>(fd(), ring_bytes,
                                                         remote, probe_signal);
  hs_deadline_ns = sys::NowNs() + engine::ClcDeadlineNs();
  state_.store(SockState::kClientHandshake, std::memory_order_release);
  return OnResult(client_hs_->Start());
}

bool Socket::ConnectDone() {
  std::lock_guard<std::mutex> lock(mu);
  shm::UnmarkSyn(fd(), saved_tos);
  return StartClient();
}

bool Socket::AdvanceConnecting() {
  pollfd p{fd(), POLLOUT, 0};
  if (sys::Poll(&p, 1, 0) <= 0) return true;
  shm::UnmarkSyn(fd(), saved_tos);
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (sys::GetPeerName(fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    reason = wire::kDeclIntErr;  // connect failed: the app reads SO_ERROR from
                                 // the plain socket
    return false;
  }
  return StartClient();
}

bool Socket::AdvanceUnknown() {
  uint8_t head[wire::kClcHeaderSize];
  ssize_t n = sys::Recv(fd(), head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  wire::ClcHeader hdr;
  if (n == 0 || wire::ParseHeader({head, static_cast<size_t>(n)}, &hdr) ==
                    wire::ParseStatus::kNotClc) {
    reason = wire::kDeclPeerNoSmc;
    LogMode(fd(), false, role_, reason);
    return false;
  }
  server_hs_ = std::make_unique<engine::ServerHandshake>(fd(), ring_bytes);
  hs_deadline_ns = sys::NowNs() + engine::ClcDeadlineNs();
  state_.store(SockState::kServerHandshake, std::memory_order_release);
  return OnResult(server_hs_->Step());
}

bool Socket::AdvanceStrip() {
  uint8_t buf[wire::kClcMaxSize];
  size_t len = 0;
  wire::ClcHeader hdr;
  wire::ParseStatus s = engine::ReadClc(fd(), buf, sizeof buf, &len, &hdr);
  if (s == wire::ParseStatus::kNeedMore)
    return true;  // a proposal may still be arriving
  return false;   // dropped (kOk) or not a proposal: plain from here on
}

bool Socket::Advance() {
  std::lock_guard<std::mutex> lock(mu);
  switch (state()) {
    case SockState::kActive:
    case SockState::kListener:
      return true;
    case SockState::kConnecting:
      return AdvanceConnecting();
    case SockState::kClientHandshake:
      return OnResult(client_hs_->Step());
    case SockState::kServerHandshake:
      if (!StartServer()) return false;
      return OnResult(server_hs_->Step());
    case SockState::kServerUnknown:
      return AdvanceUnknown();
    case SockState::kStripProposal:
      return AdvanceStrip();
  }
  return false;
}

void Socket::ServerWroteFirst() {
  std::lock_guard<std::mutex> lock(mu);
  if (state() != SockState::kServerUnknown) return;
  reason = wire::kDeclServerFirst;
  state_.store(SockState::kStripProposal, std::memory_order_release);
  EpollMakeNative(fd(), this);
  LogMode(fd(), false, role_, reason);
}

uint32_t Socket::HandshakeInterest() const {
  switch (state()) {
    case SockState::kConnecting:
      return POLLOUT;
    case SockState::kClientHandshake:
    case SockState::kServerHandshake:
    case SockState::kServerUnknown:
    case SockState::kStripProposal:
      return POLLIN;
    default:
      return 0;
  }
}

bool Socket::Finish(uint64_t deadline_ns) {
  // No spinning here: every look at a handshake socket is a system call, and
  // the peer's answer needs its own wake-up anyway.
  while (true) {
    if (!Advance()) return false;
    uint32_t interest = HandshakeInterest();
    if (interest == 0 || state() == SockState::kStripProposal)
      return true;  // decided
    uint64_t now = sys::NowNs();
    uint64_t until =
        hs_deadline_ns != 0 ? hs_deadline_ns : now + engine::ClcDeadlineNs();
    if (deadline_ns != 0 && deadline_ns < until) until = deadline_ns;
    if (now >= until) {
      if (deadline_ns != 0 && deadline_ns <= now) {
        errno = EAGAIN;
        return true;  // the caller's own timeout, the handshake goes on
      }
      continue;  // Advance() turns the CLC deadline into a reset
    }
    pollfd p{fd(), static_cast<short>(interest), 0};
    int ms = static_cast<int>((until - now + 999999) / 1000000);
    if (sys::Poll(&p, 1, ms) < 0 && errno == EINTR) return true;
  }
}

bool Socket::StartServer() {
  if (server_hs_) return true;
  server_hs_ = std::make_unique<engine::ServerHandshake>(fd(), ring_bytes);
  hs_deadline_ns = sys::NowNs() + engine::ClcDeadlineNs();
  if (say_hello && !server_hs_->SendHello()) {
    reason = wire::kDeclIntErr;
    return false;
  }
  return true;
}

void Socket::RefuseRemote() {
  std::lock_guard<std::mutex> lock(mu);
  if (state() != SockState::kServerHandshake || !remote || !StartServer())
    return;
  server_hs_->RefuseRemote(wire::kDeclModeUnsupp);
}

engine::ConnState* Socket::SharedState() const {
  if (conn_) return conn_->state();
  if (server_hs_) return server_hs_->state();
  if (client_hs_) return client_hs_->state();
  return nullptr;
}

bool Socket::StripWait(uint64_t deadline_ns) {
  while (true) {
    if (!Advance())
      return false;  // the head of the stream is settled: plain from here on
    uint64_t now = sys::NowNs();
    if (deadline_ns != 0 && now >= deadline_ns) {
      errno = EAGAIN;
      return true;
    }
    int ms = deadline_ns == 0
                 ? -1
                 : static_cast<int>((deadline_ns - now + 999999) / 1000000);
    pollfd p{fd(), POLLIN, 0};
    if (sys::Poll(&p, 1, ms) < 0 && errno == EINTR) return true;
  }
}

uint32_t Socket::Events() const {
  return state() == SockState::kActive ? conn_->Events() : 0;
}

namespace {
std::mutex g_bufsize_mu;
std::unordered_map<int, uint32_t>* g_bufsize =
    nullptr;  // fd -> requested bytes
std::atomic<bool> g_bufsize_any{false};
}  // namespace

void RememberBufferSize(int fd, int bytes) {
  if (bytes <= 0) return;
  SocketRef s(fd);
  if (s) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->state() == SockState::kListener) {
      s->ring_bytes = std::max(
          s->ring_bytes, engine::RingBytesFor(static_cast<uint32_t>(bytes)));
    }
    return;  // an established connection keeps its rings, as SMC keeps its RMBs
  }
  std::lock_guard<std::mutex> lock(g_bufsize_mu);
  if (g_bufsize == nullptr) g_bufsize = new std::unordered_map<int, uint32_t>();
  uint32_t& v = (*g_bufsize)[fd];
  v = std::max(v, static_cast<uint32_t>(bytes));
  g_bufsize_any.store(true, std::memory_order_relaxed);
}

uint32_t TakeRingBytes(int fd) {
  uint32_t ring = engine::DefaultRingBytes();
  if (!g_bufsize_any.load(std::memory_order_relaxed)) return ring;
  std::lock_guard<std::mutex> lock(g_bufsize_mu);
  auto it = g_bufsize->find(fd);
  if (it == g_bufsize->end()) return ring;
  ring = engine::RingBytesFor(it->second);
  g_bufsize->erase(it);
  return ring;
}

void ForgetBufferSize(int fd) {
  if (!g_bufsize_any.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(g_bufsize_mu);
  g_bufsize->erase(fd);
}

void LogMode(int fd, bool accelerated, Role role, uint32_t reason,
             engine::ConnState* st, bool by_peer, const sockaddr* peer_addr,
             socklen_t peer_len, bool rdma) {
  int saved_errno = errno;
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  sys::GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &ll);
  if (peer_addr != nullptr && peer_len <= sizeof peer) {
    memcpy(&peer, peer_addr,
           peer_len);  // a connect still in progress has no peer name yet
  } else {
    sys::GetPeerName(fd, reinterpret_cast<sockaddr*>(&peer), &pl);
  }
  stats::Decision d;
  d.fd = fd;
  d.role = role == Role::kClient ? stats::kRoleClient : stats::kRoleServer;
  d.reason = accelerated ? 0 : reason;
  d.origin = by_peer ? stats::kOriginPeer : stats::kOriginLocal;
  d.st = accelerated ? st : nullptr;
  d.rdma = accelerated && rdma;
  d.local = reinterpret_cast<const sockaddr*>(&local);
  d.peer = reinterpret_cast<const sockaddr*>(&peer);
  if (!accelerated || st != nullptr) stats::RecordDecision(d);
  errno = saved_errno;
  if (!util::LogEnabled()) return;
  char l[80], p[80];
  FormatAddr(local, l, sizeof l);
  FormatAddr(peer, p, sizeof p);
  const char* r = role == Role::kClient ? "client" : "server";
  if (accelerated) {
    util::Log("fd=%d mode=%s role=%s local=%s peer=%s", fd,
              rdma ? "RDMA" : "SHM", r, l, p);
  } else {
    util::Log("fd=%d mode=TCP role=%s reason=%s local=%s peer=%s", fd, r,
              wire::DeclineName(reason), l, p);
  }
}

void DropToPlain(int fd, Socket* s) {
  FdTable& table = FdTable::Get();
  if (s->fds.load() > 1) {
    for (int k = 0; k < FdTable::kMaxFd && s->fds.load() > 1; ++k) {
      if (k == fd || !table.Maybe(k)) continue;
      Socket* other = table.Acquire(k);
      if (other == s && table.Remove(k) == s) {
        s->fds.fetch_sub(1);
        EpollMakeNative(k, s);
        s->Unref();
      }
      if (other != nullptr) other->Unref();
    }
  }
  if (table.Remove(fd) == s) {
    s->fds.fetch_sub(1);
    EpollMakeNative(fd, s);
    s->Unref();
  }
}

}  // namespace usmc::preload
