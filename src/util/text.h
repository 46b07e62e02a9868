// Allocation-free text helpers for code inside the preloaded library (no stdio
// there).
#ifndef USMC_UTIL_TEXT_H_
#define USMC_UTIL_TEXT_H_

#include <cstdint>

namespace usmc::util {

// Writes s (without its NUL) at p; returns the end.
inline char* AppendStr(char* p, const char* s) {
  while (*s != '\0') *p++ = *s++;
  return p;
}

// Writes v in decimal at p; returns the end.
inline char* AppendDecimal(char* p, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

}  // namespace usmc::util

#endif  // USMC_UTIL_TEXT_H_
