// usmc run: set up the environment for libusmc.so and exec the command.
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/cgroup.h"
#include "cli/commands.h"
#include "util/rules.h"

namespace usmc::cli {
namespace {

constexpr const char kRunUsage[] =
    "usage: usmc run [-d] [-r SIZE] [-t SIZE] [--rules RULES] [--no-bpf] [--] "
    "COMMAND [ARG...]\n";
constexpr const char kLibName[] = "libusmc.so";

struct RunOptions {
  bool debug = false;
  std::string rcvbuf;  // in bytes, empty = not given
  std::string sndbuf;
  const char* rules = nullptr;
  bool no_bpf = false;  // do not join the BPF capability signal's cgroup
};

// N, Nk or Nm (also K, M): a positive byte count that fits an int, as
// SO_RCVBUF/SO_SNDBUF take.
bool ParseSize(const char* s, std::string* bytes) {
  char* end = nullptr;
  errno = 0;
  if (*s < '0' || *s > '9') return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0) return false;
  unsigned long long mult = 1;
  if (*end == 'k' || *end == 'K') {
    mult = 1024;
    ++end;
  } else if (*end == 'm' || *end == 'M') {
    mult = 1024 * 1024;
    ++end;
  }
  if (*end != '\0' || v == 0 || v > INT_MAX / mult) return false;
  *bytes = std::to_string(v * mult);
  return true;
}

int UsageError() {
  fputs(kRunUsage, stderr);
  fputs("Run 'usmc help run' for details.\n", stderr);
  return 2;
}

// The option getopt_long() just complained about.
std::string OptionName(char** argv) {
  if (optopt == 'R') return "--rules";
  if (optopt == 'B') return "--no-bpf";
  if (optopt != 0) return std::string("-") + static_cast<char>(optopt);
  return argv[optind - 1];
}

// Returns -1 when parsing succeeded, else the exit status.
int ParseOptions(int argc, char** argv, RunOptions* o) {
  static const option kLong[] = {{"rules", required_argument, nullptr, 'R'},
                                 {"no-bpf", no_argument, nullptr, 'B'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+:dr:t:h", kLong, nullptr)) != -1) {
    switch (c) {
      case 'd':
        o->debug = true;
        break;
      case 'r':
      case 't':
        if (!ParseSize(optarg, c == 'r' ? &o->rcvbuf : &o->sndbuf)) {
          fprintf(stderr,
                  "usmc run: -%c: invalid size '%s' (use N, Nk or Nm)\n", c,
                  optarg);
          return 2;
        }
        break;
      case 'R':
        o->rules = optarg;
        break;
      case 'B':
        o->no_bpf = true;
        break;
      case 'h':
        PrintCommandHelp("run");
        return 0;
      case ':':
        fprintf(stderr, "usmc run: option '%s' needs an argument\n",
                OptionName(argv).c_str());
        return UsageError();
      default:
        fprintf(stderr, "usmc run: unknown option '%s'\n",
                OptionName(argv).c_str());
        return UsageError();
    }
  }
  return -1;
}

std::string ExeDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool Readable(const std::string& path, std::string* absolute) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr || access(buf, R_OK) != 0) {
    return false;
  }
  *absolute = buf;
  return true;
}

bool FindLibrary(std::string* lib) {
  const char* env = getenv("USMC_LIB");
  if (env != nullptr && env[0] != '\0') {
    if (Readable(env, lib)) return true;
    fprintf(stderr, "usmc run: USMC_LIB=%s: %s\n", env, strerror(errno));
    return false;
  }
  const std::string dir = ExeDir();
  const std::string candidates[] = {
      dir + "/" + kLibName, dir + "/../lib/usmc/" + kLibName,
      dir + "/../preload/" + kLibName,      // build tree: build/src/cli/usmc
      dir + "/../src/preload/" + kLibName,  // a binary in build/<subdir>/
  };
  for (const std::string& c : candidates) {
    if (Readable(c, lib)) return true;
  }
  fprintf(stderr, "usmc run: cannot find %s; tried:\n", kLibName);
  for (const std::string& c : candidates) fprintf(stderr, "  %s\n", c.c_str());
  fputs("Set USMC_LIB to its path.\n", stderr);
  return false;
}

// A read-only view of a mapped file with bounds-checked access.
struct FileView {
  const uint8_t* data;
  size_t size;
  bool Has(uint64_t off, uint64_t len) const {
    return off <= size && len <= size - off;
  }
  template <typename T>
  bool Get(uint64_t off, T* out) const {
    if (!Has(off, sizeof(T))) return false;
    memcpy(out, data + off, sizeof(T));
    return true;
  }
};

// File offset of virtual address `va`, through the PT_LOAD segments.
bool VaddrToOffset(const std::vector<Elf64_Phdr>& ph, uint64_t va,
                   uint64_t* off) {
  for (const Elf64_Phdr& p : ph) {
    if (p.p_type == PT_LOAD && va >= p.p_vaddr && va - p.p_vaddr < p.p_filesz) {
      *off = p.p_offset + (va - p.p_vaddr);
      return true;
    }
  }
  return false;
}

std::vector<std::string> ParseNeeded(const FileView& f) {
  Elf64_Ehdr eh;
  if (!f.Get(0, &eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr)) {
    return {};
  }
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  const Elf64_Phdr* dyn = nullptr;
  for (size_t i = 0; i < ph.size(); ++i) {
    if (!f.Get(eh.e_phoff + i * sizeof(Elf64_Phdr), &ph[i])) return {};
    if (ph[i].p_type == PT_DYNAMIC) dyn = &ph[i];
  }
  if (dyn == nullptr) return {};
  std::vector<uint64_t> needed;
  uint64_t strtab = 0, strsz = 0;
  for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= dyn->p_filesz;
       off += sizeof(Elf64_Dyn)) {
    Elf64_Dyn d;
    if (!f.Get(dyn->p_offset + off, &d) || d.d_tag == DT_NULL) break;
    if (d.d_tag == DT_NEEDED) needed.push_back(d.d_un.d_val);
    if (d.d_tag == DT_STRTAB) strtab = d.d_un.d_ptr;
    if (d.d_tag == DT_STRSZ) strsz = d.d_un.d_val;
  }
  uint64_t str_off = 0;
  if (!VaddrToOffset(ph, strtab, &str_off) || !f.Has(str_off, strsz)) return {};
  std::vector<std::string> names;
  for (uint64_t n : needed) {
    if (n >= strsz) continue;
    const char* s = reinterpret_cast<const char*>(f.data + str_off + n);
    names.emplace_back(s, strnlen(s, strsz - n));
  }
  return names;
}

// The DT_NEEDED entries of the ELF shared object at `path` (empty on error).
std::vector<std::string> NeededLibraries(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st;
  void* map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE,
               fd, 0);
  }
  close(fd);
  if (map == MAP_FAILED) return {};
  FileView view{static_cast<const uint8_t*>(map),
                static_cast<size_t>(st.st_size)};
  std::vector<std::string> names = ParseNeeded(view);
  munmap(map, static_cast<size_t>(st.st_size));
  return names;
}

// The full path of a sanitizer runtime. If usmc itself was built with the
// same sanitizer, the runtime is already loaded; else search the standard
// library directories. A bare name also works in LD_PRELOAD as a last resort.
std::string ResolveRuntime(const std::string& name) {
  if (void* h = dlopen(name.c_str(), RTLD_NOLOAD | RTLD_LAZY)) {
    link_map* lm = nullptr;
    std::string path;
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name[0] == '/') {
      path = lm->l_name;
    }
    dlclose(h);
    if (!path.empty()) return path;
  }
  static const char* const kDirs[] = {
#if defined(__x86_64__)
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
#elif defined(__aarch64__)
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
#endif
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
  };
  for (const char* dir : kDirs) {
    std::string path = std::string(dir) + "/" + name;
    if (access(path.c_str(), R_OK) == 0) return path;
  }
  return name;
}

// The sanitizer runtime `lib` needs first in LD_PRELOAD, or "" if none.
std::string SanitizerRuntime(const std::string& lib, bool* is_asan) {
  for (const std::string& n : NeededLibraries(lib)) {
    bool asan = n.rfind("libasan.so", 0) == 0;
    if (asan || n.rfind("libtsan.so", 0) == 0) {
      *is_asan = asan;
      return ResolveRuntime(n);
    }
  }
  return {};
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// New LD_PRELOAD: `first`, the existing entries, `last`. Existing entries
// with the same file name as `first` or `last` are dropped, so nested runs
// and other builds of libusmc.so are not loaded twice.
std::string EditPreload(const char* existing, const std::string& first,
                        const std::string& last) {
  std::string out = first;
  std::string_view rest = existing != nullptr ? existing : "";
  while (!rest.empty()) {
    size_t sep = rest.find_first_of(": ");
    std::string_view e = rest.substr(0, sep);
    rest = sep == std::string_view::npos ? std::string_view()
                                         : rest.substr(sep + 1);
    if (e.empty() || BaseName(e) == BaseName(last)) continue;
    if (!first.empty() && BaseName(e) == BaseName(first)) continue;
    if (!out.empty()) out += ':';
    out += e;
  }
  if (!out.empty()) out += ':';
  return out + last;
}

// The program under usmc is not ours to leak-check (python, for one, is not
// LSan-clean), so leak detection is turned off even if ASAN_OPTIONS asked for
// it; usmc's own code is leak-checked by its unit tests, which run without
// `usmc run`.
void SetAsanOptions() {
  const char* cur = getenv("ASAN_OPTIONS");
  std::string opts;
  std::string in = cur != nullptr ? cur : "";
  for (size_t pos = 0; pos <= in.size();) {
    size_t end = in.find(':', pos);
    if (end == std::string::npos) end = in.size();
    std::string item = in.substr(pos, end - pos);
    if (!item.empty() && item.rfind("detect_leaks=", 0) != 0)
      opts += item + ":";
    pos = end + 1;
  }
  if (opts.find("verify_asan_link_order=") == std::string::npos) {
    opts += "verify_asan_link_order=0:";
  }
  opts += "detect_leaks=0";
  setenv("ASAN_OPTIONS", opts.c_str(), 1);
}

// Returns -1 on success, else the exit status.
int PrepareEnvironment(const RunOptions& o) {
  if (o.rules != nullptr) {
    std::string err;
    if (!util::RuleSet::Parse(o.rules, &err)) {
      fprintf(stderr, "usmc run: --rules: %s\n", err.c_str());
      return 2;
    }
    setenv("USMC_RULES", o.rules, 1);
  }
  std::string lib;
  if (!FindLibrary(&lib)) return 1;
  bool is_asan = false;
  std::string runtime = SanitizerRuntime(lib, &is_asan);
  if (is_asan) SetAsanOptions();
  // ASan must come first. TSan must come after libusmc.so: TSan does not see
  // the synchronisation of code its own interceptors call, and libusmc's
  // poll/read/... would be called from them.
  std::string preload = EditPreload(getenv("LD_PRELOAD"), runtime, lib);
  if (!runtime.empty() && !is_asan) {
    preload = preload.substr(runtime.size() + 1) + ":" + runtime;
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  if (o.debug) setenv("USMC_DEBUG", "1", 1);
  if (!o.rcvbuf.empty()) setenv("USMC_RCVBUF", o.rcvbuf.c_str(), 1);
  if (!o.sndbuf.empty()) setenv("USMC_SNDBUF", o.sndbuf.c_str(), 1);
  if (o.debug) fprintf(stderr, "usmc run: LD_PRELOAD=%s\n", preload.c_str());
  return -1;
}

}  // namespace

int RunCommand(int argc, char** argv) {
  RunOptions o;
  int status = ParseOptions(argc, argv, &o);
  if (status >= 0) return status;
  if (optind >= argc) {
    fputs("usmc run: missing COMMAND\n", stderr);
    return UsageError();
  }
  status = PrepareEnvironment(o);
  if (status >= 0) return status;
  // Before exec: a socket belongs to the cgroup of its creator at socket().
  if (!o.no_bpf) bpf::JoinSignalCgroup(o.debug);
  fflush(nullptr);
  char** cmd = argv + optind;
  execvp(cmd[0], cmd);
  int err = errno;
  fprintf(stderr, "usmc run: %s: %s\n", cmd[0], strerror(err));
  return err == ENOENT || err == ENOTDIR ? 127 : 126;
}

}  // namespace usmc::cli
