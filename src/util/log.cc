// Output goes through sys::Write, never stdio: this runs inside the preloaded
// library, where write() is interposed and stdio buffers would interleave
// lines from several processes.
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>

#include "util/sys.h"

namespace usmc::util {
namespace {

constexpr int kUninit = -2;  // LogInit not run yet
constexpr int kOff = -1;     // logging disabled
// A line is written with one write(2); lines up to PIPE_BUF (4096) are also
// atomic on pipes. Kept small because Log runs on application stacks.
constexpr size_t kLineMax = 1024;

std::atomic<int> g_out{kUninit};  // fd lines go to, or kUninit / kOff
int g_file_fd = -1;               // the USMC_LOG file, if open
pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = sys::Write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Formats "usmc[pid]: <message>\n" into buf and returns its length.
size_t FormatLine(char* buf, size_t cap, int saved_errno, const char* fmt,
                  va_list ap) {
  int n = snprintf(buf, cap, "usmc[%d]: ", static_cast<int>(sys::CachedPid()));
  if (n < 0) n = 0;
  size_t head = static_cast<size_t>(n);
  size_t room = cap - head - 1;  // one byte kept for the newline
  errno = saved_errno;           // so that %m reports the caller's errno
  int m = vsnprintf(buf + head, room, fmt, ap);
  size_t len = m < 0 ? 0 : static_cast<size_t>(m);
  if (len >= room) {
    len = room - 1;
    memcpy(buf + head + len - 3, "...", 3);
  }
  len += head;
  if (len > head && buf[len - 1] == '\n') --len;
  buf[len++] = '\n';
  return len;
}

void VLineTo(int fd, int saved_errno, const char* fmt, va_list ap) {
  char buf[kLineMax];
  size_t len = FormatLine(buf, sizeof buf, saved_errno, fmt, ap);
  WriteAll(fd, buf, len);
}

void LineTo(int fd, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void LineTo(int fd, const char* fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  VLineTo(fd, saved, fmt, ap);
  va_end(ap);
  errno = saved;
}

bool DebugRequested() {
  const char* v = getenv("USMC_DEBUG");
  return v != nullptr && v[0] != '\0' && strcmp(v, "0") != 0;
}

int InitLocked() {
  int out = kOff;
  const char* path = secure_getenv("USMC_LOG");
  if (path != nullptr && path[0] != '\0') {
    g_file_fd =
        sys::Open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_file_fd >= 0) {
      out = g_file_fd;
    } else {
      LineTo(STDERR_FILENO, "cannot open USMC_LOG file '%s': %m", path);
    }
  }
  if (out == kOff && DebugRequested()) out = STDERR_FILENO;
  return out;
}

int OutFd() {
  int out = g_out.load(std::memory_order_acquire);
  if (out != kUninit) return out;
  LogInit();
  return g_out.load(std::memory_order_acquire);
}

}  // namespace

void LogInit() {
  if (g_out.load(std::memory_order_acquire) != kUninit) return;
  int saved = errno;
  pthread_mutex_lock(&g_init_mu);
  if (g_out.load(std::memory_order_relaxed) == kUninit) {
    g_out.store(InitLocked(), std::memory_order_release);
  }
  pthread_mutex_unlock(&g_init_mu);
  errno = saved;
}

bool LogEnabled() { return OutFd() >= 0; }

int LogFd() {
  OutFd();
  return g_file_fd;
}

void Log(const char* fmt, ...) {
  int saved = errno;
  int fd = OutFd();
  if (fd < 0) {
    errno = saved;
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  VLineTo(fd, saved, fmt, ap);
  va_end(ap);
  errno = saved;
}

void LogResetForTesting() {
  if (g_file_fd >= 0) sys::Close(g_file_fd);
  g_file_fd = -1;
  g_out.store(kUninit, std::memory_order_release);
}

}  // namespace usmc::util
