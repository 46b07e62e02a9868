#include "preload/fdtable.h"

#include "preload/socket.h"
#include "util/once.h"

namespace usmc::preload {

FdTable& FdTable::Get() {
  static constinit util::Once<FdTable*> table;
  return *table.Get([] {
    return new FdTable();
  });  // never destroyed: fds are used during exit
}

bool FdTable::Maybe(int fd) const {
  std::atomic<Socket*>* slot = Slot(fd, false);
  return slot != nullptr && slot->load(std::memory_order_relaxed) != nullptr;
}

Socket* FdTable::Acquire(int fd) const {
  std::atomic<Socket*>* slot = Slot(fd, false);
  if (slot == nullptr) return nullptr;
  while (true) {
    Socket* s = slot->load(std::memory_order_acquire);
    if (s == nullptr) return nullptr;
    if (!s->TryRef()) continue;  // recycled under us: reload
    if (slot->load(std::memory_order_acquire) == s) return s;
    s->Unref();
  }
}

void FdTable::Install(int fd, Socket* s) {
  std::atomic<Socket*>* slot = Slot(fd, true);
  if (slot == nullptr) return;
  s->Ref();
  s->fds.fetch_add(1, std::memory_order_relaxed);
  Socket* old = slot->exchange(s, std::memory_order_acq_rel);
  if (old != nullptr) {  // fd number reused behind our back (e.g. dup2 by a raw
                         // syscall)
    old->fds.fetch_sub(1, std::memory_order_relaxed);
    old->Unref();
  }
}

Socket* FdTable::Remove(int fd) {
  std::atomic<Socket*>* slot = Slot(fd, false);
  return slot == nullptr ? nullptr
                         : slot->exchange(nullptr, std::memory_order_acq_rel);
}

void UnrefSocket(Socket* s) { s->Unref(); }

SocketRef::SocketRef(int fd) : s_(FdTable::Get().Acquire(fd)) {}

SocketRef::~SocketRef() {
  if (s_ != nullptr) s_->Unref();
}

}  // namespace usmc::preload
