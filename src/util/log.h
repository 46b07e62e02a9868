// Decision log: one line per decision to stderr (USMC_DEBUG=1) or to a file
// (USMC_LOG=FILE). Never called on the data path. Thread-safe;
// async-signal-unsafe.
#ifndef USMC_UTIL_LOG_H_
#define USMC_UTIL_LOG_H_

namespace usmc::util {

// Reads USMC_DEBUG / USMC_LOG once. Cheap to call again.
void LogInit();
bool LogEnabled();

// printf-style; prefixes "usmc[pid]: " and appends a newline. Preserves errno.
void Log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// The fd of the USMC_LOG file (O_APPEND|O_CLOEXEC), or -1. The preload layer
// should keep the application from closing or dup2()-ing over it.
int LogFd();

// Closes the log file and forgets the configuration, so the next call reads
// the environment again. For tests only; not thread-safe.
void LogResetForTesting();

}  // namespace usmc::util

#define USMC_LOG(...)                                               \
  do {                                                              \
    if (::usmc::util::LogEnabled()) ::usmc::util::Log(__VA_ARGS__); \
  } while (0)

#endif  // USMC_UTIL_LOG_H_
