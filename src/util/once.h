// Values computed once and read from any thread, for code inside the preloaded
// library.
//
// A guarded function-local static would do, but sanitizer runtimes preloaded in
// front of libusmc.so misread its guard (TSan reports the initializing write
// racing with later reads). Once<T> uses std::call_once (pthread_once, which
// every sanitizer understands) over constant-initialized storage, so it is also
// safe to use before any constructor of the process ran.
#ifndef USMC_UTIL_ONCE_H_
#define USMC_UTIL_ONCE_H_

#include <atomic>
#include <mutex>

namespace usmc::util {

template <typename T>
class Once {
 public:
  constexpr Once() = default;
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;

  // The value `make()` returned on the first call.
  template <typename F>
  T Get(F make) {
    if (done_.load(std::memory_order_acquire)) return value_;
    std::call_once(flag_, [&] {
      value_ = make();
      done_.store(true, std::memory_order_release);
    });
    return value_;
  }

 private:
  std::once_flag flag_;
  std::atomic<bool> done_{false};
  T value_{};
};

}  // namespace usmc::util

#endif  // USMC_UTIL_ONCE_H_
