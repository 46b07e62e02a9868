// Process-wide state of the preload: initialization, the rules, fork and signal
// bookkeeping.
#ifndef USMC_PRELOAD_PROCESS_H_
#define USMC_PRELOAD_PROCESS_H_

#include "util/rules.h"

namespace usmc::preload {

// The rules in force (from the environment at start-up). Malformed rules
// disable acceleration: the error is printed once and every connection stays
// TCP.
const util::RuleSet& Rules();

// After a signal interrupted a blocking wait: did its handler ask for
// SA_RESTART? (signal_calls.cc)
bool SignalRestartQuery();

}  // namespace usmc::preload

#endif  // USMC_PRELOAD_PROCESS_H_
