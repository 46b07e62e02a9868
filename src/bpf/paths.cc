#include "bpf/paths.h"

#include <cstdio>
#include <cstdlib>

namespace usmc::bpf {

const char* PinDir() {
  const char* env = getenv(kPinDirEnv);
  return env != nullptr && env[0] != '\0' ? env : kDefaultPinDir;
}

bool PinPath(const char* dir, const char* name, char* buf, size_t size) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  return n > 0 && static_cast<size_t>(n) < size;
}

}  // namespace usmc::bpf
