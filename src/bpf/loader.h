// `usmc bpf install|uninstall|status`: loads the sockops program (embedded in
// the binary), attaches it to a cgroup with a cgroup link and pins link,
// program and maps under the pin directory. Needs root; uses libbpf.
#ifndef USMC_BPF_LOADER_H_
#define USMC_BPF_LOADER_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "bpf/usmc_sockops.h"

namespace usmc::bpf {

struct InstallOptions {
  std::string cgroup;   // see ResolveCgroup(); "" = <cgroup2 mount>/usmc
  std::string pin_dir;  // "" = PinDir()
};

struct SignalStatus {
  std::string pin_dir;
  bool installed = false;       // the link pin exists
  bool attached = false;        // ... and the link is attached to `cgroup`
  bool link_visible = true;     // false: not root, installed/attached guessed
  std::string cgroup;           // from the pin directory's cgroup link
  bool cgroup_created = false;  // install created it; uninstall removes it
  bool cgroup_exists = false;
  int members = -1;  // processes in the cgroup
  uint32_t link_id = 0, prog_id = 0, map_id = 0;
  bool map_world_readable = false;  // pin 0444 and directories searchable
  bool have_stats = false;
  uint64_t stats[USMC_STAT_COUNT] = {};
};

// Each returns true on success and prints what it did to `log`; on failure
// *err says why. All are idempotent: installing what is installed, or
// uninstalling what is not, succeeds and changes nothing.
bool Install(const InstallOptions& opts, FILE* log, std::string* err);
// Detaches, unpins, and removes the cgroup if install created it, after
// moving its processes to the parent cgroup.
bool Uninstall(const std::string& pin_dir, FILE* log, std::string* err);
bool GetStatus(const std::string& pin_dir, SignalStatus* st, std::string* err);

// The name of a usmc_stat slot ("syn_written", ...).
const char* StatName(int slot);

}  // namespace usmc::bpf

#endif  // USMC_BPF_LOADER_H_
