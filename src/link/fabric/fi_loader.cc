// libfabric is loaded on first use (dlopen), not linked: libusmc.so is
// preloaded into every program `usmc run` starts, and most of them never open
// a cross-host link; linking would load libfabric and every provider library
// it depends on (verbs, psm2, efa, ...) into each of them at start-up. These
// are the only libfabric entry points usmc calls; the rest are inline
// functions of its headers that go through the objects these return.
#include <dlfcn.h>
#include <rdma/fabric.h>
#include <rdma/fi_errno.h>

#include <atomic>

namespace {

void* Library() {
  static std::atomic<void*> handle{nullptr};
  void* h = handle.load(std::memory_order_acquire);
  if (h == nullptr) {
    h = dlopen("libfabric.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) handle.store(h, std::memory_order_release);
  }
  return h;
}

template <typename Fn>
Fn Resolve(const char* name) {
  void* h = Library();
  return h == nullptr ? nullptr : reinterpret_cast<Fn>(dlsym(h, name));
}

}  // namespace

extern "C" {

int fi_getinfo(uint32_t version, const char* node, const char* service,
               uint64_t flags, const struct fi_info* hints,
               struct fi_info** info) {
  static auto fn = Resolve<decltype(&fi_getinfo)>("fi_getinfo");
  return fn != nullptr ? fn(version, node, service, flags, hints, info)
                       : -FI_ENOSYS;
}

void fi_freeinfo(struct fi_info* info) {
  static auto fn = Resolve<decltype(&fi_freeinfo)>("fi_freeinfo");
  if (fn != nullptr) fn(info);
}

struct fi_info* fi_dupinfo(const struct fi_info* info) {
  static auto fn = Resolve<decltype(&fi_dupinfo)>("fi_dupinfo");
  return fn != nullptr ? fn(info) : nullptr;
}

int fi_fabric(struct fi_fabric_attr* attr, struct fid_fabric** fabric,
              void* context) {
  static auto fn = Resolve<decltype(&fi_fabric)>("fi_fabric");
  return fn != nullptr ? fn(attr, fabric, context) : -FI_ENOSYS;
}

const char* fi_strerror(int errnum) {
  static auto fn = Resolve<decltype(&fi_strerror)>("fi_strerror");
  return fn != nullptr ? fn(errnum) : "libfabric is not installed";
}

}  // extern "C"
