// Interposed exec family: accelerated connections that survive the exec are
// described for the new image (preload/inherit.h). glibc's execvp & co. reach
// execve internally, past any interposer, so each entry point is covered here.
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "preload/inherit.h"
#include "preload/real.h"

extern char** environ;

namespace usmc::preload {
namespace {

constexpr char kPrefix[] = "USMC_INHERIT=";

// envp with USMC_INHERIT replaced by `value` (storage in `keep`).
std::vector<char*> WithInherit(char* const envp[], const std::string& value,
                               std::string* keep) {
  std::vector<char*> out;
  for (char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    if (strncmp(*e, kPrefix, sizeof kPrefix - 1) != 0) out.push_back(*e);
  }
  *keep = kPrefix + value;
  out.push_back(keep->data());
  out.push_back(nullptr);
  return out;
}

// Runs `exec(envp')` with the inherit description added; restores on failure.
template <typename Exec>
int WithPrepared(char* const envp[], Exec exec) {
  std::vector<int> undo;
  std::string desc = PrepareExec(&undo);
  if (desc.empty()) return exec(envp);
  std::string keep;
  std::vector<char*> env = WithInherit(envp, desc, &keep);
  int r = exec(env.data());
  int err = errno;
  ExecFailed(undo);
  errno = err;
  return r;
}

std::vector<char*> VaArgs(const char* arg0, va_list ap, char*** envp_out) {
  std::vector<char*> argv{const_cast<char*>(arg0)};
  while (char* a = va_arg(ap, char*)) argv.push_back(a);
  argv.push_back(nullptr);
  if (envp_out != nullptr) *envp_out = va_arg(ap, char**);
  return argv;
}

}  // namespace
}  // namespace usmc::preload

using namespace usmc::preload;  // NOLINT: the interposed C entry points below

extern "C" {

int execve(const char* path, char* const argv[], char* const envp[]) {
  return WithPrepared(
      envp, [&](char* const* e) { return REAL(execve)(path, argv, e); });
}

int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return WithPrepared(
      envp, [&](char* const* e) { return REAL(execvpe)(file, argv, e); });
}

int fexecve(int fd, char* const argv[], char* const envp[]) {
  return WithPrepared(
      envp, [&](char* const* e) { return REAL(fexecve)(fd, argv, e); });
}

int execv(const char* path, char* const argv[]) {
  return execve(path, argv, environ);
}

int execvp(const char* file, char* const argv[]) {
  return execvpe(file, argv, environ);
}

int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> argv = VaArgs(arg, ap, nullptr);
  va_end(ap);
  return execve(path, argv.data(), environ);
}

int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> argv = VaArgs(arg, ap, nullptr);
  va_end(ap);
  return execvpe(file, argv.data(), environ);
}

int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char** envp = nullptr;
  std::vector<char*> argv = VaArgs(arg, ap, &envp);
  va_end(ap);
  return execve(path, argv.data(), envp);
}

}  // extern "C"
