// Where `usmc bpf install` puts things. Shared by the loader (usmc bpf), usmc
// run and the lookup in libusmc.so; no allocation, no libbpf.
#ifndef USMC_BPF_PATHS_H_
#define USMC_BPF_PATHS_H_

#include <cstddef>

namespace usmc::bpf {

inline constexpr char kDefaultPinDir[] = "/sys/fs/bpf/usmc";
// Overrides kDefaultPinDir everywhere (tests use their own installation).
inline constexpr char kPinDirEnv[] = "USMC_BPF_PIN_DIR";

// Entries of the pin directory.
inline constexpr char kLinkPin[] = "link";       // cgroup link (the attachment)
inline constexpr char kProgPin[] = "prog";       // the sockops program
inline constexpr char kPeerMapPin[] = "peer";    // SK_STORAGE map, mode 0444
inline constexpr char kStatsPin[] = "stats";     // per-CPU counters, mode 0444
inline constexpr char kCgroupLink[] = "cgroup";  // symlink to the cgroup
// Present (a symlink to "cgroup") when install created the cgroup, so
// uninstall removes it again.
inline constexpr char kCreatedLink[] = "cgroup-created";

// $USMC_BPF_PIN_DIR if set and not empty, else kDefaultPinDir.
const char* PinDir();

// "<dir>/<name>" into buf; false if it does not fit.
bool PinPath(const char* dir, const char* name, char* buf, size_t size);

}  // namespace usmc::bpf

#endif  // USMC_BPF_PATHS_H_
