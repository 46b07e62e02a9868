// Rendering of `usmc stats`: the host total and one line/object per process.
#ifndef USMC_CLI_STATS_REPORT_H_
#define USMC_CLI_STATS_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "stats/snapshot.h"

namespace usmc::cli {

std::string StatsText(const std::vector<stats::ArenaSnapshot>& arenas);
std::string StatsJson(const std::vector<stats::ArenaSnapshot>& arenas,
                      uint64_t now_ns);

}  // namespace usmc::cli

#endif  // USMC_CLI_STATS_REPORT_H_
