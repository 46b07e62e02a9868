// Whether a blocking call interrupted by a signal should resume (the handler
// had SA_RESTART) or fail with EINTR, as the kernel decides for a TCP
// recv/send. The preload tracks handlers and installs the real answer; the
// default (no tracking) is to report EINTR.
#ifndef USMC_ENGINE_SIGNALS_H_
#define USMC_ENGINE_SIGNALS_H_

namespace usmc::engine {

using RestartQuery = bool (*)();
void SetRestartQuery(RestartQuery q);
bool RestartAfterSignal();

}  // namespace usmc::engine

#endif  // USMC_ENGINE_SIGNALS_H_
