// usmc bench: runs the benchmark driver, bench/usmc_bench.py (python3), with
// the remaining arguments and the build tree this usmc belongs to.
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"

#ifndef USMC_SOURCE_DIR
#define USMC_SOURCE_DIR ""
#endif

namespace usmc::cli {
namespace {

constexpr char kScript[] = "bench/usmc_bench.py";

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string path(buf);
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string Canonical(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? std::string(buf) : path;
}

// $USMC_BENCH_SCRIPT, else the source tree this usmc was built from, else the
// source tree around a build tree (SRC/BUILD/src/cli/usmc), else an install
// (PREFIX/bin/usmc, PREFIX/share/usmc/bench/usmc_bench.py).
std::string FindScript(const std::string& self_dir) {
  const char* env = getenv("USMC_BENCH_SCRIPT");
  if (env != nullptr && *env != '\0') return env;
  const std::string candidates[] = {
      std::string(USMC_SOURCE_DIR) + "/" + kScript,
      self_dir + "/../../../" + kScript,
      self_dir + "/../share/usmc/" + kScript,
  };
  for (const std::string& c : candidates) {
    if (access(c.c_str(), R_OK) == 0) return Canonical(c);
  }
  return "";
}

bool HasBuildDir(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--build-dir") == 0 ||
        strncmp(argv[i], "--build-dir=", 12) == 0) {
      return true;
    }
  }
  return false;
}

std::string ShellQuote(const std::string& arg) {
  constexpr char kSafe[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./"
      ",:@%";
  if (!arg.empty() && arg.find_first_not_of(kSafe) == std::string::npos) {
    return arg;
  }
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// What the user typed, for the result file and docs/BENCHMARKS.md.
std::string CommandLine(int argc, char** argv) {
  std::string line = "usmc bench";
  for (int i = 1; i < argc; ++i) line += " " + ShellQuote(argv[i]);
  return line;
}

}  // namespace

// argv[0] is "bench"; the rest goes to the driver.
int BenchCommand(int argc, char** argv) {
  std::string self_dir = SelfDir();
  std::string script = FindScript(self_dir);
  if (script.empty()) {
    fprintf(stderr,
            "usmc bench: %s not found (looked in %s and around %s); "
            "set USMC_BENCH_SCRIPT to its path\n",
            kScript, USMC_SOURCE_DIR, self_dir.c_str());
    return 2;
  }
  // This usmc is BUILD/src/cli/usmc; the driver finds everything in BUILD.
  std::string build_dir = Canonical(self_dir + "/../..");
  std::vector<std::string> args = {"python3", script};
  if (!HasBuildDir(argc, argv)) {
    args.push_back("--build-dir");
    args.push_back(build_dir);
  }
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  setenv("USMC_BENCH_CMDLINE", CommandLine(argc, argv).c_str(), 1);
  execvp("python3", cargs.data());
  if (errno == ENOENT) {
    fprintf(stderr,
            "usmc bench: python3 not found; it comes with: "
            "apt-get install python3\n");
  } else {
    fprintf(stderr, "usmc bench: cannot run python3: %s\n", strerror(errno));
  }
  return 127;
}

}  // namespace usmc::cli
