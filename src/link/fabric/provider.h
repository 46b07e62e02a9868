// Which libfabric provider a link may use, and the fi_getinfo query that
// finds an FI_EP_MSG endpoint with RMA writes + 8 bytes of remote CQ data.
//
// Policy: USMC_FABRIC_PROVIDER names one provider; otherwise "verbs", then
// "efa", then "tcp" are tried in that order. A software provider (tcp,
// sockets, udp, net) is never chosen unless USMC_FABRIC_ALLOW_TCP=1, even
// when named: it is slower than the kernel TCP it would replace.
#ifndef USMC_LINK_FABRIC_PROVIDER_H_
#define USMC_LINK_FABRIC_PROVIDER_H_

#include <rdma/fabric.h>

#include <string>
#include <vector>

#include "link/fabric/link_address.h"

namespace usmc::fabric {

struct ProviderPolicy {
  std::vector<std::string> candidates;  // in order of preference
  bool allow_software = false;
  std::string rejected;  // a named provider the policy refused, for errors
};

// Reads USMC_FABRIC_PROVIDER and USMC_FABRIC_ALLOW_TCP. `forced` (if not
// empty) replaces USMC_FABRIC_PROVIDER.
ProviderPolicy PolicyFromEnv(const std::string& forced = "");
bool IsSoftwareProvider(const std::string& name);

// How a chosen provider wants memory, addresses and completions handled.
struct ProviderTraits {
  bool mr_local = false;      // FI_MR_LOCAL: local buffers need a descriptor
  bool mr_virt_addr = false;  // FI_MR_VIRT_ADDR: remote address = VA
  bool mr_prov_key = false;   // FI_MR_PROV_KEY: the provider picks keys
  bool rx_cq_data = false;    // FI_RX_CQ_DATA: remote CQ data eats a receive
  uint64_t completion = 0;    // FI_DELIVERY_COMPLETE or FI_TRANSMIT_COMPLETE
  size_t inject_size = 0;
  size_t tx_depth = 0;
  size_t rx_depth = 0;
};
ProviderTraits TraitsOf(const fi_info* info);

// fi_getinfo for `prov` with source `src` (port may be 0) and, for the
// connecting side, destination `dst` (nullptr for a listener). The result
// is one fi_info (free with fi_freeinfo) or nullptr with *err set.
fi_info* GetInfo(const std::string& prov, const EpAddr& src, const EpAddr* dst,
                 std::string* err);

// Tries the policy's candidates in order; *chosen names the one found.
fi_info* SelectInfo(const ProviderPolicy& policy, const EpAddr& src,
                    const EpAddr* dst, std::string* chosen, std::string* err);

// "10.0.0.1" or "fe80::1%eth0" (port 0) into an EpAddr with port `port`.
bool ParseIp(const std::string& text, uint16_t port, EpAddr* out);

}  // namespace usmc::fabric

#endif  // USMC_LINK_FABRIC_PROVIDER_H_
