// The cross-host link (SMC-R): connections whose peer runs on another host
// move their bytes with RMA writes over a libfabric link group
// (link/fabric), while the engine's Conn code stays the one it runs on
// shared memory.
//
// The scheme ("mirrored slots"): each side keeps the connection in a slot of
// a segment of its own, laid out as a same-host slot, and registers the
// segment with the link group. The local ring the Conn produces into is the
// send buffer; the ring it consumes from is the RMB the peer RMA-writes. After
// the Conn publishes a cursor or a flag, RemoteFlush writes the new bytes to
// the same ring positions of the peer's slot and then sends a CDC message
// (producer and consumer cursors, connection flags), ordered after the writes
// on the same link. The progress thread (remote_pump.cc) applies the peer's
// CDCs to the local slot's control words, where the Conn validates them as it
// validates a same-host peer.
//
// Send space: a byte of the send ring is written over only after the peer's
// consumer cursor passed it, which it can only do once the write carrying it
// completed; a failover re-issues unfinished writes minus what the peer
// consumed (OnReissue), from the same bytes.
//
// Wake-ups: only the progress thread sees that the peer's data, space or
// close arrived, so it is the side that rings: it clears the local waiting
// flag (exchanging it, as the ringing side does on shared memory) and bumps
// the connection's eventfd, which a sleeper polls next to the TCP socket
// (Conn::wake_fd). Nothing on the data path depends on the TCP connection's
// own path, which may run over the interface that just failed.
//
// Lifetimes: a group serves the connections between this process and one peer
// process (libfabric resources belong to a process); it is kept while it has
// connections. A RemoteConn lives from the handshake to the end of Close: the
// close flags and a final fence write must have completed before the TCP
// connection (held by a duplicate descriptor) is closed, so the peer never
// sees the FIN before the data. Nothing here works in a forked child: its
// copies of remote connections are left alone (their TCP connection still
// reports the peer's end).
#ifndef USMC_ENGINE_REMOTE_H_
#define USMC_ENGINE_REMOTE_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "link/shm/segment.h"

namespace usmc::engine {

class RemoteGroup;
struct RemoteConn;

// What one side tells the other about its half of a connection (CLC
// Accept/Confirm fields).
struct RemoteEnd {
  uint32_t region = 0;  // segment region id in the owner's group
  uint32_t slot = 0;
  uint32_t token = 0;  // the owner's connection token (CDCs carry it)
};

// A slot reserved for a connection being set up. Its RemoteConn exists from
// the reservation on: the peer may write and send CDCs as soon as it has our
// end, before our side of the handshake finished.
struct RemoteSlot {
  RemoteGroup* group = nullptr;
  shm::Segment* seg = nullptr;
  RemoteConn* rc = nullptr;
  RemoteEnd end;
};

// Server: the group for connections from client process (peer_id, pid),
// created on first sight (*first_contact: this connection sets up the first
// link). `local` is the TCP connection's own address, the default link
// address. Null with *err when no fabric can be used.
RemoteGroup* ServerGroup(uint64_t peer_id, uint32_t pid, const sockaddr* local,
                         socklen_t local_len, bool* first_contact,
                         std::string* err);
// Client: the group the server named with `group_nonce`, created on first
// sight (an Accept of a later connection may overtake the first contact's).
RemoteGroup* ClientGroup(uint64_t peer_id, uint32_t pid, uint64_t group_nonce,
                         const sockaddr* local, socklen_t local_len,
                         std::string* err);
uint64_t GroupNonce(const RemoteGroup* g);

// First contact. Blobs are serialized fabric::LinkAddress values for the CLC
// Accept (offer) and Confirm (answer), at most `cap` bytes. Server: Offer
// after reserving the first slot; AcceptGroup with the Confirm's answer
// connects the first link and waits (bounded) until it is confirmed. Client:
// AnswerGroup after reserving its slot, then JoinGroup after sending the
// Confirm.
bool OfferGroup(RemoteGroup* g, uint8_t* offer, size_t cap, uint8_t* len,
                std::string* err);
bool AcceptGroup(RemoteGroup* g, const uint8_t* answer, uint8_t len,
                 std::string* err);
bool AnswerGroup(RemoteGroup* g, const uint8_t* offer, uint8_t offer_len,
                 uint8_t* answer, size_t cap, uint8_t* len, std::string* err);
bool JoinGroup(RemoteGroup* g, std::string* err);
// The first contact failed: the group will not come up.
void AbandonGroup(RemoteGroup* g);

// A slot for a new connection with rings of ring_bytes; false when memory or
// registration fails.
bool ReserveRemoteSlot(RemoteGroup* g, uint32_t ring_bytes, shm::Side side,
                       RemoteSlot* out);
void ReleaseRemoteSlot(const RemoteSlot& s);
// The handshake agreed: the connection is bound to the peer's end. `tcp_fd`
// is duplicated (the doorbell and liveness channel stays open until the close
// completed). Null when the peer's end is unusable.
RemoteConn* BindRemote(const RemoteSlot& s, const RemoteEnd& peer, int tcp_fd);
// The connection's arena record, for `usmc ss` (group id, links).
void AttachRecord(RemoteConn* rc, struct ConnState* st);

// True in the process that set the connection up; a forked child's copy is
// not usable (its writes would never leave this host) and does not hold it.
bool RemoteMine(const RemoteConn* rc);

// Called by Conn after it published its own cursors or flags.
void RemoteFlush(RemoteConn* rc);
// The peer's FIN or RST arrived on TCP: apply every CDC already received, so
// no byte written before the FIN is mistaken for missing.
void RemoteSync(RemoteConn* rc);
// The last holder closed the connection (flags already set in the slot).
void RemoteClosed(RemoteConn* rc);

// The eventfd the progress thread bumps when a waiter of this connection may
// proceed; readable until Conn::Pump drains it.
int RemoteWakeFd(const RemoteConn* rc);

// True on threads inside the fabric layer (the progress thread, a handshake
// setting up links): libfabric's own sockets must stay plain.
bool InsideFabric();
class FabricScope {
 public:
  FabricScope();
  ~FabricScope();
  FabricScope(const FabricScope&) = delete;
  FabricScope& operator=(const FabricScope&) = delete;

 private:
  bool was_;
};

// After fork, in the child: groups belong to the parent.
void RemoteAfterForkChild();

}  // namespace usmc::engine

#endif  // USMC_ENGINE_REMOTE_H_
