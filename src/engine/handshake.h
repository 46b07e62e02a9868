// The CLC handshake on the connection's own TCP stream (RFC 7609 §3): Proposal
// -> Accept -> Confirm, or a Decline from either side, after which both ends
// stay on TCP.
//
// Both state machines are non-blocking: each Step() does what the bytes already
// on the socket allow and says what it waits for. Messages are read
// peek-then-read — the header is peeked, then exactly `length` bytes are read —
// so bytes after the handshake (doorbells, or application data after a
// fallback) stay in the socket. Whoever drives a machine enforces the CLC
// deadline (ClcDeadlineNs).
#ifndef USMC_ENGINE_HANDSHAKE_H_
#define USMC_ENGINE_HANDSHAKE_H_

#include <cstdint>
#include <memory>

#include "engine/conn.h"
#include "wire/clc.h"

namespace usmc::engine {

enum class HsResult {
  kWantRead,  // call Step() again when the TCP socket is readable
  kDone,      // accelerated: TakeConn()
  kFallback,  // stay on TCP; reason() says why; the stream is clean
  kReset,     // the stream can't be trusted: caller resets the connection
              // (reason() says why)
};

uint64_t
ClcDeadlineNs();        // USMC_CLC_TIMEOUT_MS, default 6000 ms as CLC_WAIT_TIME
uint64_t HostPeerId();  // this host's identity in CLC messages
uint32_t DefaultRingBytes();
uint32_t RingBytesFor(
    uint64_t requested);  // smallest ring size class that holds `requested`

class ClientHandshake {
 public:
  // remote: offer the cross-host link (SMC-R) instead of the same-host one.
  ClientHandshake(int tcp_fd, uint32_t ring_bytes, bool remote = false,
                  bool wait_hello = false);
  ~ClientHandshake();  // a Conn made from an Accept but never taken is closed
  // Sends the Proposal. kFallback if the station cannot open or the send fails.
  // Cross-host and decided by the BPF signal (wait_hello), the server speaks
  // first (ServerHandshake::SendHello): Start only waits, and nothing is sent
  // to a peer that turns out to be plain (the option may have been echoed by
  // a middlebox). A hello that comes when we did not wait is skipped.
  HsResult Start();
  // Reads the Accept (or Decline), maps the segment, sends Confirm.
  HsResult Step();
  // The server did not answer in time: decline, so that a late server falls
  // back too. False if even the Decline cannot be sent.
  bool GiveUp();
  std::unique_ptr<Conn> TakeConn() { return std::move(conn_); }
  uint32_t reason() const { return reason_; }
  bool peer_declined() const {
    return peer_declined_;
  }  // reason() is the peer's diagnosis
  ConnState* state() const {
    return conn_ ? conn_->state() : nullptr;
  }  // after the Accept

 private:
  HsResult OnAccept(const wire::Accept& a);
  HsResult OnAcceptRemote(const wire::Accept& a);  // handshake_remote.cc
  HsResult OnHello(const uint8_t* msg, size_t len);
  HsResult SendProposal();
  HsResult Decline(uint32_t code);

  int fd_;
  uint32_t ring_bytes_;
  bool remote_;
  RemoteSlot rslot_;  // reserved until a Conn owns it
  bool rslot_held_ = false;
  bool wait_hello_;
  bool awaiting_hello_ = false;  // cross-host: nothing sent yet
  uint32_t reason_ = 0;
  bool peer_declined_ = false;
  std::unique_ptr<Conn> conn_;
};

class ServerHandshake {
 public:
  ServerHandshake(int tcp_fd, uint32_t ring_bytes);
  ~ServerHandshake();  // gives back a granted slot that was never taken as a
                       // Conn
  // Awaits the Proposal (kNotClc at the head of the stream -> kFallback, data
  // left in place), grants a slot, sends the Accept, awaits the Confirm.
  HsResult Step();
  // Cross-host, at accept, when the BPF signal decided: an SMC-R Proposal from
  // the server tells the client that a usmc server is there (the TCP option
  // alone may have been echoed by a middlebox); the client proposes only
  // after it. False if the send failed.
  bool SendHello();
  // A cross-host Proposal is answered with a Decline (`code`): the process is
  // about to exec, and a link group does not survive that.
  void RefuseRemote(uint32_t code) { refuse_remote_ = code; }
  std::unique_ptr<Conn> TakeConn() {
    granted_ = false;  // the slot now belongs to the Conn
    return std::move(conn_);
  }
  uint32_t reason() const { return reason_; }
  // The arena record of a granted slot (holders counted across fork), or
  // nullptr.
  ConnState* state() const { return granted_ ? st_ : nullptr; }

 private:
  HsResult OnProposal(const wire::Proposal& p);
  HsResult OnConfirm(const wire::Confirm& c);
  HsResult OnProposalRemote(const wire::Proposal& p);  // handshake_remote.cc
  HsResult OnConfirmRemote(const wire::Confirm& c);
  void ReleaseRemote();
  HsResult Decline(uint32_t code);

  int fd_;
  uint32_t ring_bytes_;
  uint32_t reason_ = 0;
  bool granted_ = false;
  shm::Segment* seg_ = nullptr;
  uint32_t slot_ = 0;
  uint32_t token_ = 0;
  uint64_t link_nonce_ = 0;
  ConnState* st_ = nullptr;
  std::unique_ptr<Conn> conn_;
  bool remote_ = false;  // the Proposal asked for the cross-host link
  bool first_contact_ = false;
  uint32_t refuse_remote_ = 0;
  RemoteSlot rslot_;
  bool rslot_held_ = false;
};

// A Conn on a slot, with a fresh arena record (nullptr when the arena is
// full); `remote` for the cross-host link.
std::unique_ptr<Conn> MakeConn(int fd, shm::Side side, shm::Segment* seg,
                               uint32_t slot, RemoteConn* remote = nullptr);

// Reads one whole CLC message at the head of the socket without blocking.
// Returns kOk with the message in buf/len, kNeedMore if it is not all there
// yet, kNotClc if application data is at the head (nothing consumed), or an
// error status (the message, if framed, is consumed).
wire::ParseStatus ReadClc(int fd, uint8_t* buf, size_t cap, size_t* len,
                          wire::ClcHeader* hdr);
bool SendClc(int fd, const uint8_t* buf, size_t len);

// Encodes and sends one CLC message; false if it did not all go.
template <typename Msg>
bool SendClcMessage(int fd, const Msg& m) {
  uint8_t buf[wire::kClcMaxSize];
  size_t n = wire::Encode(m, buf);
  return n > 0 && SendClc(fd, buf, n);
}

// A Decline with this host's identity; a code that has no wire form goes as
// INTERR.
bool SendDecline(int fd, uint32_t code);

}  // namespace usmc::engine

#endif  // USMC_ENGINE_HANDSHAKE_H_
