// Interposed data calls: read/write and the recv/send families, sendfile, and
// glibc's fortified entry points. An accelerated fd moves data through its
// Conn; everything else goes to libc.
#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "preload/fdtable.h"
#include "preload/real.h"
#include "preload/socket.h"
#include "util/log.h"
#include "util/sys.h"
#include "wire/decline.h"

namespace usmc::preload {
namespace {

constexpr uint64_t kServerFirstWaitNs =
    2000000;  // a non-blocking first write waits this long for the CLC

bool NonBlocking(Socket* s, int flags) {
  return s->nonblock || (flags & MSG_DONTWAIT);
}

// 1: use the Conn; 0: plain (use libc); -1: fail with errno.
int Route(int fd, Socket* s, bool for_write, int flags, int timeout_ms) {
  SockState st = s->state();
  if (st == SockState::kActive) return 1;
  if (st == SockState::kListener) return 0;
  if (for_write &&
      (st == SockState::kServerUnknown || st == SockState::kStripProposal)) {
    s->ServerWroteFirst();
    return 0;
  }
  if (st == SockState::kStripProposal) {
    uint64_t until =
        timeout_ms > 0 ? sys::NowNs() + uint64_t(timeout_ms) * 1000000 : 0;
    if (NonBlocking(s, flags)) until = sys::NowNs();
    if (!s->StripWait(until)) {
      DropToPlain(fd, s);
      return 0;
    }
    return -1;
  }
  uint64_t deadline = 0;
  if (NonBlocking(s, flags)) {
    uint64_t wait = (for_write && st == SockState::kServerHandshake)
                        ? kServerFirstWaitNs
                        : 0;
    deadline = sys::NowNs() + wait;
  } else if (timeout_ms > 0) {
    deadline = sys::NowNs() + uint64_t(timeout_ms) * 1000000;
  }
  bool alive = NonBlocking(s, flags) && deadline <= sys::NowNs()
                   ? s->Advance()
                   : s->Finish(deadline);
  if (!alive) {
    DropToPlain(fd, s);
    return 0;
  }
  if (s->state() == SockState::kActive) return 1;
  if (errno != EINTR) errno = EAGAIN;
  return -1;
}

template <typename Plain>
ssize_t DoRecv(int fd, const iovec* iov, int iovcnt, int flags, Plain plain) {
  if (!FdTable::Get().Maybe(fd)) return plain();
  SocketRef s(fd);
  if (!s) return plain();
  if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
    errno = (flags & MSG_OOB) ? EINVAL : EAGAIN;
    return -1;
  }
  int route = Route(fd, s.get(), false, flags, s->rcvtimeo_ms);
  if (route == 0) return plain();
  if (route < 0) return -1;
  return s->conn()->Recv(iov, iovcnt, flags, s->rcvtimeo_ms);
}

template <typename Plain>
ssize_t DoSend(int fd, const iovec* iov, int iovcnt, int flags, Plain plain) {
  if (!FdTable::Get().Maybe(fd)) return plain();
  SocketRef s(fd);
  if (!s) return plain();
  int route = Route(fd, s.get(), true, flags, s->sndtimeo_ms);
  if (route == 0) return plain();
  if (route < 0) return -1;
  return s->conn()->Send(iov, iovcnt, flags, s->sndtimeo_ms);
}

ssize_t SendFileActive(int out, int in, off_t* offset, size_t count) {
  std::vector<char> buf(std::min<size_t>(count, 64 * 1024));
  size_t done = 0;
  while (done < count) {
    size_t want = std::min(buf.size(), count - done);
    ssize_t n = offset != nullptr ? pread(in, buf.data(), want, *offset)
                                  : read(in, buf.data(), want);
    if (n <= 0) {
      if (done > 0) break;
      return n;
    }
    ssize_t w = send(out, buf.data(), static_cast<size_t>(n), 0);
    if (w <= 0) {
      if (done > 0) break;
      return w;
    }
    done += static_cast<size_t>(w);
    if (offset != nullptr) *offset += w;
    if (w < n) {
      if (offset == nullptr) lseek(in, w - n, SEEK_CUR);
      break;
    }
  }
  return static_cast<ssize_t>(done);
}

}  // namespace
}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below
namespace shm = usmc::shm;
namespace sys = usmc::sys;

extern "C" {

ssize_t read(int fd, void* buf, size_t n) {
  iovec iov{buf, n};
  return DoRecv(fd, &iov, 1, 0, [&] { return REAL(read)(fd, buf, n); });
}

ssize_t readv(int fd, const iovec* iov, int iovcnt) {
  return DoRecv(fd, iov, iovcnt, 0,
                [&] { return REAL(readv)(fd, iov, iovcnt); });
}

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  iovec iov{buf, n};
  return DoRecv(fd, &iov, 1, flags,
                [&] { return REAL(recv)(fd, buf, n, flags); });
}

ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr,
                 socklen_t* alen) {
  iovec iov{buf, n};
  ssize_t r = DoRecv(fd, &iov, 1, flags, [&] {
    return REAL(recvfrom)(fd, buf, n, flags, addr, alen);
  });
  if (r >= 0 && alen != nullptr && FdTable::Get().Maybe(fd)) *alen = 0;
  return r;
}

ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  ssize_t r = DoRecv(fd, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags,
                     [&] { return REAL(recvmsg)(fd, msg, flags); });
  if (r >= 0 && FdTable::Get().Maybe(fd)) {
    msg->msg_namelen = 0;
    msg->msg_controllen = 0;
    msg->msg_flags = 0;
  }
  return r;
}

int recvmmsg(int fd, mmsghdr* msgs, unsigned vlen, int flags,
             timespec* timeout) {
  if (!FdTable::Get().Maybe(fd))
    return REAL(recvmmsg)(fd, msgs, vlen, flags, timeout);
  unsigned i = 0;
  for (; i < vlen; ++i) {
    int f = flags & ~MSG_WAITFORONE;
    if (i > 0 && (flags & MSG_WAITFORONE)) f |= MSG_DONTWAIT;
    ssize_t r = recvmsg(fd, &msgs[i].msg_hdr, f);
    if (r < 0) {
      if (i > 0) break;
      return -1;
    }
    msgs[i].msg_len = static_cast<unsigned>(r);
    if (r == 0) {
      ++i;
      break;
    }
  }
  return static_cast<int>(i);
}

ssize_t write(int fd, const void* buf, size_t n) {
  iovec iov{const_cast<void*>(buf), n};
  return DoSend(fd, &iov, 1, 0, [&] { return REAL(write)(fd, buf, n); });
}

ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  return DoSend(fd, iov, iovcnt, 0,
                [&] { return REAL(writev)(fd, iov, iovcnt); });
}

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  iovec iov{const_cast<void*>(buf), n};
  return DoSend(fd, &iov, 1, flags,
                [&] { return REAL(send)(fd, buf, n, flags); });
}

ssize_t sendto(int fd, const void* buf, size_t n, int flags,
               const sockaddr* addr, socklen_t alen) {
  iovec iov{const_cast<void*>(buf), n};
  return DoSend(fd, &iov, 1, flags,
                [&] { return REAL(sendto)(fd, buf, n, flags, addr, alen); });
}

ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  return DoSend(fd, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags,
                [&] { return REAL(sendmsg)(fd, msg, flags); });
}

int sendmmsg(int fd, mmsghdr* msgs, unsigned vlen, int flags) {
  if (!FdTable::Get().Maybe(fd)) return REAL(sendmmsg)(fd, msgs, vlen, flags);
  unsigned i = 0;
  for (; i < vlen; ++i) {
    ssize_t r = sendmsg(fd, &msgs[i].msg_hdr, flags);
    if (r < 0) {
      if (i > 0) break;
      return -1;
    }
    msgs[i].msg_len = static_cast<unsigned>(r);
  }
  return static_cast<int>(i);
}

ssize_t sendfile(int out, int in, off_t* offset, size_t count) {
  if (!FdTable::Get().Maybe(out)) return REAL(sendfile)(out, in, offset, count);
  SocketRef s(out);
  if (!s || Route(out, s.get(), true, 0, s->sndtimeo_ms) == 0)
    return REAL(sendfile)(out, in, offset, count);
  return SendFileActive(out, in, offset, count);
}

ssize_t sendfile64(int out, int in, off64_t* offset, size_t count) {
  return sendfile(out, in, reinterpret_cast<off_t*>(offset), count);
}

ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __builtin_trap();
  return read(fd, buf, n);
}

ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __builtin_trap();
  return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                       sockaddr* addr, socklen_t* alen) {
  if (n > buflen) __builtin_trap();
  return recvfrom(fd, buf, n, flags, addr, alen);
}

}  // extern "C"
