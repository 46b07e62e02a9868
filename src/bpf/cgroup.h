// cgroup v2 helpers for `usmc bpf` and `usmc run`. The sockops program acts on
// the sockets created by processes in its cgroup (or below it); a socket
// stays in the cgroup it was created in.
#ifndef USMC_BPF_CGROUP_H_
#define USMC_BPF_CGROUP_H_

#include <sys/types.h>

#include <string>

namespace usmc::bpf {

// The first cgroup2 mount point in /proc/self/mounts ("" if there is none).
// /sys/fs/cgroup on a pure v2 system, /sys/fs/cgroup/unified on hybrid ones.
std::string Cgroup2Mount();

// The directory `install --cgroup ARG` means: "" -> <mount>/usmc, a relative
// path -> below the mount, an absolute path as it is. "" and an error
// message in *err when there is no cgroup2 mount or ARG has "..".
std::string ResolveCgroup(const std::string& arg, std::string* err);

// Whether `dir` is `parent` or lies below it (both absolute, normalized).
bool IsSameOrBelow(const std::string& dir, const std::string& parent);

// The absolute cgroup v2 directory of process `pid` ("" if unknown).
std::string ProcessCgroup(pid_t pid);

// Writes `pid` to <dir>/cgroup.procs. false with errno set on failure.
bool MoveToCgroup(const std::string& dir, pid_t pid);

// Moves every process of `dir` to its parent cgroup; returns how many, or -1
// (errno set) if cgroup.procs cannot be read or a move failed.
int MoveMembersToParent(const std::string& dir);

// The number of processes in `dir` (-1 if unreadable).
int CountMembers(const std::string& dir);

// `usmc run`: when the capability signal is installed (the pin directory
// has a cgroup link), puts this process into that cgroup before exec, so
// that every socket the command creates is seen by the program. Does
// nothing if the process is already in it or below it. A caller that may not
// write cgroup.procs stays where it is (reported only when `verbose`).
void JoinSignalCgroup(bool verbose);

}  // namespace usmc::bpf

#endif  // USMC_BPF_CGROUP_H_
