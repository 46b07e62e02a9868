#include <cstdio>

#include "cli/commands.h"

namespace usmc::cli {

int SsCommand(int, char**) {
  fprintf(stderr, "usmc ss: not implemented yet\n");
  return 2;
}

}  // namespace usmc::cli
