// The libc functions usmc interposes, as the next object in the lookup order
// defines them. Passthrough calls go here so a plain socket keeps every libc
// behaviour (cancellation points, fortify checks, errno) it would have without
// usmc.
#ifndef USMC_PRELOAD_REAL_H_
#define USMC_PRELOAD_REAL_H_

#include <dlfcn.h>

#include <atomic>

namespace usmc::preload {

// Looks `name` up once. The cache is constant-initialized, so no guard variable
// (and no
// __cxa_guard_* call, which sanitizer runtimes intercept) runs, not even before
// they initialize.
inline void* ResolveNext(const char* name, std::atomic<void*>& cache) {
  void* p = cache.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = dlsym(RTLD_NEXT, name);
    cache.store(p, std::memory_order_release);
  }
  return p;
}

}  // namespace usmc::preload

#define USMC_REAL_SLOT_()                              \
  ([]() -> std::atomic<void*>& {                       \
    static constinit std::atomic<void*> slot{nullptr}; \
    return slot;                                       \
  }())

// REAL(fn) is a pointer to the next definition of `fn`.
#define REAL(fn)                     \
  reinterpret_cast<decltype(&::fn)>( \
      ::usmc::preload::ResolveNext(#fn, USMC_REAL_SLOT_()))

// For functions whose prototype is not in a header we include (the fortified
// __*_chk entry points).
#define REAL_T(type, name) \
  reinterpret_cast<type>(::usmc::preload::ResolveNext(name, USMC_REAL_SLOT_()))

#endif  // USMC_PRELOAD_REAL_H_
