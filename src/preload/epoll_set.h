// EpollSet: usmc's half of one application epoll instance (see epoll.h for the
// scheme).
//
// Invariants: `entries` holds exactly the accelerated fds registered in this
// set, each with a Socket reference; their TCP sockets are in `inner_`, and
// `inner_` is in the application's epoll under `tag_` (a value no plain
// registration of this set uses). `mu_` guards the entries; it is never held
// while a handshake advances (that may call back into MakeNative).
#ifndef USMC_PRELOAD_EPOLL_SET_H_
#define USMC_PRELOAD_EPOLL_SET_H_

#include <signal.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace usmc::preload {

class Socket;

class EpollSet {
 public:
  static EpollSet* Create(
      int epfd);  // nullptr (errno) if epfd is not an epoll fd
  void Retire();  // the application closed the epoll fd

  int Ctl(int op, int fd, Socket* s, epoll_event* ev);
  int Wait(epoll_event* out, int max, int64_t timeout_ns, const sigset_t* mask);
  void MakeNative(int fd, Socket* s);
  void Forget(int fd, Socket* s);
  void AvoidTag(uint64_t data);  // a plain registration uses `data`: pick
                                 // another tag if it collides

 private:
  struct Entry {
    Socket* s = nullptr;
    uint32_t events = 0;
    epoll_data_t data{};
    bool disabled = false;  // EPOLLONESHOT fired
    bool deleted = false;  // EPOLL_CTL_DEL'd; kept (inner registration too) for
                           // a cheap re-ADD
    uint32_t inner_events = 0;
    uint64_t mark_in = ~0ull, mark_out = ~0ull;  // edge detection for EPOLLET
    uint32_t mark_flags = ~0u;
    bool wake_added = false;  // a cross-host connection's eventfd is in inner_
  };

  EpollSet(int epfd, int inner, uint64_t tag)
      : epfd_(epfd), inner_(inner), tag_(tag) {}
  int Collect(epoll_event* out, int max);
  bool Report(Entry& e, uint32_t ev, epoll_event* out);
  int Kernel(epoll_event* out, int max, int timeout_ms, const sigset_t* mask,
             bool collect);
  void ServiceInner();
  void UpdateInner(
      int fd, Socket* s);  // the handshake moved on: wait for what it needs now
  bool ArmAll(std::vector<Socket*>&
                  armed);  // false: something became ready; `armed` to undo
  uint32_t InnerInterest(Socket* s) const;
  void AddWake(int fd, Entry& e);

  int epfd_;
  int inner_;
  std::atomic<uint64_t> tag_;
  std::mutex mu_;
  std::unordered_map<int, Entry> entries_;
  unsigned rr_ = 0;
  unsigned calls_ = 0;
  bool retired_ = false;
};

}  // namespace usmc::preload

#endif  // USMC_PRELOAD_EPOLL_SET_H_
