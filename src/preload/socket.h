// Socket: usmc's state for one TCP socket it manages — an accelerated listener,
// a connection whose CLC handshake is under way, or an accelerated connection.
// A socket that falls back to TCP leaves the fd table and is a plain kernel
// socket from then on.
//
// Invariants:
// - `state` only moves forward: handshake states -> kActive, or out of the
// table (fallback/reset).
// - Transitions happen under `mu`; the data path reads `state` (atomic) and
// uses `conn` only in
//   kActive, where conn never changes until the Socket dies.
// - One Socket may sit under several fd numbers (dup); `fds` counts them, and
// the process's last
//   close ends the connection for this process (Conn::Close).
#ifndef USMC_PRELOAD_SOCKET_H_
#define USMC_PRELOAD_SOCKET_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "engine/conn.h"
#include "engine/handshake.h"
#include "link/shm/registry.h"
#include "link/shm/synmark.h"

namespace usmc::preload {

enum class SockState : uint8_t {
  kListener,         // accelerated listener (registry entry held)
  kConnecting,       // non-blocking connect in flight, SYN marked
  kClientHandshake,  // Proposal sent, awaiting Accept
  kServerHandshake,  // marked SYN accepted, awaiting Proposal / Confirm
  kServerUnknown,  // accepted without SYN information (SYN cookies): decide at
                   // first use
  kStripProposal,  // fell back mid-handshake: drop a CLC message at the head of
                   // the stream
  kActive,         // accelerated
};

enum class Role : uint8_t { kClient, kServer };

class Socket {
 public:
  static Socket* New(SockState st, Role role, int fd);
  // An accelerated connection this process inherited across exec
  // (preload/inherit.h).
  static Socket* Adopt(int fd, Role role, std::unique_ptr<engine::Conn> conn);
  void Ref();
  bool TryRef();  // fails once the count reached zero (object recycled)
  void Unref();

  // Runs the handshake as far as it can without blocking. Returns false if the
  // socket left usmc (fell back or was reset): the caller must drop it and
  // treat the fd as plain.
  bool Advance();
  // The TCP connect completed synchronously: unmark the SYN and send the
  // Proposal.
  bool ConnectDone();
  // Drives the handshake to the end (blocking) or until deadline_ns. Returns
  // false as Advance, and on a timeout (the connection is then reset: errno
  // ETIMEDOUT).
  bool Finish(uint64_t deadline_ns);
  // The server wrote before anything arrived on a connection of unknown kind
  // (SYN cookie): it stays TCP, and a Proposal the client may still send is
  // dropped at the first read (kStripProposal).
  void ServerWroteFirst();
  // kStripProposal, before a read: waits (blocking, or until deadline_ns) for
  // the head of the stream and drops a CLC message there. False once the socket
  // is plain (the caller drops it); true with errno EAGAIN/EINTR if the wait
  // ended first.
  bool StripWait(uint64_t deadline_ns);
  // Before an exec: a cross-host handshake this server has not finished is
  // declined (the link group would not survive the exec), so the new image
  // inherits a plain TCP connection with a clean stream.
  void RefuseRemote();
  // True if the socket still needs kernel readiness to make handshake progress,
  // and which.
  uint32_t HandshakeInterest() const;
  // Readiness as the application should see it (handshake states report nothing
  // but errors).
  uint32_t Events() const;

  SockState state() const { return state_.load(std::memory_order_acquire); }
  engine::Conn* conn() const { return conn_.get(); }
  // The family-shared record of the connection (accelerated, or mid-handshake
  // once memory was granted), or nullptr. Fork counts a holder on it.
  engine::ConnState* SharedState() const;
  Role role() const { return role_; }
  int fd() const { return fd_.load(std::memory_order_relaxed); }
  void set_fd(int fd);  // another fd number of the same socket takes over (dup,
                        // then close)

  std::mutex mu;
  std::atomic<int> fds{0};  // fd numbers of this process pointing here
  int rcvtimeo_ms = -1;
  int sndtimeo_ms = -1;
  uint32_t ring_bytes = 0;
  bool nonblock =
      false;  // before kActive (then the arena copy is authoritative)
  shm::RegistryEntry registry;
  shm::SavedTos saved_tos;
  uint64_t hs_deadline_ns = 0;
  uint32_t reason = 0;     // fallback / reset reason of the last failed step
  bool was_reset = false;  // the handshake ended in a reset (not a fallback)
  bool remote = false;     // the cross-host link
  bool say_hello = false;  // server: the client decided by the BPF signal and
                           // waits for our hello (a usmc server is here)
  // Client, BPF signal installed: the kernel's TCP handshake tells whether the
  // peer runs usmc; only then is a Proposal (or, with decline_remote, a
  // Decline) sent once connected.
  bool probe_signal = false;
  bool decline_remote = false;

 private:
  friend class FdTable;
  Socket() = default;
  void Reset(SockState st, Role role, int fd);
  void Destroy();
  enum class Signal { kPlain, kHandshake, kDeclined };
  bool StartClient();
  bool StartServer();  // under mu: the server handshake exists (hello sent)
  Signal CheckSignal();
  bool OnResult(engine::HsResult
                    r);  // after a step: the reason is read from the handshake
  bool AdvanceConnecting();
  bool AdvanceUnknown();
  bool AdvanceStrip();

  std::atomic<int> refs_{0};
  std::atomic<int> fd_{-1};
  std::atomic<SockState> state_{SockState::kListener};
  Role role_ = Role::kClient;
  std::unique_ptr<engine::Conn> conn_;
  std::unique_ptr<engine::ClientHandshake> client_hs_;
  std::unique_ptr<engine::ServerHandshake> server_hs_;
  Socket* next_free_ = nullptr;
};

// Logs a decision ("fd=N mode=SHM|TCP role=... [reason=...] local=...
// peer=...") when logging is on, and records it for `usmc ss`/`usmc stats`
// (src/stats): `st` is an accelerated connection's arena record; `by_peer`
// marks a fallback the peer declined; `peer_addr` stands in for getpeername
// while a connect is still in progress.
void LogMode(int fd, bool accelerated, Role role, uint32_t reason,
             engine::ConnState* st = nullptr, bool by_peer = false,
             const sockaddr* peer_addr = nullptr, socklen_t peer_len = 0,
             bool rdma = false);

// SO_RCVBUF/SO_SNDBUF size the rings (SMC does the same with its RMBs). Sizes
// asked for on a socket that is not usmc's yet are remembered until
// connect()/listen() takes them or the fd is closed.
void RememberBufferSize(int fd, int bytes);
uint32_t TakeRingBytes(
    int fd);  // the ring size for fd's connection (default if nothing asked)
void ForgetBufferSize(int fd);

// Removes fd from usmc (fallback): the table entry goes and epoll registrations
// become native.
void DropToPlain(int fd, Socket* s);

}  // namespace usmc::preload

#endif  // USMC_PRELOAD_SOCKET_H_
