#include "link/shm/station.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <new>

#include "util/sys.h"
#include "util/text.h"

namespace usmc::shm {
namespace {

constexpr char kMagic[8] = {'U', 'S', 'M', 'C', 'L', 'N', 'K', '1'};
constexpr int kBacklog = 4096;    // the kernel caps it at net.core.somaxconn
constexpr int kMaxFdsPerMsg = 4;  // room to see (and close) extra fds
constexpr int kAcceptBatch = 64;  // per TakeOffer pass
constexpr int kDrainBatch = 64;   // messages per connection per pass
constexpr int kMaxStashPerPid =
    8;  // one process cannot evict everybody's offers
constexpr uint64_t kPollSliceNs =
    2000000;  // re-check the stash: another thread may read ours
constexpr uint64_t kSendWaitNs =
    200000000;  // SendOffer waits this long for a full queue

struct OfferMsg {
  char magic[8];
  uint64_t link_nonce;
  uint32_t segment_id;
  uint32_t pad;
  uint64_t segment_bytes;
};
static_assert(sizeof(OfferMsg) == 32, "OfferMsg has no padding");

struct StationAddr {
  sockaddr_un sun;
  socklen_t len;
};

// Writes "usmc.S.<pid>.<nonce as 16 hex digits>" (no NUL) and returns its end.
char* FormatName(pid_t pid, uint64_t nonce, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  memcpy(p, "usmc.S.", 7);
  p = util::AppendDecimal(p + 7, static_cast<uint64_t>(pid));
  *p++ = '.';
  for (int shift = 60; shift >= 0; shift -= 4)
    *p++ = kHex[(nonce >> shift) & 0xF];
  return p;
}

void MakeAddr(pid_t pid, uint64_t nonce, StationAddr* a) {
  memset(&a->sun, 0, sizeof a->sun);
  a->sun.sun_family = AF_UNIX;
  char* end = FormatName(pid, nonce,
                         a->sun.sun_path + 1);  // sun_path[0] = '\0': abstract
  a->len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                  (end - a->sun.sun_path));
}

const sockaddr* AsSockaddr(const StationAddr& a) {
  return reinterpret_cast<const sockaddr*>(&a.sun);
}

// A memfd (not any shmem file, device or disk file) holding at least `bytes`.
bool IsMemfdOfSize(int fd, uint64_t bytes) {
  if (sys::Fcntl(fd, F_GET_SEALS) < 0)
    return false;  // only shmem/hugetlbfs files have seals
  char path[40] = "/proc/self/fd/";
  *util::AppendDecimal(path + 14, static_cast<uint64_t>(fd)) = '\0';
  char target[16];
  ssize_t n = sys::ReadLinkAt(AT_FDCWD, path, target, sizeof target);
  if (n >= 0 && (n < 7 || memcmp(target, "/memfd:", 7) != 0)) return false;
  if (n < 0 && errno != ENOENT)
    return false;  // ENOENT: no /proc mounted, the seals must do
  struct stat st;
  if (sys::Fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return bytes > 0 && static_cast<uint64_t>(st.st_size) >= bytes;
}

// Stores the SCM_RIGHTS fds of `m` in fds[] and returns how many there are.
int CollectFds(msghdr* m, int* fds, int max) {
  int n = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(m); c != nullptr; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && n < max; ++i) {
      memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  return n;
}

enum class Rx { kOffer, kDropped, kNone, kGone };

// Receives one message from a station connection without blocking.
Rx ReceiveOffer(int fd, Offer* out) {
  OfferMsg msg;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFdsPerMsg)];
  iovec iov{&msg, sizeof msg};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctrl;
  m.msg_controllen = sizeof ctrl;
  ssize_t n = sys::RecvMsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? Rx::kNone : Rx::kGone;
  int fds[kMaxFdsPerMsg];
  int nfds = CollectFds(&m, fds, kMaxFdsPerMsg);
  if (n == 0 && nfds == 0)
    return Rx::kGone;  // EOF (or an empty message: only its sender loses)
  bool ok = n == static_cast<ssize_t>(sizeof msg) &&
            (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0 && nfds == 1 &&
            memcmp(msg.magic, kMagic, sizeof kMagic) == 0 && msg.pad == 0 &&
            IsMemfdOfSize(fds[0], msg.segment_bytes);
  if (!ok) {
    for (int i = 0; i < nfds; ++i) sys::Close(fds[i]);
    return Rx::kDropped;
  }
  out->link_nonce = msg.link_nonce;
  out->segment_id = msg.segment_id;
  out->segment_bytes = msg.segment_bytes;
  out->memfd = fds[0];
  out->conn_fd = -1;
  return Rx::kOffer;
}

}  // namespace

std::string StationName(pid_t pid, uint64_t nonce) {
  char buf[48];
  char* end = FormatName(pid, nonce, buf);
  return std::string(buf, end);
}

bool Station::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  if (listen_fd_ >= 0) return true;
  pid_t pid = sys::GetPid();
  for (int attempt = 0; attempt < 4; ++attempt) {
    uint64_t nonce = sys::Random64();
    StationAddr a;
    MakeAddr(pid, nonce, &a);
    int fd =
        sys::Socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    if (sys::Bind(fd, AsSockaddr(a), a.len) == 0 &&
        sys::Listen(fd, kBacklog) == 0) {
      listen_fd_ = fd;
      pid_ = pid;
      nonce_ = nonce;
      return true;
    }
    int err = errno;
    sys::Close(fd);
    errno = err;
    if (err != EADDRINUSE) return false;
  }
  return false;
}

void Station::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  CloseLocked();
}

void Station::ForgetAfterFork() {
  new (&mu_) std::mutex();  // single-threaded child: a lock held by a vanished
                            // thread is void
  CloseLocked();
}

void Station::CloseLocked() {
  for (Stashed& s : stash_) {
    if (s.offer.memfd >= 0) sys::Close(s.offer.memfd);
    s = Stashed();
  }
  for (Conn& c : conns_) {
    if (c.fd >= 0) sys::Close(c.fd);
    c = Conn();
  }
  if (listen_fd_ >= 0) sys::Close(listen_fd_);
  listen_fd_ = -1;
  pid_ = 0;
  nonce_ = 0;
}

bool Station::TakeOffer(uint64_t link_nonce, uint32_t segment_id,
                        pid_t server_pid, int timeout_ms, Offer* out) {
  const uint64_t deadline =
      sys::NowNs() +
      (timeout_ms > 0 ? static_cast<uint64_t>(timeout_ms) * 1000000u : 0);
  pollfd pfds[1 + kMaxConns];
  for (;;) {
    nfds_t n = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (listen_fd_ < 0) {
        errno = EBADF;
        return false;
      }
      if (TakeStashedLocked(link_nonce, segment_id, server_pid, out))
        return true;
      AcceptPendingLocked();
      for (int i = 0; i < kMaxConns; ++i) {
        if (conns_[i].fd >= 0 && conns_[i].pid == server_pid) DrainLocked(i);
      }
      if (TakeStashedLocked(link_nonce, segment_id, server_pid, out))
        return true;
      pfds[n++] = {listen_fd_, POLLIN, 0};
      for (const Conn& c : conns_) {
        if (c.fd >= 0 && c.pid == server_pid) pfds[n++] = {c.fd, POLLIN, 0};
      }
    }
    uint64_t now = sys::NowNs();
    if (now >= deadline) {
      errno = timeout_ms > 0 ? ETIMEDOUT : EAGAIN;
      return false;
    }
    uint64_t wait = std::min(deadline - now, kPollSliceNs);
    timespec ts{0, static_cast<long>(wait)};
    sys::Ppoll(pfds, n, &ts, nullptr);
  }
}

bool Station::TakeStashedLocked(uint64_t link_nonce, uint32_t segment_id,
                                pid_t server_pid, Offer* out) {
  Stashed* best = nullptr;
  for (Stashed& s : stash_) {
    if (s.offer.memfd >= 0 && s.pid == server_pid &&
        s.offer.link_nonce == link_nonce && s.offer.segment_id == segment_id &&
        (best == nullptr || s.seq < best->seq)) {
      best = &s;
    }
  }
  if (best == nullptr) return false;
  *out = best->offer;
  out->conn_fd = -1;
  if (best->conn >= 0) {
    out->conn_fd = conns_[best->conn].fd;
    conns_[best->conn].last_use = ++clock_;
  }
  *best = Stashed();
  return true;
}

void Station::AcceptPendingLocked() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    int fd = sys::Accept4(listen_fd_, nullptr, nullptr,
                          SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN: none pending (EMFILE etc.: try again next time)
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (sys::GetSockOpt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        cred.pid <= 0) {
      sys::Close(fd);  // pid 0: the server is in a pid namespace we cannot see
      continue;
    }
    AddConnLocked(fd, cred.pid);
  }
}

int Station::AddConnLocked(int fd, pid_t pid) {
  auto free_slot = [this] {
    for (int i = 0; i < kMaxConns; ++i) {
      if (conns_[i].fd < 0) return i;
    }
    return -1;
  };
  int slot = free_slot();
  if (slot < 0 && DropHungUpLocked(false) > 0) slot = free_slot();
  if (slot < 0) {
    slot = 0;
    for (int i = 1; i < kMaxConns; ++i) {
      if (conns_[i].last_use < conns_[slot].last_use) slot = i;
    }
    DropConnLocked(slot);
  }
  conns_[slot] = Conn{fd, pid, ++clock_};
  return slot;
}

void Station::DrainLocked(int conn) {
  for (int i = 0; i < kDrainBatch; ++i) {
    Offer offer;
    switch (ReceiveOffer(conns_[conn].fd, &offer)) {
      case Rx::kOffer:
        StashLocked(offer, conn);
        break;
      case Rx::kDropped:
        break;
      case Rx::kNone:
        return;
      case Rx::kGone:
        DropConnLocked(conn);
        return;
    }
  }
}

void Station::StashLocked(const Offer& offer, int conn) {
  const pid_t pid = conns_[conn].pid;
  int free_slot = -1, oldest = -1, oldest_same = -1, same = 0;
  for (int i = 0; i < kMaxStash; ++i) {
    const Stashed& s = stash_[i];
    if (s.offer.memfd < 0) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (oldest < 0 || s.seq < stash_[oldest].seq) oldest = i;
    if (s.pid == pid) {
      ++same;
      if (oldest_same < 0 || s.seq < stash_[oldest_same].seq) oldest_same = i;
    }
  }
  int slot = same >= kMaxStashPerPid ? oldest_same
             : free_slot >= 0        ? free_slot
                                     : oldest;
  if (stash_[slot].offer.memfd >= 0) sys::Close(stash_[slot].offer.memfd);
  stash_[slot].offer = offer;
  stash_[slot].pid = pid;
  stash_[slot].conn = conn;
  stash_[slot].seq = ++clock_;
}

void Station::DropConnLocked(int conn) {
  if (conns_[conn].fd >= 0) sys::Close(conns_[conn].fd);
  conns_[conn] = Conn();
  for (Stashed& s : stash_) {
    if (s.conn == conn) s.conn = -1;
  }
}

int Station::DropHungUp() {
  std::lock_guard<std::mutex> lock(mu_);
  return DropHungUpLocked(true);
}

// with_queued: also drop connections that still hold unread messages (a dead
// server's offers).
int Station::DropHungUpLocked(bool with_queued) {
  pollfd pfds[kMaxConns];
  int index[kMaxConns];
  nfds_t n = 0;
  for (int i = 0; i < kMaxConns; ++i) {
    if (conns_[i].fd < 0) continue;
    pfds[n] = {conns_[i].fd, 0, 0};  // POLLHUP/POLLERR are always reported
    index[n++] = i;
  }
  if (n == 0) return 0;
  timespec zero{0, 0};
  if (sys::Ppoll(pfds, n, &zero, nullptr) <= 0) return 0;
  int dropped = 0;
  for (nfds_t k = 0; k < n; ++k) {
    short ev = pfds[k].revents;
    bool hung_up = (ev & (POLLHUP | POLLERR | POLLNVAL)) != 0;
    if (!hung_up || (!with_queued && (ev & POLLIN) != 0)) continue;
    if ((ev & POLLNVAL) != 0)
      conns_[index[k]].fd = -1;  // closed behind our back: not ours now
    DropConnLocked(index[k]);
    ++dropped;
  }
  return dropped;
}

int ConnectStation(pid_t pid, uint64_t nonce) {
  StationAddr a;
  MakeAddr(pid, nonce, &a);
  int fd =
      sys::Socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  ucred cred{};
  socklen_t len = sizeof cred;
  bool ok = sys::Connect(fd, AsSockaddr(a), a.len) == 0 &&
            sys::GetSockOpt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
  if (ok && cred.pid != pid) {
    errno =
        EPERM;  // the name is bound by another process than the one it names
    ok = false;
  }
  if (!ok) {
    int err = errno;
    sys::Close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

bool SendOffer(int conn_fd, uint64_t link_nonce, uint32_t segment_id,
               uint64_t segment_bytes, int memfd) {
  if (memfd < 0) {
    errno = EBADF;
    return false;
  }
  OfferMsg msg{};
  memcpy(msg.magic, kMagic, sizeof kMagic);
  msg.link_nonce = link_nonce;
  msg.segment_id = segment_id;
  msg.segment_bytes = segment_bytes;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&msg, sizeof msg};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctrl;
  m.msg_controllen = sizeof ctrl;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &memfd, sizeof memfd);
  const uint64_t deadline = sys::NowNs() + kSendWaitNs;
  for (;;) {
    ssize_t n = sys::SendMsg(conn_fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof msg)) return true;
    if (n >= 0) {
      errno = EMSGSIZE;  // SOCK_SEQPACKET never sends part of a message
      return false;
    }
    if (errno == EINTR) continue;
    uint64_t now = sys::NowNs();
    if (errno != EAGAIN || now >= deadline) return false;
    pollfd p{conn_fd, POLLOUT, 0};
    timespec ts{
        0, static_cast<long>(std::min(deadline - now, uint64_t{100000000}))};
    sys::Ppoll(&p, 1, &ts, nullptr);
  }
}

}  // namespace usmc::shm
