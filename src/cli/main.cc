// usmc: the command-line front end. Dispatches to the subcommands.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"

#ifndef USMC_VERSION
#define USMC_VERSION "unknown"
#endif

namespace usmc::cli {
namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  bool short_help;  // whether -h also means --help
};

// `run` is not here: it parses its own options, so that in
// `usmc run prog --help` the --help goes to prog.
constexpr Command kCommands[] = {
    {"ss", SsCommand, true},
    {"stats", StatsCommand, true},
    {"bench", BenchCommand, false},  // bench may use -h for a host name
    {"bpf", BpfCommand, true},
};

bool WantsHelp(const Command& c, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--") == 0) return false;
    if (strcmp(argv[i], "--help") == 0) return true;
    if (c.short_help && strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

int HelpCommand(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(false);
    return 0;
  }
  if (strcmp(argv[1], "help") == 0) {
    PrintUsage(false);
    return 0;
  }
  if (PrintCommandHelp(argv[1])) return 0;
  fprintf(stderr, "usmc help: unknown command '%s'\n", argv[1]);
  fputs("Run 'usmc help' for the list of commands.\n", stderr);
  return 2;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(true);
    return 2;
  }
  const char* cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    printf("usmc %s\n", USMC_VERSION);
    return 0;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    PrintUsage(false);
    return 0;
  }
  if (strcmp(cmd, "help") == 0) return HelpCommand(argc - 1, argv + 1);
  if (strcmp(cmd, "run") == 0) return RunCommand(argc - 1, argv + 1);
  for (const Command& c : kCommands) {
    if (strcmp(cmd, c.name) != 0) continue;
    if (WantsHelp(c, argc - 1, argv + 1)) {
      PrintCommandHelp(c.name);
      return 0;
    }
    return c.fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "usmc: unknown command '%s'\n", cmd);
  fputs("Run 'usmc help' for the list of commands.\n", stderr);
  return 2;
}

}  // namespace
}  // namespace usmc::cli

int main(int argc, char** argv) { return usmc::cli::Main(argc, argv); }
