// usmc bpf install|uninstall|status: the cross-host capability signal (a
// sockops program that puts kernel SMC's option on SYN and SYN-ACK).
#include <getopt.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "bpf/loader.h"
#include "cli/commands.h"

namespace usmc::cli {
namespace {

constexpr const char kBpfUsage[] =
    "usage: usmc bpf install [--cgroup PATH] [--pin-dir DIR]\n"
    "       usmc bpf uninstall [--pin-dir DIR]\n"
    "       usmc bpf status [--pin-dir DIR]\n";

// Exit status of `status` when nothing (or nothing attached) is installed.
constexpr int kNotInstalled = 3;

struct BpfOptions {
  bpf::InstallOptions install;
  bool cgroup_given = false;
};

int UsageError() {
  fputs(kBpfUsage, stderr);
  fputs("Run 'usmc help bpf' for details.\n", stderr);
  return 2;
}

// Parses the options after the subcommand; -1 on success, else the status.
int ParseOptions(int argc, char** argv, BpfOptions* o) {
  static const option kLong[] = {{"cgroup", required_argument, nullptr, 'c'},
                                 {"pin-dir", required_argument, nullptr, 'p'},
                                 {nullptr, 0, nullptr, 0}};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":", kLong, nullptr)) != -1) {
    switch (c) {
      case 'c':
        o->install.cgroup = optarg;
        o->cgroup_given = true;
        break;
      case 'p':
        o->install.pin_dir = optarg;
        break;
      case ':':
        fprintf(stderr, "usmc bpf: option '%s' needs an argument\n",
                argv[optind - 1]);
        return UsageError();
      default:
        fprintf(stderr, "usmc bpf: unknown option '%s'\n", argv[optind - 1]);
        return UsageError();
    }
  }
  if (optind < argc) {
    fprintf(stderr, "usmc bpf: unexpected argument '%s'\n", argv[optind]);
    return UsageError();
  }
  return -1;
}

void PrintCounters(const bpf::SignalStatus& st) {
  printf("  counters:");
  for (int i = 0; i < USMC_STAT_COUNT; ++i) {
    if (i % 4 == 0) printf("\n   ");
    printf(" %s=%llu", bpf::StatName(i),
           static_cast<unsigned long long>(st.stats[i]));
  }
  printf("\n");
}

int Status(const BpfOptions& o) {
  bpf::SignalStatus st;
  std::string err;
  if (!bpf::GetStatus(o.install.pin_dir, &st, &err)) {
    fprintf(stderr, "usmc bpf status: %s\n", err.c_str());
    return 1;
  }
  if (!st.installed && st.cgroup.empty()) {
    printf("not installed (no %s)\n", st.pin_dir.c_str());
    return kNotInstalled;
  }
  printf("%s\n", st.attached    ? "installed"
                 : st.installed ? "installed but NOT attached (cgroup gone?)"
                                : "incomplete installation");
  printf("  pin dir: %s\n", st.pin_dir.c_str());
  printf("  cgroup:  %s%s%s", st.cgroup.c_str(),
         st.cgroup_created ? " (created by install)" : "",
         st.cgroup_exists ? "" : " (missing)");
  if (st.members >= 0) printf(", %d process(es)", st.members);
  if (st.link_visible) {
    printf("\n  link %u, program %u,", st.link_id, st.prog_id);
  } else {
    printf("\n  (link and program: only root sees them),");
  }
  printf(" map %u; map readable by all users: %s\n", st.map_id,
         st.map_world_readable ? "yes" : "no");
  if (st.have_stats) PrintCounters(st);
  return st.attached ? 0 : kNotInstalled;
}

}  // namespace

int BpfCommand(int argc, char** argv) {
  if (argc < 2) {
    fputs("usmc bpf: missing subcommand\n", stderr);
    return UsageError();
  }
  const std::string sub = argv[1];
  BpfOptions o;
  int status = ParseOptions(argc - 1, argv + 1, &o);
  if (status >= 0) return status;
  if (o.cgroup_given && sub != "install") {
    fprintf(stderr, "usmc bpf %s: --cgroup is for install only\n", sub.c_str());
    return UsageError();
  }
  std::string err;
  if (sub == "install") {
    if (bpf::Install(o.install, stdout, &err)) return 0;
  } else if (sub == "uninstall") {
    if (bpf::Uninstall(o.install.pin_dir, stdout, &err)) return 0;
  } else if (sub == "status") {
    return Status(o);
  } else {
    fprintf(stderr, "usmc bpf: unknown subcommand '%s'\n", sub.c_str());
    return UsageError();
  }
  fprintf(stderr, "usmc bpf %s: %s\n", sub.c_str(), err.c_str());
  return 1;
}

}  // namespace usmc::cli
