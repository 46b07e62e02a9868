// Non-blocking event-loop servers for tt_server: epoll level-triggered,
// edge-triggered, EPOLLONESHOT, poll and select, all serving tt_proto.h
// sessions with back-pressure (stop reading while 1 MiB is unsent).
//
// Level-triggered models do ONE read and ONE write attempt per readiness
// report and rely on being told again; the edge-triggered model must drain
// until EAGAIN; the one-shot model re-arms after every event. A readiness
// implementation that gets any of these wrong makes the test hang, which the
// watchdog turns into a failure.
#ifndef USMC_TESTS_TOOLS_TT_LOOP_H_
#define USMC_TESTS_TOOLS_TT_LOOP_H_

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include <map>
#include <memory>
#include <vector>

#include "tt_proto.h"

namespace tt {

enum class Model { kEpollLt, kEpollEt, kEpollOneshot, kPoll, kSelect };

struct LoopConn {
  int fd = -1;
  std::unique_ptr<Session> s;
  std::string out;
  size_t off = 0;
  bool eof = false, done = false, ok = true;
  std::string kind;
  size_t Pending() const { return out.size() - off; }
};

class Loop {
 public:
  Loop(int listen_fd, std::string proto, Model model, long target)
      : lfd_(listen_fd),
        proto_(std::move(proto)),
        model_(model),
        target_(target) {}

  std::vector<ConnResult> Run() {
    SetNonBlocking(lfd_, true);
    if (IsEpoll()) {
      ep_ = Sys(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
      Ctl(EPOLL_CTL_ADD, lfd_, EPOLLIN);
    }
    while (target_ == 0 || accepted_ < target_ || !conns_.empty()) {
      if (IsEpoll())
        WaitEpoll();
      else if (model_ == Model::kPoll)
        WaitPoll();
      else
        WaitSelect();
    }
    if (ep_ >= 0) close(ep_);
    return results_;
  }

 private:
  static constexpr size_t kHighWater = 1 << 20;

  bool IsEpoll() const {
    return model_ == Model::kEpollLt || model_ == Model::kEpollEt ||
           model_ == Model::kEpollOneshot;
  }
  bool Listening() const { return target_ == 0 || accepted_ < target_; }

  void Ctl(int op, int fd, uint32_t ev) {
    epoll_event e{};
    e.events = ev;
    e.data.fd = fd;
    Sys(epoll_ctl(ep_, op, fd, &e), "epoll_ctl");
  }

  bool WantRead(const LoopConn& c) const {
    return !c.eof && !c.s->close_after_flush && c.Pending() < kHighWater;
  }
  uint32_t Interest(const LoopConn& c) const {
    uint32_t ev = c.eof ? 0u : uint32_t{EPOLLRDHUP};
    if (WantRead(c)) ev |= EPOLLIN;
    if (c.Pending() > 0) ev |= EPOLLOUT;
    return ev;
  }

  void AcceptAll() {
    while (Listening()) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && (errno == EAGAIN || errno == EINTR)) return;
      Sys(fd, "accept4");
      accepted_++;
      LoopConn& c = conns_[fd];
      c.fd = fd;
      c.s = MakeSession(proto_);
      Addr peer = PeerOrUnknown(fd);
      c.s->peer = AddrStr(peer.sa());
      c.kind = AddrKind(peer.sa());
      c.s->Start(&c.out);
      if (model_ == Model::kEpollEt)
        Ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
      else if (IsEpoll())
        Ctl(EPOLL_CTL_ADD, fd,
            Interest(c) |
                (model_ == Model::kEpollOneshot ? uint32_t{EPOLLONESHOT} : 0u));
    }
    if (IsEpoll()) Ctl(EPOLL_CTL_DEL, lfd_, 0);
  }

  bool TryWrite(LoopConn* c) {
    if (c->Pending() == 0) return false;
    ssize_t n = send(c->fd, c->out.data() + c->off, c->Pending(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) Broken(c, "send");
      return false;
    }
    c->off += n;
    if (c->off == c->out.size()) {
      c->out.clear();
      c->off = 0;
    }
    return n > 0;
  }

  bool TryRead(LoopConn* c) {
    if (!WantRead(*c)) return false;
    static char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) Broken(c, "recv");
      return false;
    }
    if (n == 0) c->eof = true;
    bool ok = n == 0 ? c->s->OnEof(&c->out) : c->s->OnData(buf, n, &c->out);
    if (!ok) c->ok = false, c->done = true;
    return true;
  }

  void Broken(LoopConn* c, const char* what) {
    c->s->error = std::string(what) + ": " + strerror(errno);
    c->ok = false;
    c->done = true;
  }

  // One readiness step (drain = until nothing moves, for edge triggering).
  void Pump(LoopConn* c, bool drain) {
    for (;;) {
      bool progress = TryWrite(c);
      if (c->done) break;
      progress |= TryRead(c);
      if (c->done) break;
      if (c->Pending() == 0 && (c->s->close_after_flush || c->eof)) {
        c->done = true;
        break;
      }
      if (!drain || !progress) return;
    }
    results_.push_back(ResultOf(*c->s, c->ok, c->kind.c_str()));
    close(c->fd);  // also removes it from the epoll set
  }

  void Handle(int fd) {
    if (fd == lfd_) return AcceptAll();
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    LoopConn* c = &it->second;
    Pump(c, model_ == Model::kEpollEt);
    if (c->done) {
      conns_.erase(it);
    } else if (model_ == Model::kEpollLt) {
      Ctl(EPOLL_CTL_MOD, fd, Interest(*c));
    } else if (model_ == Model::kEpollOneshot) {
      Ctl(EPOLL_CTL_MOD, fd, Interest(*c) | EPOLLONESHOT);
    }
  }

  void WaitEpoll() {
    epoll_event ev[64];
    int n = epoll_wait(ep_, ev, 64, -1);
    if (n < 0 && errno == EINTR) return;
    Sys(n, "epoll_wait");
    for (int i = 0; i < n; i++) Handle(ev[i].data.fd);
  }

  void WaitPoll() {
    std::vector<pollfd> p;
    if (Listening()) p.push_back({lfd_, POLLIN, 0});
    for (auto& [fd, c] : conns_) {
      short ev = (WantRead(c) ? POLLIN : 0) | (c.Pending() ? POLLOUT : 0);
      p.push_back({fd, ev, 0});
    }
    int n = poll(p.data(), p.size(), -1);
    if (n < 0 && errno == EINTR) return;
    Sys(n, "poll");
    for (auto& q : p)
      if (q.revents) Handle(q.fd);
  }

  void WaitSelect() {
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    int maxfd = -1;
    auto add = [&](int fd, fd_set* s) {
      FD_SET(fd, s);
      if (fd > maxfd) maxfd = fd;
    };
    if (Listening()) add(lfd_, &rd);
    for (auto& [fd, c] : conns_) {
      if (WantRead(c)) add(fd, &rd);
      if (c.Pending()) add(fd, &wr);
    }
    int n = select(maxfd + 1, &rd, &wr, nullptr, nullptr);
    if (n < 0 && errno == EINTR) return;
    Sys(n, "select");
    for (int fd = 0; fd <= maxfd; fd++)
      if (FD_ISSET(fd, &rd) || FD_ISSET(fd, &wr)) Handle(fd);
  }

  int lfd_;
  std::string proto_;
  Model model_;
  long target_;
  long accepted_ = 0;
  int ep_ = -1;
  std::map<int, LoopConn> conns_;
  std::vector<ConnResult> results_;
};

}  // namespace tt

#endif  // USMC_TESTS_TOOLS_TT_LOOP_H_
