#include "preload/inherit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <unordered_map>

#include "engine/arena.h"
#include "engine/handshake.h"
#include "preload/fdtable.h"
#include "preload/socket.h"
#include "util/log.h"
#include "util/sys.h"

namespace usmc::preload {
namespace {

constexpr char kVar[] = "USMC_INHERIT";

struct Entry {
  int fd, seg_fd;
  unsigned seg_id, slot, side;
  uint64_t seg_bytes, offset, inode;
};

uint64_t InodeOf(int fd) {
  struct stat st;
  return sys::Fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_ino : 0;
}

bool KeepOpen(int fd, std::vector<int>* undo) {
  int flags = sys::Fcntl(fd, F_GETFD);
  if (flags < 0) return false;
  if ((flags & FD_CLOEXEC) && sys::Fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0)
    undo->push_back(fd);
  return true;
}

// One surviving connection as
// "FD,SEG_FD,SEG_ID,SEG_BYTES,SLOT,SIDE,OFFSET,INODE".
bool Describe(Socket* s, std::vector<int>* undo, std::string* out) {
  int fd = s->fd();
  int flags = sys::Fcntl(fd, F_GETFD);
  if (flags < 0 || (flags & FD_CLOEXEC))
    return false;  // does not survive the exec
  SockState st = s->state();
  if (st == SockState::kServerHandshake && s->remote) s->RefuseRemote();
  if (st == SockState::kConnecting || st == SockState::kClientHandshake ||
      st == SockState::kServerHandshake) {
    s->Finish(sys::NowNs() +
              engine::ClcDeadlineNs());  // the new image could not resume it
  }
  if (s->state() != SockState::kActive) return false;
  engine::Conn* c = s->conn();
  if (c->remote() != nullptr) {
    // A cross-host connection lives in this image's link group, which the
    // exec ends: the peer is told at once (RST), as if the process had died.
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    sys::Connect(fd, &unspec, sizeof unspec);
    return false;
  }
  shm::Segment* seg = c->segment();
  if (!KeepOpen(seg->fd(), undo)) return false;
  char buf[160];
  snprintf(buf, sizeof buf, ";%d,%d,%u,%" PRIu64 ",%u,%d,%" PRIu64 ",%" PRIu64,
           fd, seg->fd(), seg->id(), seg->bytes(), c->slot(),
           static_cast<int>(c->side()),
           engine::Arena::Get().OffsetOf(c->state()), InodeOf(fd));
  *out += buf;
  return true;
}

bool Parse(const char* p, Entry* e) {
  return sscanf(p, "%d,%d,%u,%" SCNu64 ",%u,%u,%" SCNu64 ",%" SCNu64, &e->fd,
                &e->seg_fd, &e->seg_id, &e->seg_bytes, &e->slot, &e->side,
                &e->offset, &e->inode) == 8;
}

// The inherited arena, mapped once; records are addressed by offset and checked
// against its size.
struct InheritedArena {
  uint8_t* base = nullptr;
  uint64_t bytes = 0;
  engine::ConnState* At(uint64_t off) const {
    if (off % alignof(engine::ConnState) != 0 || off > bytes ||
        bytes - off < sizeof(engine::ConnState)) {
      return nullptr;
    }
    return reinterpret_cast<engine::ConnState*>(base + off);
  }
};

bool MapArena(int fd, InheritedArena* a) {
  struct stat st;
  if (sys::Fstat(fd, &st) != 0 || st.st_size <= 0) return false;
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size),
                 PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  sys::Fcntl(fd, F_SETFD, FD_CLOEXEC);
  a->base = static_cast<uint8_t*>(p);
  a->bytes = static_cast<uint64_t>(st.st_size);
  return true;
}

void AdoptOne(const Entry& e, const InheritedArena& arena,
              std::unordered_map<int, shm::Segment*>* segs) {
  engine::ConnState* st = arena.At(e.offset);
  if (st == nullptr || e.side > 1 || e.inode == 0 || InodeOf(e.fd) != e.inode)
    return;
  shm::Segment*& seg = (*segs)[e.seg_fd];
  if (seg == nullptr) {
    sys::Fcntl(e.seg_fd, F_SETFD, FD_CLOEXEC);
    static auto* kept =
        new std::vector<std::unique_ptr<shm::Segment>>();  // live as long as we
                                                           // do
    auto attached = shm::Segment::Attach(e.seg_id, e.seg_fd, e.seg_bytes);
    if (!attached) return;
    seg = attached.get();
    kept->push_back(std::move(attached));
  }
  if (e.slot >= seg->slot_count()) return;
  engine::Conn::Setup setup;
  setup.tcp_fd = e.fd;
  setup.side = e.side == 0 ? shm::Side::kClient : shm::Side::kServer;
  setup.st = st;
  setup.seg = seg;
  setup.slot = e.slot;
  Socket* s = Socket::Adopt(e.fd, e.side == 0 ? Role::kClient : Role::kServer,
                            std::make_unique<engine::Conn>(setup));
  FdTable::Get().Install(e.fd, s);
  s->Unref();
  USMC_LOG("fd=%d accelerated connection inherited across exec", e.fd);
}

}  // namespace

std::string PrepareExec(std::vector<int>* undo) {
  std::string desc;
  FdTable::Get().ForEach([&](Socket* s) { Describe(s, undo, &desc); });
  if (desc.empty()) return "";
  int arena_fd = engine::Arena::Get().fd();
  if (!KeepOpen(arena_fd, undo)) return "";
  return std::to_string(arena_fd) + desc;
}

void ExecFailed(const std::vector<int>& undo) {
  for (int fd : undo)
    sys::Fcntl(fd, F_SETFD, sys::Fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

void AdoptInherited() {
  const char* v = getenv(kVar);
  if (v == nullptr || *v == '\0') return;
  std::string text(v);
  unsetenv(kVar);  // ours alone: the program's own children must not see it
  char* end = nullptr;
  long arena_fd = strtol(text.c_str(), &end, 10);
  InheritedArena arena;
  if (end == text.c_str() || arena_fd < 0 ||
      !MapArena(static_cast<int>(arena_fd), &arena))
    return;
  std::unordered_map<int, shm::Segment*> segs;
  for (size_t pos = text.find(';'); pos != std::string::npos;
       pos = text.find(';', pos + 1)) {
    Entry e;
    if (Parse(text.c_str() + pos + 1, &e)) AdoptOne(e, arena, &segs);
  }
}

}  // namespace usmc::preload
