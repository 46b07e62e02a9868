#include <cstdio>

#include "cli/commands.h"

namespace usmc::cli {

int BpfCommand(int, char**) {
  fprintf(stderr, "usmc bpf: not implemented yet\n");
  return 2;
}

}  // namespace usmc::cli
