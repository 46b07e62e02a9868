#include "link/fabric/provider.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "util/sys.h"

namespace usmc::fabric {

namespace {

constexpr size_t kMaxDepth = 256;

bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// Interface index by name (or a number), through raw syscalls: this runs
// inside the interposing library, where if_nametoindex would re-enter it.
unsigned IfIndex(const std::string& name) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(name.c_str(), &end, 10);
  if (!name.empty() && *end == '\0') return static_cast<unsigned>(n);
  ifreq req{};
  if (name.size() >= sizeof req.ifr_name) return 0;
  std::memcpy(req.ifr_name, name.data(), name.size());
  const int fd = sys::Socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  const int rc = sys::Ioctl(fd, SIOCGIFINDEX, &req);
  sys::Close(fd);
  return rc == 0 ? static_cast<unsigned>(req.ifr_ifindex) : 0;
}

// Hints for what every link needs. The caller owns the result.
fi_info* BaseHints(const std::string& prov, uint64_t completion) {
  fi_info* h = fi_allocinfo();
  if (h == nullptr) return nullptr;
  h->ep_attr->type = FI_EP_MSG;
  h->caps = FI_MSG | FI_RMA | FI_WRITE | FI_REMOTE_WRITE | FI_SEND | FI_RECV;
  h->mode = FI_CONTEXT | FI_CONTEXT2 | FI_RX_CQ_DATA;
  h->domain_attr->mr_mode =
      FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
  h->domain_attr->threading = FI_THREAD_DOMAIN;
  h->tx_attr->msg_order = FI_ORDER_WAW | FI_ORDER_SAW | FI_ORDER_SAS;
  h->tx_attr->op_flags = completion;
  h->fabric_attr->prov_name = strdup(prov.c_str());
  return h;
}

// Copies an EpAddr into malloc'ed memory fi_freeinfo may free.
bool SetAddr(const EpAddr& a, void** addr, size_t* len) {
  sockaddr_storage ss;
  const size_t n = a.ToSockaddr(&ss);
  if (n == 0) return false;
  *addr = std::malloc(n);
  if (*addr == nullptr) return false;
  std::memcpy(*addr, &ss, n);
  *len = n;
  return true;
}

// The first entry of `list` that is exactly `prov` and has what we need.
const fi_info* Usable(const fi_info* list, const std::string& prov) {
  for (const fi_info* i = list; i != nullptr; i = i->next) {
    if (prov != i->fabric_attr->prov_name) continue;
    if (i->domain_attr->cq_data_size < 8) continue;
    if (i->domain_attr->mr_key_size > 8) continue;
    return i;
  }
  return nullptr;
}

fi_info* Query(const std::string& prov, const EpAddr& src, const EpAddr* dst,
               uint64_t completion, int* rc) {
  fi_info* hints = BaseHints(prov, completion);
  if (hints == nullptr) {
    *rc = -FI_ENOMEM;
    return nullptr;
  }
  hints->addr_format =
      src.format == AddrFormat::kIn6 ? FI_SOCKADDR_IN6 : FI_SOCKADDR_IN;
  fi_info* list = nullptr;
  fi_info* found = nullptr;
  *rc = -FI_EINVAL;
  if (SetAddr(src, &hints->src_addr, &hints->src_addrlen) &&
      (dst == nullptr ||
       SetAddr(*dst, &hints->dest_addr, &hints->dest_addrlen))) {
    *rc = fi_getinfo(FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION), nullptr,
                     nullptr, 0, hints, &list);
  }
  if (*rc == 0) {
    const fi_info* pick = Usable(list, prov);
    if (pick != nullptr) found = fi_dupinfo(pick);
    if (found == nullptr) *rc = -FI_ENODATA;
  }
  fi_freeinfo(list);
  fi_freeinfo(hints);
  return found;
}

}  // namespace

bool IsSoftwareProvider(const std::string& name) {
  return name == "tcp" || name == "sockets" || name == "udp" || name == "net";
}

ProviderPolicy PolicyFromEnv(const std::string& forced) {
  ProviderPolicy p;
  p.allow_software = EnvFlag("USMC_FABRIC_ALLOW_TCP");
  std::string named = forced;
  if (named.empty()) {
    const char* v = std::getenv("USMC_FABRIC_PROVIDER");
    if (v != nullptr) named = v;
  }
  std::vector<std::string> wanted;
  if (!named.empty()) {
    wanted.push_back(named);
  } else {
    wanted = {"verbs", "efa", "tcp"};
  }
  for (const std::string& n : wanted) {
    if (IsSoftwareProvider(n) && !p.allow_software) {
      if (!named.empty()) p.rejected = n;
      continue;
    }
    p.candidates.push_back(n);
  }
  return p;
}

ProviderTraits TraitsOf(const fi_info* info) {
  ProviderTraits t;
  const uint64_t mr = info->domain_attr->mr_mode;
  t.mr_local = (mr & FI_MR_LOCAL) != 0;
  t.mr_virt_addr = (mr & FI_MR_VIRT_ADDR) != 0;
  t.mr_prov_key = (mr & FI_MR_PROV_KEY) != 0;
  // FI_MR_BASIC (old API) means virtual addresses and provider keys.
  if (mr == FI_MR_BASIC) t.mr_virt_addr = t.mr_prov_key = true;
  t.rx_cq_data = (info->mode & FI_RX_CQ_DATA) != 0;
  t.completion = (info->tx_attr->op_flags & FI_DELIVERY_COMPLETE) != 0
                     ? FI_DELIVERY_COMPLETE
                     : FI_TRANSMIT_COMPLETE;
  t.inject_size = info->tx_attr->inject_size;
  t.tx_depth = std::min(info->tx_attr->size, kMaxDepth);
  t.rx_depth = std::min(info->rx_attr->size, kMaxDepth);
  return t;
}

// Delivery-complete first: on tcp a transmit completion only means "in the
// socket buffer", which a dead path loses. Reliable-connected hardware
// (verbs) acks in hardware, so transmit-complete is enough there.
fi_info* GetInfo(const std::string& prov, const EpAddr& src, const EpAddr* dst,
                 std::string* err) {
  int rc = 0;
  fi_info* info = Query(prov, src, dst, FI_DELIVERY_COMPLETE, &rc);
  if (info == nullptr && !IsSoftwareProvider(prov)) {
    info = Query(prov, src, dst, FI_TRANSMIT_COMPLETE, &rc);
  }
  if (info == nullptr) {
    *err = prov + ": " + fi_strerror(-rc);
  }
  return info;
}

fi_info* SelectInfo(const ProviderPolicy& policy, const EpAddr& src,
                    const EpAddr* dst, std::string* chosen, std::string* err) {
  std::string errors;
  for (const std::string& prov : policy.candidates) {
    std::string e;
    fi_info* info = GetInfo(prov, src, dst, &e);
    if (info != nullptr) {
      *chosen = prov;
      return info;
    }
    errors += (errors.empty() ? "" : "; ") + e;
  }
  if (!policy.rejected.empty()) {
    errors += (errors.empty() ? "" : "; ") + policy.rejected +
              ": software provider refused (set USMC_FABRIC_ALLOW_TCP=1)";
  }
  *err = errors.empty() ? "no provider allowed" : errors;
  return nullptr;
}

bool ParseIp(const std::string& text, uint16_t port, EpAddr* out) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  std::string host = text;
  std::string scope;
  const size_t pct = host.find('%');
  if (pct != std::string::npos) {
    scope = host.substr(pct + 1);
    host.resize(pct);
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (scope.empty() && inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    len = sizeof *in;
  } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_scope_id = scope.empty() ? 0 : IfIndex(scope);
    len = sizeof *in6;
  } else {
    return false;
  }
  return EpAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len, out);
}

}  // namespace usmc::fabric
