// The usmc subcommands. Each returns the process exit status. argv[0] is the
// subcommand name ("run", "ss", ...), so getopt() works as usual.
#ifndef USMC_CLI_COMMANDS_H_
#define USMC_CLI_COMMANDS_H_

namespace usmc::cli {

int RunCommand(int argc, char** argv);    // usmc run [OPTIONS] [--] CMD ARGS
int SsCommand(int argc, char** argv);     // usmc ss
int StatsCommand(int argc, char** argv);  // usmc stats
int BenchCommand(int argc, char** argv);  // usmc bench
int BpfCommand(int argc, char** argv);    // usmc bpf install|uninstall

// help.cc: the manual page of `command` ("run", "ss", "stats", "bench", "bpf")
// on stdout; false if there is none. PrintUsage prints the command overview.
bool PrintCommandHelp(const char* command);
void PrintUsage(bool to_stderr);

}  // namespace usmc::cli

#endif  // USMC_CLI_COMMANDS_H_
