// Decision log: one line per decision to stderr (USMC_DEBUG=1) or to a file (USMC_LOG=FILE).
// Never called on the data path. Thread-safe; async-signal-unsafe.
#ifndef USMC_UTIL_LOG_H_
#define USMC_UTIL_LOG_H_

namespace usmc::util {

// Reads USMC_DEBUG / USMC_LOG once. Cheap to call again.
void LogInit();
bool LogEnabled();

// printf-style; prefixes "usmc[pid]: " and appends a newline. Preserves errno.
void Log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace usmc::util

#define USMC_LOG(...)                                  \
  do {                                                 \
    if (::usmc::util::LogEnabled()) ::usmc::util::Log(__VA_ARGS__); \
  } while (0)

#endif  // USMC_UTIL_LOG_H_
