// usmc stats [show|reset] [--json] [--watch [SECS]] [--count N] [--pid PID]:
// counters of the processes running under usmc, like `smcd stats`, read from
// their arenas.
#include <time.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "cli/stats_report.h"
#include "stats/format.h"
#include "stats/snapshot.h"

namespace usmc::cli {
namespace {

struct StatsOptions {
  bool reset = false;
  bool json = false;
  bool watch = false;
  double secs = 1.0;
  long count = 0;  // --watch iterations, 0 = until interrupted
  pid_t pid = 0;
};

int Usage() {
  fputs(
      "usage: usmc stats [show | reset] [--json] [--watch [SECONDS]] [--count "
      "N] [--pid PID]\n",
      stderr);
  return 2;
}

bool Bad(const char* what, const char* value) {
  fprintf(stderr, "usmc stats: bad %s '%s'\n", what,
          value == nullptr ? "" : value);
  return false;
}

bool ParseArgs(int argc, char** argv, StatsOptions* o) {
  bool action_seen = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--json") == 0) {
      o->json = true;
    } else if (strcmp(a, "--watch") == 0 || strcmp(a, "-w") == 0) {
      o->watch = true;
      if (i + 1 < argc && stats::ParseSeconds(argv[i + 1], &o->secs)) ++i;
    } else if (strcmp(a, "--count") == 0) {
      if (!stats::ParseCount(i + 1 < argc ? argv[++i] : nullptr, &o->count))
        return Bad("--count", argv[i]);
    } else if (strcmp(a, "--pid") == 0) {
      if (!stats::ParsePid(i + 1 < argc ? argv[++i] : nullptr, &o->pid))
        return Bad("--pid", argv[i]);
    } else if (!action_seen &&
               (strcmp(a, "show") == 0 || strcmp(a, "reset") == 0)) {
      o->reset = strcmp(a, "reset") == 0;
      action_seen = true;
    } else {
      fprintf(stderr, "usmc stats: unexpected argument '%s'\n", a);
      return false;
    }
  }
  if (o->reset && o->watch) {
    fputs("usmc stats: reset does not go with --watch\n", stderr);
    return false;
  }
  return true;
}

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

std::string Report(const StatsOptions& o) {
  auto arenas = stats::ScanArenas(o.pid);
  return o.json ? StatsJson(arenas, RealtimeNs()) + "\n" : StatsText(arenas);
}

int Reset(const StatsOptions& o) {
  auto arenas = stats::ScanArenas(o.pid);
  int failed = 0;
  for (const auto& a : arenas) {
    std::string error;
    if (!stats::ResetArena(a, &error)) {
      fprintf(stderr, "usmc stats reset: pid %d: %s\n", a.creator,
              error.c_str());
      ++failed;
    }
  }
  if (o.json) {
    printf("{\"reset\":%zu,\"failed\":%d}\n", arenas.size() - failed, failed);
  } else {
    printf("usmc stats: reset %zu process%s\n", arenas.size() - failed,
           arenas.size() - failed == 1 ? "" : "es");
  }
  return failed == 0 ? 0 : 1;
}

void Sleep(double secs) {
  timespec ts{static_cast<time_t>(secs),
              static_cast<long>((secs - static_cast<time_t>(secs)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int Watch(const StatsOptions& o) {
  for (long n = 1;; ++n) {
    std::string report = Report(o);
    if (!o.json)
      fputs("\x1b[H\x1b[2J", stdout);  // home, clear: redraw in place like top
    fputs(report.c_str(), stdout);
    fflush(stdout);
    if (o.count > 0 && n >= o.count) return 0;
    Sleep(o.secs);
  }
}

}  // namespace

int StatsCommand(int argc, char** argv) {
  StatsOptions o;
  if (!ParseArgs(argc, argv, &o)) return Usage();
  if (o.reset) return Reset(o);
  if (o.watch) return Watch(o);
  fputs(Report(o).c_str(), stdout);
  return 0;
}

}  // namespace usmc::cli
