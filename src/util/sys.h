// Raw system calls for code that runs inside the preloaded library.
//
// libusmc.so interposes close, connect, read, ... for the whole process, so any
// call usmc itself makes through the ordinary names would re-enter the
// interposer. Everything in src/ below the preload layer therefore talks to the
// kernel through these wrappers, which go straight to syscall(2): no PLT, no
// dlsym, no allocation. They return -1 and set errno like the libc calls they
// replace.
#ifndef USMC_UTIL_SYS_H_
#define USMC_UTIL_SYS_H_

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace usmc::sys {

inline long Ret(long r) {
  return r;
}  // syscall() already maps errors to -1/errno

inline int Socket(int domain, int type, int proto) {
  return static_cast<int>(syscall(SYS_socket, domain, type, proto));
}
inline int Close(int fd) { return static_cast<int>(syscall(SYS_close, fd)); }
inline int Open(const char* path, int flags, mode_t mode = 0) {
  return static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, flags, mode));
}
inline int Bind(int fd, const sockaddr* a, socklen_t l) {
  return static_cast<int>(syscall(SYS_bind, fd, a, l));
}
inline int Listen(int fd, int backlog) {
  return static_cast<int>(syscall(SYS_listen, fd, backlog));
}
inline int Connect(int fd, const sockaddr* a, socklen_t l) {
  return static_cast<int>(syscall(SYS_connect, fd, a, l));
}
inline int Accept4(int fd, sockaddr* a, socklen_t* l, int flags) {
  return static_cast<int>(syscall(SYS_accept4, fd, a, l, flags));
}
inline ssize_t Read(int fd, void* b, size_t n) {
  return syscall(SYS_read, fd, b, n);
}
inline ssize_t Write(int fd, const void* b, size_t n) {
  return syscall(SYS_write, fd, b, n);
}
inline ssize_t Recv(int fd, void* b, size_t n, int flags) {
  return syscall(SYS_recvfrom, fd, b, n, flags, nullptr, nullptr);
}
inline ssize_t Send(int fd, const void* b, size_t n, int flags) {
  return syscall(SYS_sendto, fd, b, n, flags, nullptr, 0);
}
inline ssize_t RecvMsg(int fd, msghdr* m, int flags) {
  return syscall(SYS_recvmsg, fd, m, flags);
}
inline ssize_t SendMsg(int fd, const msghdr* m, int flags) {
  return syscall(SYS_sendmsg, fd, m, flags);
}
inline int Shutdown(int fd, int how) {
  return static_cast<int>(syscall(SYS_shutdown, fd, how));
}
inline int GetSockOpt(int fd, int level, int name, void* v, socklen_t* l) {
  return static_cast<int>(syscall(SYS_getsockopt, fd, level, name, v, l));
}
inline int SetSockOpt(int fd, int level, int name, const void* v, socklen_t l) {
  return static_cast<int>(syscall(SYS_setsockopt, fd, level, name, v, l));
}
inline int GetSockName(int fd, sockaddr* a, socklen_t* l) {
  return static_cast<int>(syscall(SYS_getsockname, fd, a, l));
}
inline int GetPeerName(int fd, sockaddr* a, socklen_t* l) {
  return static_cast<int>(syscall(SYS_getpeername, fd, a, l));
}
inline int Fcntl(int fd, int cmd, long arg = 0) {
  return static_cast<int>(syscall(SYS_fcntl, fd, cmd, arg));
}
inline int Ioctl(int fd, unsigned long req, void* arg) {
  return static_cast<int>(syscall(SYS_ioctl, fd, req, arg));
}
inline int Dup3(int fd, int to, int flags) {
  return static_cast<int>(syscall(SYS_dup3, fd, to, flags));
}
inline int Ppoll(pollfd* fds, nfds_t n, const timespec* ts,
                 const sigset_t* mask) {
  return static_cast<int>(
      syscall(SYS_ppoll, fds, n, ts, mask, mask ? sizeof(uint64_t) : 0));
}
// poll() with a millisecond timeout (<0 = forever) via ppoll.
inline int Poll(pollfd* fds, nfds_t n, int timeout_ms) {
  if (timeout_ms < 0) return Ppoll(fds, n, nullptr, nullptr);
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return Ppoll(fds, n, &ts, nullptr);
}
inline int EpollCreate1(int flags) {
  return static_cast<int>(syscall(SYS_epoll_create1, flags));
}
inline int EpollCtl(int ep, int op, int fd, epoll_event* ev) {
  return static_cast<int>(syscall(SYS_epoll_ctl, ep, op, fd, ev));
}
inline int EpollPwait(int ep, epoll_event* evs, int n, int timeout_ms,
                      const sigset_t* mask) {
  return static_cast<int>(syscall(SYS_epoll_pwait, ep, evs, n, timeout_ms, mask,
                                  mask ? sizeof(uint64_t) : 0));
}
inline int MemfdCreate(const char* name, unsigned flags) {
  return static_cast<int>(syscall(SYS_memfd_create, name, flags));
}
inline int Ftruncate(int fd, off_t len) {
  return static_cast<int>(syscall(SYS_ftruncate, fd, len));
}
inline ssize_t GetRandom(void* b, size_t n, unsigned flags) {
  return syscall(SYS_getrandom, b, n, flags);
}
inline pid_t GetPid() { return static_cast<pid_t>(syscall(SYS_getpid)); }

// getpid() without a system call. A fork child forgets the cache (an atfork
// handler registered with the first use); a vfork child shares the parent's
// memory and must not touch it.
inline void ForgetPid();
inline std::atomic<pid_t>& PidCache() {
  static std::atomic<pid_t> pid{0};
  static const int registered =
      pthread_atfork(nullptr, nullptr, [] { ForgetPid(); });
  (void)registered;
  return pid;
}
inline pid_t CachedPid() {
  pid_t p = PidCache().load(std::memory_order_relaxed);
  if (p == 0) {
    p = GetPid();
    PidCache().store(p, std::memory_order_relaxed);
  }
  return p;
}
inline void ForgetPid() { PidCache().store(0, std::memory_order_relaxed); }

inline int Fstat(int fd, struct stat* st) {
  return static_cast<int>(syscall(SYS_fstat, fd, st));
}
inline ssize_t ReadLinkAt(int dirfd, const char* path, char* buf, size_t n) {
  return syscall(SYS_readlinkat, dirfd, path, buf, n);
}
// getsockopt/setsockopt of an int option.
inline int GetSockOptInt(int fd, int level, int name, int* v) {
  socklen_t l = sizeof *v;
  return GetSockOpt(fd, level, name, v, &l);
}
inline int SetSockOptInt(int fd, int level, int name, int v) {
  return SetSockOpt(fd, level, name, &v, sizeof v);
}

// Monotonic clock in nanoseconds (vDSO, no syscall).
inline uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

// A fast non-cryptographic 64-bit value (tokens that only catch mistakes, not
// attackers).
inline uint64_t FastRandom64() {
  static thread_local uint64_t state = 0;
  if (state == 0)
    state = NowNs() ^ (static_cast<uint64_t>(GetPid()) << 32) ^
            0x9E3779B97F4A7C15ull;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

// A random 64-bit value that is never 0.
inline uint64_t Random64() {
  uint64_t v = 0;
  while (v == 0) {
    if (GetRandom(&v, sizeof v, 0) != sizeof v)
      v = NowNs() ^ (static_cast<uint64_t>(GetPid()) << 32);
  }
  return v;
}

}  // namespace usmc::sys

#endif  // USMC_UTIL_SYS_H_
