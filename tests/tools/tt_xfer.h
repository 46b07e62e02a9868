// Data-transfer helpers of tt_client: one send/receive call through a chosen
// system call (write, send, writev, sendmsg, sendfile / read, recv, readv,
// recvmsg, recv MSG_WAITALL), and the checked receive side of a pattern
// stream. They behave like the system calls: -1 and errno on error, so they
// serve blocking and non-blocking sockets alike.
#ifndef USMC_TESTS_TOOLS_TT_XFER_H_
#define USMC_TESTS_TOOLS_TT_XFER_H_

#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include <string>

#include "tt_common.h"

namespace tt {

// The payload of one connection: pattern(seed), `size` bytes. For sendfile it
// is also materialised in a memfd.
struct Payload {
  uint64_t seed = 0;
  uint64_t size = 0;
  int file_fd = -1;

  Payload(uint64_t s, uint64_t n, bool need_file) : seed(s), size(n) {
    if (!need_file) return;
    file_fd = Sys(memfd_create("tt_payload", MFD_CLOEXEC), "memfd_create");
    char buf[65536];
    for (uint64_t off = 0; off < n; off += sizeof(buf)) {
      size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);
      FillPattern(seed, off, buf, k);
      WriteAll(file_fd, buf, k);
    }
  }
  ~Payload() {
    if (file_fd >= 0) close(file_fd);
  }
  Payload(const Payload&) = delete;
  Payload& operator=(const Payload&) = delete;
};

inline void CheckMethods(const std::string& send_m, const std::string& recv_m) {
  static const char* kSend[] = {"write", "send", "writev", "sendmsg",
                                "sendfile"};
  static const char* kRecv[] = {"read", "recv", "readv", "recvmsg", "waitall"};
  bool s = false, r = false;
  for (auto* m : kSend) s |= send_m == m;
  for (auto* m : kRecv) r |= recv_m == m;
  TT_CHECK(s, "unknown --send '%s'", send_m.c_str());
  TT_CHECK(r, "unknown --recv '%s'", recv_m.c_str());
}

// Sends up to n bytes of the payload starting at offset `off`.
inline ssize_t SendSome(int fd, const Payload& pl, uint64_t off, size_t n,
                        const std::string& m) {
  if (m == "sendfile") {
    off_t o = off;
    return sendfile(fd, pl.file_fd, &o, n);
  }
  static thread_local char buf[65536];
  if (n > sizeof(buf)) n = sizeof(buf);
  FillPattern(pl.seed, off, buf, n);
  if (m == "write") return write(fd, buf, n);
  if (m == "send") return send(fd, buf, n, MSG_NOSIGNAL);
  size_t a = n / 3, b = n / 2;  // uneven pieces
  iovec iov[3] = {{buf, a}, {buf + a, b - a}, {buf + b, n - b}};
  if (m == "writev") return writev(fd, iov, 3);
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 3;
  return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

// Receives up to n bytes into buf.
inline ssize_t RecvSome(int fd, char* buf, size_t n, const std::string& m) {
  if (m == "read") return read(fd, buf, n);
  if (m == "recv") return recv(fd, buf, n, 0);
  if (m == "waitall") return recv(fd, buf, n, MSG_WAITALL);
  size_t a = n / 4 + 1 < n ? n / 4 + 1 : n;
  iovec iov[2] = {{buf, a}, {buf + a, n - a}};
  if (m == "readv") return readv(fd, iov, 2);
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  ssize_t k = recvmsg(fd, &mh, 0);
  if (k >= 0 && (mh.msg_flags & MSG_TRUNC)) Fail("recvmsg: MSG_TRUNC");
  return k;
}

// The receive side of an echo: checks every byte against the payload.
struct EchoCheck {
  const Payload* pl;
  uint64_t got = 0;
  Fnv sum;

  void Take(const char* p, size_t n) {
    TT_CHECK(got + n <= pl->size, "echo returned %llu bytes, sent %llu",
             (unsigned long long)(got + n), (unsigned long long)pl->size);
    size_t bad = FindMismatch(pl->seed, got, p, n);
    TT_CHECK(bad == n, "echo mismatch at byte %llu",
             (unsigned long long)(got + bad));
    sum.Update(p, n);
    got += n;
  }
  void Finish() const {
    TT_CHECK(got == pl->size, "EOF after %llu of %llu echoed bytes",
             (unsigned long long)got, (unsigned long long)pl->size);
  }
};

// Blocking receive loop until EOF, checking MSG_WAITALL's promise.
inline void RecvAll(int fd, EchoCheck* chk, const std::string& m) {
  static thread_local char buf[65536];
  for (;;) {
    size_t want = sizeof(buf);
    if (m == "waitall" && chk->pl->size - chk->got < want)
      want = chk->pl->size - chk->got;
    if (want == 0) want = 1;  // expect EOF
    ssize_t k = RecvSome(fd, buf, want, m);
    if (k < 0 && errno == EINTR) continue;
    Sys(k, "receive");
    if (k == 0) break;
    TT_CHECK(m != "waitall" || static_cast<size_t>(k) == want,
             "MSG_WAITALL returned %zd of %zu bytes", k, want);
    chk->Take(buf, k);
  }
  chk->Finish();
}

// Blocking send of the whole payload.
inline void SendAll(int fd, const Payload& pl, const std::string& m) {
  for (uint64_t off = 0; off < pl.size;) {
    ssize_t k = SendSome(fd, pl, off, pl.size - off, m);
    if (k < 0 && errno == EINTR) continue;
    Sys(k, m.c_str());
    TT_CHECK(k > 0, "%s sent 0 bytes", m.c_str());
    off += k;
  }
}

inline uint64_t PayloadSum(const Payload& pl) {
  Fnv f;
  char buf[65536];
  for (uint64_t off = 0; off < pl.size; off += sizeof(buf)) {
    size_t k = pl.size - off < sizeof(buf) ? pl.size - off : sizeof(buf);
    FillPattern(pl.seed, off, buf, k);
    f.Update(buf, k);
  }
  return f.h;
}

}  // namespace tt

#endif  // USMC_TESTS_TOOLS_TT_XFER_H_
