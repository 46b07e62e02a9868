#include "bpf/capability.h"

#include <errno.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

#include "bpf/paths.h"

namespace usmc::bpf {
namespace {

// g_map_fd: >= 0 the open map; kNotOpen: try now; kAbsent: the last open
// failed, try again after g_retry_ns.
constexpr int kNotOpen = -1;
constexpr int kAbsent = -2;
constexpr int64_t kRetryNs = 1000000000;

std::atomic<int> g_map_fd{kNotOpen};
std::atomic<uint32_t> g_map_id{0};
std::atomic<int64_t> g_retry_ns{0};

// Raw system calls: inside libusmc.so the libc names are interposed.
long Bpf(int cmd, bpf_attr* attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

uint64_t Ptr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

int64_t CoarseNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint32_t MapId(int fd) {
  bpf_map_info info{};
  bpf_attr a{};
  a.info.bpf_fd = static_cast<uint32_t>(fd);
  a.info.info_len = sizeof(info);
  a.info.info = Ptr(&info);
  return Bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0 ? info.id : 0;
}

// bpf(2) descriptors are always close-on-exec.
int OpenMap() {
  char path[PATH_MAX];
  if (!PinPath(PinDir(), kPeerMapPin, path, sizeof(path))) return -1;
  bpf_attr a{};
  a.pathname = Ptr(path);
  a.file_flags = BPF_F_RDONLY;
  return static_cast<int>(Bpf(BPF_OBJ_GET, &a));
}

int MapFd() {
  int fd = g_map_fd.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  if (fd == kAbsent && CoarseNowNs() < g_retry_ns.load()) return -1;
  int opened = OpenMap();
  if (opened < 0) {
    g_retry_ns.store(CoarseNowNs() + kRetryNs);
    g_map_fd.compare_exchange_strong(fd, kAbsent);
    return -1;
  }
  g_map_id.store(MapId(opened));
  if (!g_map_fd.compare_exchange_strong(fd, opened)) {
    syscall(SYS_close, opened);  // another thread was faster
    return fd;
  }
  return opened;
}

// After EBADF/EINVAL: is `fd` still the map we opened? The application may
// have closed it (and reused the number), or it was the key that was bad.
bool StillOurMap(int fd) {
  uint32_t id = g_map_id.load();
  return id != 0 && MapId(fd) == id;
}

}  // namespace

bool SignalInstalled() { return MapFd() >= 0; }

PeerCapability LookupPeerCapability(int fd, usmc_peer_info* info) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int map = MapFd();
    if (map < 0) return PeerCapability::kUnknown;
    int key = fd;
    usmc_peer_info value{};
    bpf_attr a{};
    a.map_fd = static_cast<uint32_t>(map);
    a.key = Ptr(&key);
    a.value = Ptr(&value);
    if (Bpf(BPF_MAP_LOOKUP_ELEM, &a) == 0) {
      if (info != nullptr) *info = value;
      return value.peer_ok ? PeerCapability::kCapable
                           : PeerCapability::kNotCapable;
    }
    // ENOENT: no record for this socket. Anything else but a lost map
    // descriptor: not a TCP socket, or not ours to know.
    if ((errno != EBADF && errno != EINVAL) || StillOurMap(map)) break;
    // Never close it: the number may belong to the application by now.
    g_map_fd.compare_exchange_strong(map, kNotOpen);
  }
  return PeerCapability::kUnknown;
}

const char* PeerCapabilityName(PeerCapability c) {
  switch (c) {
    case PeerCapability::kCapable:
      return "capable";
    case PeerCapability::kNotCapable:
      return "not_capable";
    case PeerCapability::kUnknown:
      break;
  }
  return "unknown";
}

void ForgetPeerMap() {
  int fd = g_map_fd.exchange(kNotOpen);
  if (fd >= 0) syscall(SYS_close, fd);
  g_map_id.store(0);
  g_retry_ns.store(0);
}

}  // namespace usmc::bpf
