// The libc functions usmc interposes, as the next object in the lookup order defines them.
// Passthrough calls go here so a plain socket keeps every libc behaviour (cancellation points,
// fortify checks, errno) it would have without usmc.
#ifndef USMC_PRELOAD_REAL_H_
#define USMC_PRELOAD_REAL_H_

#include <dlfcn.h>

// REAL(fn) is a pointer to the next definition of `fn`, resolved once (thread-safe static init).
#define REAL(fn)                                                               \
  ([]() {                                                                      \
    static auto* const p = reinterpret_cast<decltype(&::fn)>(dlsym(RTLD_NEXT, #fn)); \
    return p;                                                                  \
  }())

// For functions whose prototype is not in a header we include (the fortified __*_chk entry points).
#define REAL_T(type, name)                                                    \
  ([]() {                                                                     \
    static auto* const p = reinterpret_cast<type>(dlsym(RTLD_NEXT, name));    \
    return p;                                                                 \
  }())

#endif  // USMC_PRELOAD_REAL_H_
