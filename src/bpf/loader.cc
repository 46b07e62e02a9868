#include "bpf/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdarg>
#include <cstring>
#include <vector>

#include "bpf/cgroup.h"
#include "bpf/paths.h"

// The compiled sockops program, embedded by embed.cc.
extern "C" const unsigned char usmc_sockops_obj[];
extern "C" const unsigned char usmc_sockops_obj_end[];

namespace usmc::bpf {
namespace {

constexpr char kBpffsRoot[] = "/sys/fs/bpf";
constexpr char kProgName[] = "usmc_sockops";
constexpr char kPeerMapName[] = "usmc_peer";
constexpr char kStatsMapName[] = "usmc_stats";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

std::string Join(const std::string& dir, const char* name) {
  return dir + "/" + name;
}

std::string Errno(const std::string& what, int err = errno) {
  return what + ": " + strerror(err < 0 ? -err : err);
}

// The pin directory an option names ("" = the default), without a
// trailing slash.
std::string PinDirOf(const std::string& arg) {
  std::string dir = arg.empty() ? PinDir() : arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level != LIBBPF_WARN) return 0;
  fputs("usmc bpf: libbpf: ", stderr);
  return vfprintf(stderr, fmt, ap);
}

bool RequireRoot(const char* what, std::string* err) {
  if (geteuid() == 0) return true;
  *err = std::string(what) +
         " needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN); run it "
         "with sudo";
  return false;
}

bool IsBpffs(const std::string& path) {
  struct statfs sf;
  return statfs(path.c_str(), &sf) == 0 &&
         static_cast<unsigned long>(sf.f_type) == BPF_FS_MAGIC;
}

// Mounts bpffs on /sys/fs/bpf when the pin directory is below it and it is
// not mounted; lets others search the mount's root (a systemd mount is 0700)
// so unprivileged programs reach the read-only map pin.
bool EnsureBpffs(const std::string& pin_dir, FILE* log, std::string* err) {
  std::string parent = pin_dir.substr(0, pin_dir.rfind('/'));
  if (parent.empty()) parent = "/";
  if (!IsBpffs(parent)) {
    if (parent != kBpffsRoot) {
      *err = parent + " is not on a bpf file system (mount -t bpf)";
      return false;
    }
    if (mount("bpf", kBpffsRoot, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755") != 0) {
      *err = Errno(std::string("mount -t bpf bpf ") + kBpffsRoot);
      return false;
    }
    fprintf(log, "mounted bpffs on %s\n", kBpffsRoot);
  }
  struct stat st;
  if (stat(parent.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
    if (chmod(parent.c_str(), (st.st_mode & 07777) | S_IXGRP | S_IXOTH) != 0) {
      *err = Errno("chmod go+x " + parent);
      return false;
    }
    fprintf(log, "added search permission for others on %s\n", parent.c_str());
  }
  if (mkdir(pin_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *err = Errno("mkdir " + pin_dir);
    return false;
  }
  if (chmod(pin_dir.c_str(), 0755) != 0) {
    *err = Errno("chmod 0755 " + pin_dir);
    return false;
  }
  return true;
}

bool EnsureCgroup(const std::string& cgroup, FILE* log, bool* created,
                  std::string* err) {
  *created = false;
  if (mkdir(cgroup.c_str(), 0755) == 0) {
    *created = true;
    fprintf(log, "created cgroup %s\n", cgroup.c_str());
    return true;
  }
  struct stat st;
  if (errno == EEXIST && stat(cgroup.c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode)) {
    return true;
  }
  *err = Errno("mkdir " + cgroup);
  return false;
}

bool PinMap(bpf_object* obj, const char* name, const std::string& path,
            std::string* err) {
  bpf_map* map = bpf_object__find_map_by_name(obj, name);
  if (map == nullptr) {
    *err = std::string("map ") + name + " missing from the BPF object";
    return false;
  }
  int rc = bpf_map__pin(map, path.c_str());
  if (rc != 0) {
    *err = Errno("pin " + path, rc);
    return false;
  }
  // Read-only for everybody: unprivileged lookups open it with BPF_F_RDONLY.
  if (chmod(path.c_str(), 0444) != 0) {
    *err = Errno("chmod 0444 " + path);
    return false;
  }
  return true;
}

// Maps and program first; then attach and pin the link; the cgroup symlink
// last, because `usmc run` takes it as "installed".
bool PinAndAttach(bpf_object* obj, const std::string& pin_dir,
                  const std::string& cgroup, bool created, std::string* err) {
  bpf_program* prog = bpf_object__find_program_by_name(obj, kProgName);
  if (prog == nullptr) {
    *err = "program usmc_sockops missing from the BPF object";
    return false;
  }
  if (!PinMap(obj, kPeerMapName, Join(pin_dir, kPeerMapPin), err) ||
      !PinMap(obj, kStatsMapName, Join(pin_dir, kStatsPin), err)) {
    return false;
  }
  int rc = bpf_program__pin(prog, Join(pin_dir, kProgPin).c_str());
  if (rc != 0) {
    *err = Errno("pin " + Join(pin_dir, kProgPin), rc);
    return false;
  }
  Fd cg(open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.ok()) {
    *err = Errno("open " + cgroup);
    return false;
  }
  bpf_link* link = bpf_program__attach_cgroup(prog, cg.get());
  if (link == nullptr) {
    *err = Errno("attach to " + cgroup);
    return false;
  }
  rc = bpf_link__pin(link, Join(pin_dir, kLinkPin).c_str());
  bpf_link__disconnect(link);  // the pin (or nothing) keeps it attached
  bpf_link__destroy(link);
  if (rc != 0) {
    *err = Errno("pin " + Join(pin_dir, kLinkPin), rc);
    return false;
  }
  if (created &&
      symlink(kCgroupLink, Join(pin_dir, kCreatedLink).c_str()) != 0) {
    *err = Errno("symlink " + Join(pin_dir, kCreatedLink));
    return false;
  }
  if (symlink(cgroup.c_str(), Join(pin_dir, kCgroupLink).c_str()) != 0) {
    *err = Errno("symlink " + Join(pin_dir, kCgroupLink));
    return false;
  }
  return true;
}

// The embedded object, loaded into the kernel (not attached yet).
class LoadedObject {
 public:
  LoadedObject() = default;
  LoadedObject(const LoadedObject&) = delete;
  LoadedObject& operator=(const LoadedObject&) = delete;
  ~LoadedObject() { bpf_object__close(obj_); }

  bool Load(std::string* err) {
    libbpf_set_print(LibbpfPrint);
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = kProgName);
    obj_ = bpf_object__open_mem(usmc_sockops_obj,
                                usmc_sockops_obj_end - usmc_sockops_obj, &opts);
    if (obj_ == nullptr) {
      *err = Errno("open the embedded BPF object");
      return false;
    }
    int rc = bpf_object__load(obj_);
    if (rc != 0) {
      *err = Errno("load the BPF program (BPF disabled or kernel < 5.10?)", rc);
      return false;
    }
    return true;
  }
  bpf_object* get() const { return obj_; }
  int prog_fd() const {
    bpf_program* p = bpf_object__find_program_by_name(obj_, kProgName);
    return p != nullptr ? bpf_program__fd(p) : -1;
  }

 private:
  bpf_object* obj_ = nullptr;
};

// The kernel's tag (a hash of the instructions) tells program versions apart.
std::string ProgTag(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (prog_fd < 0 || bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(info.tag), sizeof(info.tag));
}

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Detaches the link (even if someone else holds a descriptor of it) and
// removes the entries install made. false if the directory has others.
bool RemovePins(const std::string& pin_dir, std::string* err) {
  Fd link(bpf_obj_get(Join(pin_dir, kLinkPin).c_str()));
  if (link.ok()) bpf_link_detach(link.get());
  for (const char* name : {kCgroupLink, kCreatedLink, kLinkPin, kProgPin,
                           kPeerMapPin, kStatsPin}) {
    std::string path = Join(pin_dir, name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      *err = Errno("unlink " + path);
      return false;
    }
  }
  if (rmdir(pin_dir.c_str()) != 0 && errno != ENOENT) {
    *err = Errno("rmdir " + pin_dir + " (entries usmc did not make?)");
    return false;
  }
  return true;
}

bool RemoveCgroup(const std::string& cgroup, FILE* log, std::string* err) {
  if (!Exists(cgroup)) return true;
  int moved = MoveMembersToParent(cgroup);
  if (moved < 0) {
    *err = Errno("move the processes of " + cgroup + " to its parent");
    return false;
  }
  if (moved > 0) {
    fprintf(log, "moved %d process%s from %s to its parent cgroup\n", moved,
            moved == 1 ? "" : "es", cgroup.c_str());
  }
  if (rmdir(cgroup.c_str()) != 0) {
    *err = Errno("rmdir " + cgroup + " (child cgroups?)");
    return false;
  }
  fprintf(log, "removed cgroup %s\n", cgroup.c_str());
  return true;
}

// An existing installation: *done when it is already what was asked for;
// one of another version is unpinned (keeping its cgroup, *created tells
// whether install made it), an incomplete one removed. false (with *err)
// when it is attached to another cgroup.
bool CheckExisting(const std::string& pin_dir, const std::string& cgroup,
                   const std::string& tag, FILE* log, bool* done, bool* created,
                   std::string* err) {
  *done = false;
  *created = false;
  SignalStatus st;
  if (!Exists(pin_dir) || !GetStatus(pin_dir, &st, err)) return true;
  if (st.attached && st.cgroup != cgroup) {
    *err = "already installed for cgroup " + st.cgroup + " (" + pin_dir +
           "); run 'usmc bpf uninstall' first";
    return false;
  }
  if (st.attached) {
    Fd prog(bpf_obj_get(Join(pin_dir, kProgPin).c_str()));
    if (ProgTag(prog.get()) == tag) {
      fprintf(log, "already installed: %s -> %s\n", pin_dir.c_str(),
              cgroup.c_str());
      *done = true;
      return true;
    }
    fprintf(log, "replacing the installed program (another version)\n");
    *created = st.cgroup_created;
    return RemovePins(pin_dir, err);
  }
  if (!st.installed && st.cgroup.empty() && !Exists(Join(pin_dir, kProgPin)) &&
      !Exists(Join(pin_dir, kPeerMapPin))) {
    return true;  // just an empty directory
  }
  fprintf(log, "removing an incomplete installation in %s\n", pin_dir.c_str());
  return Uninstall(pin_dir, log, err);
}

bool SearchableByAll(const std::string& path) {
  for (std::string p = path; p.size() > 1; p = p.substr(0, p.rfind('/'))) {
    std::string dir = p.substr(0, p.rfind('/'));
    struct stat st;
    if (dir.empty()) break;
    if (stat(dir.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) {
      return false;
    }
  }
  return true;
}

void ReadLinkInfo(const std::string& pin_dir, SignalStatus* st) {
  std::string pin = Join(pin_dir, kLinkPin);
  Fd link(bpf_obj_get(pin.c_str()));
  if (!link.ok()) {
    // Only root may open the link; for others its pin has to do.
    st->link_visible = !(errno == EACCES || errno == EPERM);
    st->installed = st->attached = !st->link_visible && Exists(pin);
    return;
  }
  st->installed = true;
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0) return;
  st->link_id = info.id;
  st->prog_id = info.prog_id;
  struct stat cg;
  // A cgroup's id is its inode number; 0 once the cgroup was removed.
  st->attached = info.type == BPF_LINK_TYPE_CGROUP &&
                 info.cgroup.cgroup_id != 0 && !st->cgroup.empty() &&
                 stat(st->cgroup.c_str(), &cg) == 0 &&
                 cg.st_ino == info.cgroup.cgroup_id;
}

void ReadMaps(const std::string& pin_dir, SignalStatus* st) {
  LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
  std::string peer = Join(pin_dir, kPeerMapPin);
  Fd map(bpf_obj_get_opts(peer.c_str(), &ro));
  if (map.ok()) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(map.get(), &info, &len) == 0) {
      st->map_id = info.id;
    }
    struct stat pin;
    st->map_world_readable = stat(peer.c_str(), &pin) == 0 &&
                             (pin.st_mode & S_IROTH) && SearchableByAll(peer);
  }
  Fd stats(bpf_obj_get_opts(Join(pin_dir, kStatsPin).c_str(), &ro));
  int ncpu = libbpf_num_possible_cpus();
  if (!stats.ok() || ncpu <= 0) return;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t slot = 0; slot < USMC_STAT_COUNT; ++slot) {
    if (bpf_map_lookup_elem(stats.get(), &slot, per_cpu.data()) != 0) return;
    for (uint64_t v : per_cpu) st->stats[slot] += v;
  }
  st->have_stats = true;
}

}  // namespace

bool Install(const InstallOptions& opts, FILE* log, std::string* err) {
  if (!RequireRoot("usmc bpf install", err)) return false;
  std::string pin_dir = PinDirOf(opts.pin_dir);
  if (pin_dir.size() < 2 || pin_dir[0] != '/') {
    *err = "the pin directory must be an absolute path below /: " + pin_dir;
    return false;
  }
  std::string cgroup = ResolveCgroup(opts.cgroup, err);
  LoadedObject obj;
  if (cgroup.empty() || !obj.Load(err)) return false;
  bool done = false, created = false, made_now = false;
  if (!CheckExisting(pin_dir, cgroup, ProgTag(obj.prog_fd()), log, &done,
                     &created, err)) {
    return false;
  }
  if (done) return true;
  if (!EnsureBpffs(pin_dir, log, err) ||
      !EnsureCgroup(cgroup, log, &made_now, err)) {
    return false;
  }
  if (!PinAndAttach(obj.get(), pin_dir, cgroup, created || made_now, err)) {
    std::string ignored;
    RemovePins(pin_dir, &ignored);
    if (made_now) rmdir(cgroup.c_str());
    return false;
  }
  fprintf(log, "installed: sockops program attached to %s, pinned in %s\n",
          cgroup.c_str(), pin_dir.c_str());
  return true;
}

bool Uninstall(const std::string& pin_dir_arg, FILE* log, std::string* err) {
  if (!RequireRoot("usmc bpf uninstall", err)) return false;
  std::string pin_dir = PinDirOf(pin_dir_arg);
  if (!Exists(pin_dir)) {
    fprintf(log, "not installed (no %s)\n", pin_dir.c_str());
    return true;
  }
  std::string cgroup = ReadLink(Join(pin_dir, kCgroupLink));
  bool created = Exists(Join(pin_dir, kCreatedLink));
  if (!RemovePins(pin_dir, err)) return false;
  fprintf(log, "detached and unpinned (%s)\n", pin_dir.c_str());
  if (created && !cgroup.empty()) return RemoveCgroup(cgroup, log, err);
  if (!cgroup.empty()) {
    fprintf(log, "left cgroup %s in place (install did not create it)\n",
            cgroup.c_str());
  }
  return true;
}

bool GetStatus(const std::string& pin_dir_arg, SignalStatus* st,
               std::string* err) {
  *st = SignalStatus();
  st->pin_dir = PinDirOf(pin_dir_arg);
  if (!Exists(st->pin_dir)) return true;
  struct stat dir;
  if (stat(st->pin_dir.c_str(), &dir) != 0) {
    *err = Errno("stat " + st->pin_dir);
    return false;
  }
  st->cgroup = ReadLink(Join(st->pin_dir, kCgroupLink));
  st->cgroup_created = Exists(Join(st->pin_dir, kCreatedLink));
  st->cgroup_exists = !st->cgroup.empty() && Exists(st->cgroup);
  if (st->cgroup_exists) st->members = CountMembers(st->cgroup);
  ReadLinkInfo(st->pin_dir, st);
  ReadMaps(st->pin_dir, st);
  return true;
}

const char* StatName(int slot) {
  static_assert(USMC_STAT_COUNT == 13, "name the new counter");
  static const char* const kNames[USMC_STAT_COUNT] = {
      "connect",        "listen",          "syn_written", "synack_written",
      "synack_cookie",  "synack_no_peer",  "active_est",  "passive_est",
      "active_capable", "passive_capable", "write_error", "storage_error",
      "hdr_other",
  };
  return slot >= 0 && slot < USMC_STAT_COUNT ? kNames[slot] : "?";
}

}  // namespace usmc::bpf
