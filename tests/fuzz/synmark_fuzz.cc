// libFuzzer target for the saved-SYN parser (IPv4/IPv6 header + TCP header).
#include <cstddef>
#include <cstdint>

#include "link/shm/synmark.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)usmc::shm::ParseSavedSyn(data, static_cast<unsigned>(size));
  return 0;
}
