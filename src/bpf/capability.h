// Whether the peer of a TCP connection signalled SMC capability in the TCP
// handshake, as the sockops program of `usmc bpf install` recorded it.
//
// For libusmc.so: no libbpf, no allocation, never blocks (one bpf(2) map
// lookup, ~1 us). The map is opened read-only on first use (BPF_OBJ_GET with
// BPF_F_RDONLY on the pin, which `usmc bpf install` makes readable by all),
// and the descriptor is cached for the life of the process (close-on-exec,
// inherited by fork). While nothing is installed, opening is retried at most
// once a second.
//
// The answer is a hint: the CLC handshake on the connection stays the
// authority (a middlebox may strip or echo the option).
#ifndef USMC_BPF_CAPABILITY_H_
#define USMC_BPF_CAPABILITY_H_

#include "bpf/usmc_sockops.h"

namespace usmc::bpf {

enum class PeerCapability {
  kCapable,     // our SYN/SYN-ACK carried the option and the peer's did too
  kNotCapable,  // the program saw the handshake and the peer did not signal
  kUnknown,     // nothing installed, or the program did not see this socket
                // (created outside the cgroup, or not established yet)
};

// For a connected TCP socket `fd`: on the connecting side after connect()
// completed (for a non-blocking connect: once the fd is writable), on the
// accepting side as soon as accept() returned it. `info` (optional) gets the
// raw record when the result is not kUnknown.
PeerCapability LookupPeerCapability(int fd, usmc_peer_info* info = nullptr);

// Whether the program is installed (its record map can be opened): then every
// connection of a process under `usmc run` carried the option on its SYN.
bool SignalInstalled();

// "capable", "not_capable", "unknown".
const char* PeerCapabilityName(PeerCapability c);

// Drops the cached map descriptor (closing it) so the next lookup opens the
// pin again, e.g. after a test reinstalled the program or changed
// USMC_BPF_PIN_DIR. Not safe against concurrent lookups.
void ForgetPeerMap();

}  // namespace usmc::bpf

#endif  // USMC_BPF_CAPABILITY_H_
