// The fd table: fd number -> Socket for the fds usmc manages. Plain fds have no
// entry.
//
// Lookups take no lock: a two-level array of atomic pointers whose pages are
// never freed, and Socket objects that are never returned to the allocator
// (recycled through a free list), so a lookup racing a close touches valid
// memory and validates its reference before use (get-unless-zero).
#ifndef USMC_PRELOAD_FDTABLE_H_
#define USMC_PRELOAD_FDTABLE_H_

#include <atomic>

#include "util/fd_pages.h"

namespace usmc::preload {

class Socket;
void UnrefSocket(Socket* s);

class FdTable {
 public:
  static constexpr int kMaxFd = 1 << 20;

  static FdTable& Get();
  // Quick check with no reference taken; only for choosing the passthrough
  // path.
  bool Maybe(int fd) const;
  // A referenced Socket for fd, or nullptr. Release with Socket::Unref.
  Socket* Acquire(int fd) const;
  // Installs s at fd, taking a table reference; fd must be free in the table.
  void Install(int fd, Socket* s);
  // Removes fd's entry and returns it; the caller owns the table reference it
  // held.
  Socket* Remove(int fd);
  // Calls f(socket) for every entry (a referenced Socket; repeated for dup'ed
  // fds). Visits only the pages that exist.
  template <typename F>
  void ForEach(F f) const;

 private:
  std::atomic<Socket*>* Slot(int fd, bool create) const {
    return pages_.Slot(fd, create);
  }
  util::FdPages<Socket, kMaxFd> pages_;
};

template <typename F>
void FdTable::ForEach(F f) const {
  pages_.ForEach([&](int fd, Socket*) {
    if (Socket* s = Acquire(fd); s != nullptr) {
      f(s);
      UnrefSocket(s);
    }
  });
}

// RAII reference to a Socket from the table.
class SocketRef {
 public:
  explicit SocketRef(int fd);
  ~SocketRef();
  SocketRef(const SocketRef&) = delete;
  SocketRef& operator=(const SocketRef&) = delete;
  Socket* get() const { return s_; }
  Socket* operator->() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

 private:
  Socket* s_;
};

}  // namespace usmc::preload

#endif  // USMC_PRELOAD_FDTABLE_H_
