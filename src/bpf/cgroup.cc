#include "bpf/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "bpf/paths.h"

namespace usmc::bpf {
namespace {

// /proc/self/mounts escapes blanks, tabs, newlines and backslashes as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() &&
        strspn(s.c_str() + i + 1, "01234567") >= 3) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Parent(const std::string& dir) {
  size_t slash = dir.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
}

bool OnCgroup2(const std::string& path) {
  struct statfs sf;
  return statfs(path.c_str(), &sf) == 0 &&
         static_cast<unsigned long>(sf.f_type) == CGROUP2_SUPER_MAGIC;
}

std::vector<pid_t> Members(const std::string& dir, bool* ok) {
  std::vector<pid_t> pids;
  std::ifstream in(dir + "/cgroup.procs");
  *ok = in.is_open();
  pid_t pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

}  // namespace

std::string Cgroup2Mount() {
  std::ifstream in("/proc/self/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    if (fields >> dev >> dir >> type && type == "cgroup2") return Unescape(dir);
  }
  return "";
}

std::string ResolveCgroup(const std::string& arg, std::string* err) {
  std::string path = arg;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (("/" + path + "/").find("/../") != std::string::npos) {
    *err = "cgroup path must not contain '..': " + arg;
    return "";
  }
  if (path.empty() || path[0] != '/') {
    std::string mount = Cgroup2Mount();
    if (mount.empty()) {
      *err = "no cgroup2 file system is mounted (see /proc/self/mounts)";
      return "";
    }
    path = mount + "/" + (path.empty() ? "usmc" : path);
  }
  if (!OnCgroup2(Parent(path))) {
    *err = Parent(path) + " is not a directory of a cgroup v2 file system";
    return "";
  }
  return path;
}

bool IsSameOrBelow(const std::string& dir, const std::string& parent) {
  if (dir == parent) return true;
  std::string prefix = parent == "/" ? "/" : parent + "/";
  return dir.compare(0, prefix.size(), prefix) == 0;
}

std::string ProcessCgroup(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 3, "0::") != 0) continue;
    std::string mount = Cgroup2Mount();
    if (mount.empty()) return "";
    std::string rel = line.substr(3);
    return rel == "/" ? mount : mount + rel;
  }
  return "";
}

bool MoveToCgroup(const std::string& dir, pid_t pid) {
  int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string s = std::to_string(pid) + "\n";
  ssize_t n = write(fd, s.data(), s.size());
  int err = errno;
  close(fd);
  errno = err;
  return n == static_cast<ssize_t>(s.size());
}

int MoveMembersToParent(const std::string& dir) {
  const std::string parent = Parent(dir);
  int moved = 0;
  // A member may fork while we move it; a few rounds catch the children.
  for (int round = 0; round < 10; ++round) {
    bool ok = false;
    std::vector<pid_t> pids = Members(dir, &ok);
    if (!ok) return -1;
    if (pids.empty()) return moved;
    for (pid_t pid : pids) {
      if (MoveToCgroup(parent, pid)) {
        ++moved;
      } else if (errno != ESRCH) {
        return -1;
      }
    }
  }
  errno = EBUSY;
  return -1;
}

int CountMembers(const std::string& dir) {
  bool ok = false;
  std::vector<pid_t> pids = Members(dir, &ok);
  return ok ? static_cast<int>(pids.size()) : -1;
}

void JoinSignalCgroup(bool verbose) {
  char link[PATH_MAX];
  char target[PATH_MAX];
  if (!PinPath(PinDir(), kCgroupLink, link, sizeof(link))) return;
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n <= 0) return;  // not installed
  target[n] = '\0';
  const std::string cgroup = target;
  if (IsSameOrBelow(ProcessCgroup(getpid()), cgroup)) {
    if (verbose) fprintf(stderr, "usmc run: already in %s\n", target);
    return;
  }
  if (MoveToCgroup(cgroup, getpid())) {
    if (verbose) fprintf(stderr, "usmc run: joined cgroup %s\n", target);
  } else if (verbose) {
    fprintf(stderr,
            "usmc run: BPF signal installed, but cannot join cgroup %s: %s; "
            "no SYN option for this command\n",
            target, strerror(errno));
  }
}

}  // namespace usmc::bpf
