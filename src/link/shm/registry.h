// The registry of accelerated listeners in this network namespace.
//
// An accelerated listener binds an abstract-namespace datagram socket named
// after its address:
//   "\0usmc.L.<family>.<address>.<port>"   e.g. "\0usmc.L.4.127.0.0.1.6379",
//   "\0usmc.L.6.::.6379"
// (IPv4-mapped IPv6 listener addresses are registered as IPv4; a dual-stack
// "::" listener also registers "\0usmc.L.4.0.0.0.0.<port>"). The socket's
// lifetime is the listener's: it is closed when the listener is closed,
// inherited by fork, and vanishes when the process dies, so no entry goes
// stale. Abstract names are scoped to the network namespace, as are the
// addresses they name.
//
// A client looks a destination up with connect() on a private datagram socket:
// success means an accelerated listener exists; ECONNREFUSED/ENOENT means none.
// Lookup order: exact address, then the wildcard of its family (only for local
// destinations). The dual-stack wildcard needs no probe of its own: it
// registered the IPv4 wildcard too, and an IPv6-only "::" never serves IPv4
// destinations.
#ifndef USMC_LINK_SHM_REGISTRY_H_
#define USMC_LINK_SHM_REGISTRY_H_

#include <sys/socket.h>

namespace usmc::shm {

// A registry entry: up to two datagram socket fds (CLOEXEC), -1 where unused.
struct RegistryEntry {
  int fds[2] = {-1, -1};
  void Close();  // closes both (uses the real close; safe to call twice)
};

// Registers `addr` (the listener's bound address from getsockname). `v6only`
// tells whether an IPv6 wildcard listener is IPv6-only. Returns false (errno
// set) if the name is already taken (another listener in this namespace, e.g.
// SO_REUSEPORT) - the caller then must not accelerate the listener.
bool RegisterListener(const sockaddr* addr, socklen_t len, bool v6only,
                      RegistryEntry* out);

// True if an accelerated listener in this namespace serves `dst`.
// `dst_is_local` tells whether `dst` is an address of this host (wildcard
// entries are consulted only then).
bool LookupListener(const sockaddr* dst, socklen_t len, bool dst_is_local);

// True if `dst` is an address of this host in this namespace: 127/8, ::1,
// v4-mapped loopback, the unspecified address, or an address the kernel routes
// locally (a UDP connect() picks `dst` itself as source; unlike a bind test not
// fooled by ip_nonlocal_bind). Cached per address (64 entries) for the process
// lifetime.
bool IsLocalAddress(const sockaddr* dst, socklen_t len);

// The process-wide datagram socket LookupListener connect()s with (CLOEXEC,
// created on first use), or -1. The preload layer must treat it as internal: if
// the application closes this number and reuses it for its own AF_UNIX datagram
// socket, a lookup would re-connect that socket.
int RegistryProbeFd();

}  // namespace usmc::shm

#endif  // USMC_LINK_SHM_REGISTRY_H_
