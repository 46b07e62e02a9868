// Close semantics: shutdown as a flag in the slot, the last holder's close as
// closed/abort flags plus the kernel's FIN (or RST for unread data), and the
// release of this side of the slot.
#include <errno.h>
#include <sys/socket.h>

#include <atomic>

#include "engine/conn.h"
#include "engine/signals.h"

namespace usmc::engine {

namespace {
std::atomic<RestartQuery> g_restart_query{nullptr};
}

void SetRestartQuery(RestartQuery q) { g_restart_query.store(q); }

bool RestartAfterSignal() {
  RestartQuery q = g_restart_query.load(std::memory_order_relaxed);
  return q != nullptr && q();
}

int Conn::Shutdown(int how) {
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    errno = EINVAL;
    return -1;
  }
  if (how != SHUT_WR) st_->flags.fetch_or(kShutRd, std::memory_order_acq_rel);
  if (how == SHUT_RD) return 0;
  st_->flags.fetch_or(kShutWr, std::memory_order_acq_rel);
  tx_->p.conn_flags.fetch_or(wire::kCdcPeerDoneWriting,
                             std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (tx_->c.waiting_for_data.exchange(0, std::memory_order_acq_rel) != 0)
    Ring();
  if (remote_ != nullptr) RemoteFlush(remote_);
  return 0;
}

bool Conn::Close() {
  if (remote_ != nullptr) {
    // Cross-host, only the process that set the connection up holds it: a
    // child forked later (a background save, say) neither uses nor keeps it,
    // so the parent's close ends it even while the child lives.
    if (!RemoteMine(remote_)) return false;
  } else if (st_->holders.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return false;
  }
  uint32_t peer = rx_->p.conn_flags.load(std::memory_order_acquire);
  bool unread = BytesReadable() > 0 && !(peer & wire::kCdcPeerConnAbort);
  uint32_t flag = unread ? wire::kCdcPeerConnAbort : wire::kCdcPeerConnClosed;
  tx_->p.conn_flags.fetch_or(flag | wire::kCdcPeerDoneWriting,
                             std::memory_order_release);

  if (remote_ != nullptr) {
    // The fabric link releases the slot once both ends are done with it.
    RemoteClosed(remote_);
    Arena::Get().Free(st_);
    st_ = nullptr;
    return unread;
  }
  wire::Cursor prod =
      wire::Cursor::FromWord(st_->tx_prod.load(std::memory_order_relaxed));
  uint64_t produced = uint64_t{prod.wrap()} * ring_bytes_ + prod.count();
  shm::SlotHeader* h = seg_->slot(slot_);
  (side_ == shm::Side::kClient ? h->c2s_high : h->s2c_high)
      .store(produced, std::memory_order_relaxed);
  seg_->ReleaseSlot(slot_, side_);
  Arena::Get().Free(st_);
  st_ = nullptr;
  return unread;
}

}  // namespace usmc::engine
