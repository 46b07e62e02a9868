// Interposed connection set-up calls: listen, accept, accept4, connect. They
// decide, before any byte flows, whether a connection is offered the same-host
// link (registry + SYN mark) and create the Socket that runs the handshake.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <vector>

#include "bpf/capability.h"
#include "engine/remote.h"
#include "link/shm/registry.h"
#include "link/shm/synmark.h"
#include "preload/fdtable.h"
#include "preload/process.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "stats/record.h"
#include "util/log.h"
#include "util/sys.h"
#include "wire/decline.h"

namespace usmc::preload {
namespace {

bool IsTcpSocket(int fd) {
  int type = 0, proto = 0, domain = 0;
  socklen_t l = sizeof type;
  if (sys::GetSockOpt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 ||
      type != SOCK_STREAM)
    return false;
  l = sizeof domain;
  if (sys::GetSockOpt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) != 0)
    return false;
  if (domain != AF_INET && domain != AF_INET6) return false;
  l = sizeof proto;
  return sys::GetSockOpt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) == 0 &&
         proto == IPPROTO_TCP;
}

void RegisterListener(int fd) {
  if (FdTable::Get().Maybe(fd) || !IsTcpSocket(fd)) return;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (sys::GetSockName(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
  std::string rule;
  if (!Rules().ShouldAccelerate(util::Role::kServer,
                                reinterpret_cast<sockaddr*>(&ss), len, &rule)) {
    USMC_LOG("fd=%d listener stays TCP: rule '%s'", fd, rule.c_str());
    return;
  }
  int v6only = 0;
  socklen_t l = sizeof v6only;
  if (ss.ss_family == AF_INET6)
    sys::GetSockOpt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l);
  shm::RegistryEntry entry;
  if (!shm::EnableSavedSyn(fd) ||
      !shm::RegisterListener(reinterpret_cast<sockaddr*>(&ss), len, v6only != 0,
                             &entry)) {
    USMC_LOG("fd=%d listener stays TCP: cannot register (errno %d)", fd, errno);
    return;
  }
  Socket* s = Socket::New(SockState::kListener, Role::kServer, fd);
  s->registry = entry;
  s->ring_bytes = TakeRingBytes(fd);
  FdTable::Get().Install(fd, s);
  s->Unref();
  stats::RecordListener(fd, reinterpret_cast<sockaddr*>(&ss));
  USMC_LOG("fd=%d listener accelerated (rule '%s')", fd, rule.c_str());
}

enum class Remote { kNo, kByRule, kBySignal };

// An unmarked connection from another host whose rules say its peer runs
// usmc, or whose SYN carried the BPF signal: a CLC message comes first. When
// the signal says so, the client may be waiting for our hello.
Remote ExpectsRemoteProposal(int fd) {
  // Most servers have neither: no system call for them on this path.
  const std::vector<util::Rule>& rules = Rules().rules();
  if (!bpf::SignalInstalled() &&
      std::none_of(rules.begin(), rules.end(),
                   [](const util::Rule& r) { return r.remote; })) {
    return Remote::kNo;
  }
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (sys::GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
      sys::GetPeerName(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0 ||
      shm::IsLocalAddress(reinterpret_cast<sockaddr*>(&peer), pl)) {
    return Remote::kNo;
  }
  if (bpf::LookupPeerCapability(fd) == bpf::PeerCapability::kCapable)
    return Remote::kBySignal;
  std::string rule;
  return Rules().Decide(util::Role::kServer,
                        reinterpret_cast<sockaddr*>(&local), ll,
                        &rule) == util::Decision::kRemote
             ? Remote::kByRule
             : Remote::kNo;
}

int Accepted(Socket* listener, int nfd, int flags) {
  shm::SynMark mark = shm::ReadSynMark(nfd);
  Remote remote = mark == shm::SynMark::kUnmarked ? ExpectsRemoteProposal(nfd)
                                                  : Remote::kNo;
  if (remote != Remote::kNo) mark = shm::SynMark::kMarked;
  if (mark == shm::SynMark::kUnmarked) {
    LogMode(nfd, false, Role::kServer, wire::kDeclPeerNoSmc);
    return nfd;
  }
  SockState st = mark == shm::SynMark::kMarked ? SockState::kServerHandshake
                                               : SockState::kServerUnknown;
  Socket* s = Socket::New(st, Role::kServer, nfd);
  s->nonblock = (flags & SOCK_NONBLOCK) != 0;
  s->ring_bytes = listener->ring_bytes;
  s->remote = remote != Remote::kNo;
  s->say_hello = remote == Remote::kBySignal;
  FdTable::Get().Install(nfd, s);
  // The client sends its Proposal as soon as it is connected: it is often here
  // already, and answering now saves the application's event loop a round.
  // Not cross-host by rule: a link group belongs to a process, and a
  // fork-per-connection server must set its connection up in the child (the
  // hello of a signalled connection goes now; the Proposal follows it).
  if (st == SockState::kServerHandshake && remote != Remote::kByRule &&
      !s->Advance()) {
    DropToPlain(nfd, s);
  }
  s->Unref();
  return nfd;
}

struct LinkChoice {
  bool remote = false;   // the cross-host link, not the same-host one
  bool probe = false;    // ... if the BPF signal says the peer runs usmc
  bool decline = false;  // ... then only to decline it (rules say tcp)
};

// False with *why = 0: not a TCP connect usmc decides on; with a reason: a
// fallback (see PlainConnect). Cross-host, no SYN mark: the rules told both
// ends, or the BPF signal tells both during the TCP handshake.
bool WantsLink(int fd, const sockaddr* addr, socklen_t len, uint32_t* why,
               LinkChoice* c) {
  *why = 0;
  if (addr == nullptr ||
      (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
    return false;
  if (!IsTcpSocket(fd)) return false;
  std::string rule;
  util::Decision d = Rules().Decide(util::Role::kClient, addr, len, &rule);
  bool local = shm::IsLocalAddress(addr, len);
  bool signal = !local && bpf::SignalInstalled();
  if (d == util::Decision::kTcp) {
    USMC_LOG("fd=%d client rule '%s' says tcp", fd, rule.c_str());
    *why = wire::kDeclRule;
    c->remote = c->probe = c->decline = signal;
    return signal;
  }
  if (!local && (d == util::Decision::kRemote || signal)) {
    c->remote = true;
    c->probe = d != util::Decision::kRemote;
    return true;
  }
  if (!local || !shm::LookupListener(addr, len, true)) {
    *why = wire::kDeclNoListener;
    return false;
  }
  return true;
}

// A connect usmc leaves alone: logged and recorded once the kernel has bound
// the local address.
int PlainConnect(int fd, const sockaddr* addr, socklen_t len, uint32_t why) {
  int r = REAL(connect)(fd, addr, len);
  int err = errno;
  if (why != 0 && (r == 0 || err == EINPROGRESS)) {
    LogMode(fd, false, Role::kClient, why, nullptr, false, addr, len);
  }
  errno = err;
  return r;
}

// Blocking connect is done: run the handshake to its end, as the kernel's
// connect() does.
int FinishBlockingConnect(int fd, Socket* s) {
  if (s->Finish(0) && s->state() == SockState::kActive) return 0;
  if (s->state() != SockState::kActive && s->HandshakeInterest() != 0 &&
      errno == EINTR)
    return -1;
  if (s->state() == SockState::kStripProposal)
    return 0;  // fell back; an Accept may still come
  DropToPlain(fd, s);
  if (s->was_reset) {
    errno = s->reason == wire::kDeclClcTimeout ? ETIMEDOUT : ECONNRESET;
    return -1;
  }
  return 0;  // fell back: a connected plain TCP socket
}

}  // namespace
}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

int listen(int fd, int backlog) {
  int r = REAL(listen)(fd, backlog);
  if (r == 0 && !usmc::engine::InsideFabric()) RegisterListener(fd);
  return r;
}

int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  SocketRef ls(fd);
  if (!ls || ls->state() != SockState::kListener)
    return REAL(accept4)(fd, addr, len, flags);
  int nfd = REAL(accept4)(fd, addr, len, flags);
  return nfd < 0 ? nfd : Accepted(ls.get(), nfd, flags);
}

int accept(int fd, sockaddr* addr, socklen_t* len) {
  SocketRef ls(fd);
  if (!ls || ls->state() != SockState::kListener)
    return REAL(accept)(fd, addr, len);
  int nfd = REAL(accept)(fd, addr, len);
  return nfd < 0 ? nfd : Accepted(ls.get(), nfd, 0);
}

int connect(int fd, const sockaddr* addr, socklen_t len) {
  if (usmc::engine::InsideFabric()) return REAL(connect)(fd, addr, len);
  if (FdTable::Get().Maybe(fd)) {
    SocketRef s(fd);
    if (s && s->state() != SockState::kListener) {
      if (!s->Advance()) {
        DropToPlain(fd, s.get());
        return REAL(connect)(fd, addr, len);
      }
      errno = s->state() == SockState::kActive ? EISCONN : EALREADY;
      return -1;
    }
  }
  // A second connect() on a socket the kernel already connected is how event
  // loops (hiredis) learn that a non-blocking connect finished: the decision
  // was made on the first call.
  sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  if (sys::GetPeerName(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) {
    return REAL(connect)(fd, addr, len);
  }
  uint32_t why = 0;
  LinkChoice choice;
  if (!WantsLink(fd, addr, len, &why, &choice))
    return PlainConnect(fd, addr, len, why);
  bool remote = choice.remote;
  shm::SavedTos saved;
  if (!remote && !shm::MarkSyn(fd, &saved)) return REAL(connect)(fd, addr, len);
  bool nonblock = (sys::Fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
  int r = REAL(connect)(fd, addr, len);
  int err = errno;
  if (r != 0 && err != EINPROGRESS) {
    shm::UnmarkSyn(fd, saved);
    errno = err;
    return r;
  }
  Socket* s = Socket::New(SockState::kConnecting, Role::kClient, fd);
  s->nonblock = nonblock;
  s->ring_bytes = TakeRingBytes(fd);
  s->saved_tos = saved;
  s->remote = remote;
  s->probe_signal = choice.probe;
  s->decline_remote = choice.decline;
  FdTable::Get().Install(fd, s);
  if (r != 0) {
    s->Unref();
    errno = err;
    return r;
  }
  if (!s->ConnectDone()) {
    DropToPlain(fd, s);
    s->Unref();
    return 0;
  }
  if (nonblock) {
    s->Unref();
    return 0;
  }
  r = FinishBlockingConnect(fd, s);
  s->Unref();
  return r;
}

}  // extern "C"
