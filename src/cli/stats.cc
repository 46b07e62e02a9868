#include <cstdio>

#include "cli/commands.h"

namespace usmc::cli {

int StatsCommand(int, char**) {
  fprintf(stderr, "usmc stats: not implemented yet\n");
  return 2;
}

}  // namespace usmc::cli
