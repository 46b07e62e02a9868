// Interposed fd lifetime and control calls: close, close_range, dup*, fcntl,
// ioctl, socket options, shutdown. Plain fds go straight to libc.
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "preload/epoll.h"
#include "preload/fdtable.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "stats/record.h"
#include "util/sys.h"

namespace usmc::preload {
namespace {

// Another fd number of this process that still points at s, or -1.
int OtherFdOf(Socket* s, int gone) {
  FdTable& t = FdTable::Get();
  for (int k = 0; k < FdTable::kMaxFd; ++k) {
    if (k == gone || !t.Maybe(k)) continue;
    Socket* o = t.Acquire(k);
    bool same = o == s;
    if (o != nullptr) o->Unref();
    if (same) return k;
  }
  return -1;
}

// Our part of closing fd (the caller closes the kernel fd afterwards).
void Forget(int fd) {
  ForgetBufferSize(fd);
  stats::FdClosed(fd);
  if (!FdTable::Get().Maybe(fd)) {
    if (EpollIsManaged(fd)) EpollClosed(fd);
    return;
  }
  Socket* s = FdTable::Get().Remove(fd);
  if (s == nullptr) return;
  EpollForget(fd, s);
  if (s->fds.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      s->state() == SockState::kActive) {
    engine::Conn* c = s->conn();
    c->Pump();  // unread doorbells would turn FIN into RST
    // Unread data: the peer must see a reset, as TCP gives it — but only when
    // the family's last holder goes (a forked holder keeps the socket;
    // SO_LINGER would outlive this close).
    bool last = c->state()->holders.load(std::memory_order_acquire) == 1;
    if (last && c->BytesReadable() > 0) {
      linger abort{1, 0};
      sys::SetSockOpt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    }
  } else if (s->fd() == fd) {
    int other = OtherFdOf(s, fd);
    if (other >= 0) s->set_fd(other);
  }
  s->Unref();
}

void Duplicated(int from, int to) {
  if (to < 0) return;
  SocketRef s(from);
  if (s) FdTable::Get().Install(to, s.get());
}

void SetNonBlock(int fd, bool on) {
  SocketRef s(fd);
  if (!s) return;
  std::lock_guard<std::mutex> lock(s->mu);
  s->nonblock = on;
  if (s->state() == SockState::kActive) s->conn()->SetNonBlocking(on);
}

int TimeoutMs(const void* v, socklen_t len) {
  if (len < sizeof(timeval)) return -1;
  const auto* tv = static_cast<const timeval*>(v);
  long ms = tv->tv_sec * 1000 + tv->tv_usec / 1000;
  return ms <= 0 ? -1 : static_cast<int>(ms);
}

// Makes a handshake socket usable for an operation that needs the outcome.
// False: the fd is plain.
bool Settle(int fd, Socket* s) {
  if (s->state() == SockState::kActive || s->state() == SockState::kListener)
    return true;
  if (s->Finish(0) && s->state() == SockState::kActive) return true;
  DropToPlain(fd, s);
  return false;
}

}  // namespace
}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

int close(int fd) {
  Forget(fd);
  return REAL(close)(fd);
}

int close_range(unsigned first, unsigned last, int flags) {
  if (!(flags & CLOSE_RANGE_CLOEXEC)) {
    unsigned end = last < static_cast<unsigned>(FdTable::kMaxFd)
                       ? last
                       : FdTable::kMaxFd - 1;
    for (unsigned fd = first; fd <= end; ++fd) Forget(static_cast<int>(fd));
  }
  return REAL(close_range)(first, last, flags);
}

int dup(int fd) {
  int r = REAL(dup)(fd);
  Duplicated(fd, r);
  return r;
}

int dup2(int from, int to) {
  if (from != to) Forget(to);
  int r = REAL(dup2)(from, to);
  if (from != to) Duplicated(from, r);
  return r;
}

int dup3(int from, int to, int flags) {
  if (from != to) Forget(to);
  int r = REAL(dup3)(from, to, flags);
  Duplicated(from, r);
  return r;
}

static int FcntlCommon(int fd, int cmd, long arg, bool is64) {
  auto real = is64 ? REAL_T(int (*)(int, int, ...), "fcntl64")
                   : REAL_T(int (*)(int, int, ...), "fcntl");
  if (real == nullptr) real = REAL_T(int (*)(int, int, ...), "fcntl");
  int r = real(fd, cmd, arg);
  if (r < 0 || !FdTable::Get().Maybe(fd)) return r;
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) Duplicated(fd, r);
  if (cmd == F_SETFL) SetNonBlock(fd, (arg & O_NONBLOCK) != 0);
  return r;
}

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return FcntlCommon(fd, cmd, arg, false);
}

int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return FcntlCommon(fd, cmd, arg, true);
}

int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (FdTable::Get().Maybe(fd)) {
    SocketRef s(fd);
    if (s && (req == FIONREAD || req == SIOCOUTQ) && Settle(fd, s.get()) &&
        s->state() == SockState::kActive) {
      size_t n = req == FIONREAD ? s->conn()->BytesReadable()
                                 : s->conn()->BytesUnacked();
      *static_cast<int*>(arg) = static_cast<int>(n);
      return 0;
    }
    if (s && req == FIONBIO && arg != nullptr)
      SetNonBlock(fd, *static_cast<int*>(arg) != 0);
  }
  return REAL_T(int (*)(int, unsigned long, ...), "ioctl")(fd, req, arg);
}

int setsockopt(int fd, int level, int name, const void* val, socklen_t len) {
  if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF) &&
      len >= sizeof(int)) {
    RememberBufferSize(fd, *static_cast<const int*>(val));
  }
  if (level == IPPROTO_TCP && (name == TCP_NODELAY || name == TCP_CORK) &&
      FdTable::Get().Maybe(fd)) {
    SocketRef s(fd);
    if (s && s->state() == SockState::kActive)
      return 0;  // the TCP socket only carries doorbells now
  }
  int r = REAL(setsockopt)(fd, level, name, val, len);
  if (r != 0 || level != SOL_SOCKET || !FdTable::Get().Maybe(fd)) return r;
  SocketRef s(fd);
  if (!s) return r;
  if (name == SO_RCVTIMEO) s->rcvtimeo_ms = TimeoutMs(val, len);
  if (name == SO_SNDTIMEO) s->sndtimeo_ms = TimeoutMs(val, len);
  return r;
}

int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  if (level == SOL_SOCKET && name == SO_ERROR && FdTable::Get().Maybe(fd)) {
    SocketRef s(fd);
    if (s && s->state() != SockState::kListener) {
      if (!s->Advance()) {
        DropToPlain(fd, s.get());
      } else if (s->state() == SockState::kActive && val != nullptr &&
                 len != nullptr && *len >= sizeof(int)) {
        *static_cast<int*>(val) = s->conn()->TakeError();
        *len = sizeof(int);
        return 0;
      }
    }
  }
  return REAL(getsockopt)(fd, level, name, val, len);
}

int shutdown(int fd, int how) {
  if (FdTable::Get().Maybe(fd)) {
    SocketRef s(fd);
    if (s && s->state() != SockState::kListener && Settle(fd, s.get())) {
      return s->conn()->Shutdown(how);
    }
  }
  return REAL(shutdown)(fd, how);
}

}  // extern "C"
