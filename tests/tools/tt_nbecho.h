// The non-blocking echo client of tt_client: sends the payload and checks the
// echo on one non-blocking socket, driven by poll, select or epoll.
//
//   poll | select | epoll : level-triggered readiness on the socket.
//   epoll2    : the socket is in TWO epoll sets; whenever the first reports
//               EPOLLIN, the second must report it too (no data was read in
//               between).
//   epollpipe : the payload reaches the loop through a pipe written by a
//               producer thread, so a kernel fd (pipe) and the socket share
//               one epoll set.
#ifndef USMC_TESTS_TOOLS_TT_NBECHO_H_
#define USMC_TESTS_TOOLS_TT_NBECHO_H_

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include <thread>

#include "tt_xfer.h"

namespace tt {

class NbEcho {
 public:
  NbEcho(int fd, const Payload& pl, std::string wait, std::string send_m,
         std::string recv_m)
      : fd_(fd),
        pl_(pl),
        wait_(std::move(wait)),
        send_m_(std::move(send_m)),
        recv_m_(std::move(recv_m)) {
    chk_.pl = &pl;
  }

  void Run() {
    SetNonBlocking(fd_, true);
    std::thread producer;
    if (wait_ == "epollpipe") producer = StartProducer();
    if (wait_.rfind("epoll", 0) == 0) SetUpEpoll();
    while (!eof_) {
      Ready r = Wait();
      if (r.pipe) ReadPipe();
      if (r.out) StepWrite();
      if (r.in) StepRead();
      MaybeShutdown();
    }
    chk_.Finish();
    if (producer.joinable()) producer.join();
    for (int fd : {ep_, ep2_, pipe_rd_})
      if (fd >= 0) close(fd);
  }

 private:
  struct Ready {
    bool in = false, out = false, pipe = false;
  };
  static constexpr size_t kPipeBuf = 256 * 1024;

  bool UsePipe() const { return pipe_rd_ >= 0; }
  bool WantOut() const {
    return !shut_ && (UsePipe() ? !pend_.empty() : sent_ < pl_.size);
  }
  bool WantPipe() const {
    return UsePipe() && !pipe_eof_ && pend_.size() < kPipeBuf;
  }

  std::thread StartProducer() {
    int p[2];
    Sys(pipe2(p, O_CLOEXEC), "pipe2");
    pipe_rd_ = p[0];
    SetNonBlocking(pipe_rd_, true);
    int wr = p[1];
    const Payload* pl = &pl_;
    return std::thread([wr, pl] {
      char buf[32768];
      for (uint64_t off = 0; off < pl->size; off += sizeof(buf)) {
        size_t k = pl->size - off < sizeof(buf) ? pl->size - off : sizeof(buf);
        FillPattern(pl->seed, off, buf, k);
        WriteAll(wr, buf, k);
      }
      close(wr);
    });
  }

  void ReadPipe() {
    char buf[65536];
    ssize_t k = read(pipe_rd_, buf, sizeof(buf));
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
    Sys(k, "read pipe");
    if (k == 0) pipe_eof_ = true;
    pend_.append(buf, k);
  }

  void StepWrite() {
    if (!WantOut()) return;
    ssize_t k;
    if (UsePipe()) {
      k = send(fd_, pend_.data(), pend_.size(), MSG_NOSIGNAL);
      if (k > 0) pend_.erase(0, k);
    } else {
      k = SendSome(fd_, pl_, sent_, pl_.size - sent_, send_m_);
    }
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
    Sys(k, "non-blocking send");
    sent_ += k;
  }

  void StepRead() {
    static char buf[65536];
    ssize_t k = RecvSome(fd_, buf, sizeof(buf), recv_m_);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
    Sys(k, "non-blocking receive");
    if (k == 0) eof_ = true;
    chk_.Take(buf, k);
  }

  void MaybeShutdown() {
    bool all = UsePipe() ? pipe_eof_ && pend_.empty() : sent_ == pl_.size;
    if (all && !shut_) {
      TT_CHECK(sent_ == pl_.size, "sent %llu of %llu bytes",
               (unsigned long long)sent_, (unsigned long long)pl_.size);
      Sys(shutdown(fd_, SHUT_WR), "shutdown");
      shut_ = true;
    }
  }

  void SetUpEpoll() {
    ep_ = Sys(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT;
    e.data.fd = fd_;
    Sys(epoll_ctl(ep_, EPOLL_CTL_ADD, fd_, &e), "epoll_ctl add");
    mask_ = e.events;
    if (UsePipe()) {
      e.events = EPOLLIN;
      e.data.fd = pipe_rd_;
      Sys(epoll_ctl(ep_, EPOLL_CTL_ADD, pipe_rd_, &e), "epoll_ctl add pipe");
    }
    if (wait_ == "epoll2") {
      ep2_ = Sys(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
      e.events = EPOLLIN;
      e.data.fd = fd_;
      Sys(epoll_ctl(ep2_, EPOLL_CTL_ADD, fd_, &e), "epoll_ctl add (2nd)");
    }
  }

  Ready Wait() {
    if (wait_ == "poll") return WaitPoll();
    if (wait_ == "select") return WaitSelect();
    TT_CHECK(ep_ >= 0, "unknown --io '%s'", wait_.c_str());
    return WaitEpoll();
  }

  Ready WaitPoll() {
    pollfd p{fd_, static_cast<short>(POLLIN | (WantOut() ? POLLOUT : 0)), 0};
    int n = poll(&p, 1, -1);
    if (n < 0 && errno == EINTR) return {};
    Sys(n, "poll");
    TT_CHECK(!(p.revents & POLLNVAL), "poll: POLLNVAL");
    bool err = p.revents & (POLLERR | POLLHUP);
    return {(p.revents & POLLIN) || err, (p.revents & POLLOUT) || err, false};
  }

  Ready WaitSelect() {
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(fd_, &rd);
    if (WantOut()) FD_SET(fd_, &wr);
    int n = select(fd_ + 1, &rd, &wr, nullptr, nullptr);
    if (n < 0 && errno == EINTR) return {};
    Sys(n, "select");
    return {FD_ISSET(fd_, &rd) != 0, FD_ISSET(fd_, &wr) != 0, false};
  }

  Ready WaitEpoll() {
    uint32_t want = EPOLLIN | (WantOut() ? uint32_t{EPOLLOUT} : 0u);
    if (want != mask_) {
      epoll_event e{};
      e.events = want;
      e.data.fd = fd_;
      Sys(epoll_ctl(ep_, EPOLL_CTL_MOD, fd_, &e), "epoll_ctl mod");
      mask_ = want;
    }
    if (UsePipe()) SetPipeInterest();
    epoll_event ev[4];
    int n = epoll_wait(ep_, ev, 4, -1);
    if (n < 0 && errno == EINTR) return {};
    Sys(n, "epoll_wait");
    Ready r;
    for (int i = 0; i < n; i++) {
      uint32_t e = ev[i].events;
      bool err = e & (EPOLLERR | EPOLLHUP);
      if (ev[i].data.fd == pipe_rd_) {
        r.pipe = true;
        continue;
      }
      r.in |= (e & EPOLLIN) || err;
      r.out |= (e & EPOLLOUT) || err;
      if ((e & EPOLLIN) && ep2_ >= 0) CheckSecondSet();
    }
    return r;
  }

  void SetPipeInterest() {
    bool want = WantPipe();
    if (want == pipe_armed_) return;
    epoll_event e{};
    e.events = want ? uint32_t{EPOLLIN} : 0u;
    e.data.fd = pipe_rd_;
    Sys(epoll_ctl(ep_, EPOLL_CTL_MOD, pipe_rd_, &e), "epoll_ctl mod pipe");
    pipe_armed_ = want;
  }

  void CheckSecondSet() {
    epoll_event e{};
    int n = Sys(epoll_wait(ep2_, &e, 1, 0), "epoll_wait (2nd set)");
    TT_CHECK(n == 1 && (e.events & EPOLLIN),
             "first epoll set reported EPOLLIN, second did not (n=%d ev=0x%x)",
             n, e.events);
    checks_2nd_++;
  }

  int fd_;
  const Payload& pl_;
  std::string wait_, send_m_, recv_m_;
  EchoCheck chk_;
  uint64_t sent_ = 0;
  bool shut_ = false, eof_ = false;
  int ep_ = -1, ep2_ = -1;
  uint32_t mask_ = 0;
  int pipe_rd_ = -1;
  bool pipe_eof_ = false, pipe_armed_ = true;
  std::string pend_;
  long checks_2nd_ = 0;

 public:
  uint64_t received_sum() const { return chk_.sum.h; }
  long checks_2nd() const { return checks_2nd_; }
};

}  // namespace tt

#endif  // USMC_TESTS_TOOLS_TT_NBECHO_H_
