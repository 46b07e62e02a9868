// Server-side protocol sessions of the test programs, written once as
// "bytes in -> bytes out" state machines so that every server model (blocking,
// threads, fork, exec, epoll, poll, select) runs exactly the same protocol.
//
//   echo      : every byte is sent back; EOF -> close.
//   banner    : server-first. Server: "TTBANNER 1 <token> <client addr>\n";
//               client: "HELLO <token> <nbytes> <seed>\n" + nbytes of
//               pattern(seed); server verifies them and answers
//               "DONE <nbytes> <fnv>\n", then closes.
//   halfclose : client sends bytes then shutdown(SHUT_WR); only after EOF the
//               server answers "SUM <nbytes> <fnv>\n" and closes.
//   http      : HTTP/1.1 keep-alive; "GET /<n>" answers n bytes of
//               pattern(seed = n); "GET /" answers "hello\n".
#ifndef USMC_TESTS_TOOLS_TT_PROTO_H_
#define USMC_TESTS_TOOLS_TT_PROTO_H_

#include <memory>
#include <string>

#include "tt_common.h"

namespace tt {

class Session {
 public:
  virtual ~Session() = default;
  // Output the server sends before reading anything.
  virtual void Start(std::string* /*out*/) {}
  // Consumes input; appends output. False on a protocol error (see error).
  virtual bool OnData(const char* p, size_t n, std::string* out) = 0;
  // The peer shut down its sending side. False on a protocol error.
  virtual bool OnEof(std::string* out) = 0;

  bool close_after_flush = false;
  std::string error;
  uint64_t bytes_in = 0;  // application payload bytes received
  Fnv sum;                // checksum of the payload received
  std::string peer;       // peer address, for the banner

 protected:
  void Count(const char* p, size_t n) {
    bytes_in += n;
    sum.Update(p, n);
  }
  bool Error(const std::string& e) {
    error = e;
    return false;
  }
};

class EchoSession : public Session {
 public:
  bool OnData(const char* p, size_t n, std::string* out) override {
    Count(p, n);
    out->append(p, n);
    return true;
  }
  bool OnEof(std::string*) override {
    close_after_flush = true;
    return true;
  }
};

class HalfCloseSession : public Session {
 public:
  bool OnData(const char* p, size_t n, std::string*) override {
    Count(p, n);
    return true;
  }
  bool OnEof(std::string* out) override {
    *out += "SUM " + std::to_string(bytes_in) + " " + Hex(sum.h) + "\n";
    close_after_flush = true;
    return true;
  }
};

class BannerSession : public Session {
 public:
  void Start(std::string* out) override {
    token_ = Hex(SplitMix(NowSec() * 1e9 + getpid()));
    *out += "TTBANNER 1 " + token_ + " " + peer + "\n";
  }
  bool OnData(const char* p, size_t n, std::string* out) override {
    if (expect_ < 0) return OnHelloBytes(p, n, out);
    if (n > static_cast<uint64_t>(expect_) - bytes_in)
      return Error("more payload than announced");
    size_t bad = FindMismatch(seed_, bytes_in, p, n);
    if (bad != n)
      return Error("payload mismatch at byte " +
                   std::to_string(bytes_in + bad));
    Count(p, n);
    if (bytes_in == static_cast<uint64_t>(expect_)) Finish(out);
    return true;
  }
  bool OnEof(std::string*) override {
    if (close_after_flush) return true;
    return Error("EOF after " + std::to_string(bytes_in) + " payload bytes");
  }

 private:
  bool OnHelloBytes(const char* p, size_t n, std::string* out) {
    for (size_t i = 0; i < n; i++) {
      if (p[i] != '\n') {
        line_ += p[i];
        if (line_.size() > 200) return Error("hello line too long");
        continue;
      }
      char tok[64];
      long long nbytes = 0;
      unsigned long long seed = 0;
      if (sscanf(line_.c_str(), "HELLO %63s %lld %llu", tok, &nbytes, &seed) !=
              3 ||
          token_ != tok || nbytes < 0)
        return Error("bad hello '" + line_ + "' (token " + token_ + ")");
      expect_ = nbytes;
      seed_ = seed;
      if (expect_ == 0) Finish(out);
      return i + 1 == n || OnData(p + i + 1, n - i - 1, out);
    }
    return true;
  }
  void Finish(std::string* out) {
    *out += "DONE " + std::to_string(bytes_in) + " " + Hex(sum.h) + "\n";
    close_after_flush = true;
  }

  std::string token_, line_;
  long long expect_ = -1;
  uint64_t seed_ = 0;
};

class HttpSession : public Session {
 public:
  bool OnData(const char* p, size_t n, std::string* out) override {
    Count(p, n);
    req_.append(p, n);
    size_t end;
    while ((end = req_.find("\r\n\r\n")) != std::string::npos) {
      std::string head = req_.substr(0, end);
      req_.erase(0, end + 4);
      if (!Answer(head, out)) return false;
    }
    return req_.size() < 16384 || Error("request header too long");
  }
  bool OnEof(std::string*) override {
    close_after_flush = true;
    return req_.empty() || Error("EOF inside a request");
  }

 private:
  bool Answer(const std::string& head, std::string* out) {
    char method[16], path[256];
    if (sscanf(head.c_str(), "%15s %255s HTTP/1.", method, path) != 2 ||
        strcmp(method, "GET") != 0)
      return Error("bad request line");
    std::string body;
    if (strcmp(path, "/") == 0) {
      body = "hello\n";
    } else {
      long long n = atoll(path + 1);
      if (n < 0 || n > (1ll << 30)) return Error("bad size");
      body.resize(n);
      FillPattern(n, 0, body.data(), n);
    }
    bool close = head.find("Connection: close") != std::string::npos;
    *out += "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n";
    *out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    *out += close ? "Connection: close\r\n\r\n" : "\r\n";
    *out += body;
    if (close) close_after_flush = true;
    return true;
  }
  std::string req_;
};

inline std::unique_ptr<Session> MakeSession(const std::string& proto) {
  if (proto == "echo") return std::make_unique<EchoSession>();
  if (proto == "halfclose") return std::make_unique<HalfCloseSession>();
  if (proto == "banner") return std::make_unique<BannerSession>();
  if (proto == "http") return std::make_unique<HttpSession>();
  Fail("unknown protocol '%s'", proto.c_str());
}

// Result of one served connection (fixed size: sent through pipes by
// fork/exec children, well below PIPE_BUF so the write is atomic).
struct ConnResult {
  uint64_t bytes = 0;
  uint64_t sum = 0;
  int ok = 0;
  char kind[8] = "";  // peer address kind: v4, v6, mapped
  char error[200] = "";
};

inline ConnResult ResultOf(const Session& s, bool ok, const char* kind) {
  ConnResult r;
  r.bytes = s.bytes_in;
  r.sum = s.sum.h;
  r.ok = ok ? 1 : 0;
  snprintf(r.kind, sizeof(r.kind), "%s", kind);
  snprintf(r.error, sizeof(r.error), "%s", s.error.c_str());
  return r;
}

// Serves one connection with blocking calls; closes fd.
inline ConnResult ServeBlocking(int fd, const std::string& proto) {
  std::unique_ptr<Session> s = MakeSession(proto);
  Addr peer = PeerOrUnknown(fd);
  s->peer = AddrStr(peer.sa());
  std::string out;
  s->Start(&out);
  static thread_local char buf[65536];
  bool ok = true;
  for (;;) {
    if (!out.empty()) WriteAll(fd, out);
    out.clear();
    if (s->close_after_flush) break;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s->error = std::string("read: ") + strerror(errno);
      ok = false;
      break;
    }
    ok = n == 0 ? s->OnEof(&out) : s->OnData(buf, n, &out);
    if (!ok) break;
    if (n == 0) {
      if (!out.empty()) WriteAll(fd, out);
      break;
    }
  }
  close(fd);
  return ResultOf(*s, ok, AddrKind(peer.sa()));
}

}  // namespace tt

#endif  // USMC_TESTS_TOOLS_TT_PROTO_H_
