// A map from fd number to a pointer, read without locks: a two-level array of
// atomic pointers whose pages are allocated on first use and never freed, so a
// reader racing a writer always touches valid memory. Used for the fd table,
// the fd records and the epoll sets.
#ifndef USMC_UTIL_FD_PAGES_H_
#define USMC_UTIL_FD_PAGES_H_

#include <atomic>

namespace usmc::util {

template <typename T, int kMaxFd = 1 << 20, int kPageShift = 12>
class FdPages {
 public:
  static constexpr int kMax = kMaxFd;
  static constexpr int kPageSize = 1 << kPageShift;
  static constexpr int kPages = kMaxFd >> kPageShift;

  constexpr FdPages() = default;

  // The slot of fd, or nullptr if fd is out of range or its page does not exist
  // (and !create).
  std::atomic<T*>* Slot(int fd, bool create) const {
    if (fd < 0 || fd >= kMaxFd) return nullptr;
    auto& page_ptr = pages_[fd >> kPageShift];
    std::atomic<T*>* page = page_ptr.load(std::memory_order_acquire);
    if (page == nullptr && create) {
      auto* fresh = new std::atomic<T*>[kPageSize]();
      if (page_ptr.compare_exchange_strong(page, fresh,
                                           std::memory_order_acq_rel)) {
        page = fresh;
      } else {
        delete[] fresh;
      }
    }
    return page == nullptr ? nullptr : &page[fd & (kPageSize - 1)];
  }

  // Calls f(fd, value) for every non-null slot of the pages that exist.
  template <typename F>
  void ForEach(F f) const {
    for (int p = 0; p < kPages; ++p) {
      std::atomic<T*>* page = pages_[p].load(std::memory_order_acquire);
      if (page == nullptr) continue;
      for (int i = 0; i < kPageSize; ++i) {
        if (T* v = page[i].load(std::memory_order_acquire); v != nullptr)
          f((p << kPageShift) + i, v);
      }
    }
  }

 private:
  mutable std::atomic<std::atomic<T*>*> pages_[kPages] = {};
};

}  // namespace usmc::util

#endif  // USMC_UTIL_FD_PAGES_H_
