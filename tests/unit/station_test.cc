#include "link/shm/station.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace usmc::shm {
namespace {

constexpr size_t kSegBytes = 8192;

int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

// Open fds whose /proc link starts with `prefix`.
int OpenFdCountOfKind(const char* prefix) {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) {
    char target[64] = {};
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(path.c_str(), target, sizeof target - 1) > 0 &&
        strncmp(target, prefix, strlen(prefix)) == 0) {
      ++n;
    }
  }
  closedir(d);
  return n;
}

// A memfd of `bytes` holding `text` at offset 0.
int MakeSegment(const std::string& text, size_t bytes = kSegBytes) {
  int fd = memfd_create("usmc-test-seg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) return -1;
  if (pwrite(fd, text.data(), text.size(), 0) !=
      static_cast<ssize_t>(text.size()))
    return -1;
  return fd;
}

std::string ReadMapped(const Offer& o, size_t n) {
  void* p = mmap(nullptr, o.segment_bytes, PROT_READ, MAP_SHARED, o.memfd, 0);
  if (p == MAP_FAILED) return "<mmap failed>";
  std::string s(static_cast<const char*>(p), n);
  munmap(p, o.segment_bytes);
  return s;
}

// A forked process that runs `body` (returning its exit code) and then waits
// for Release().
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    if (pipe(release_) != 0 || pipe(done_) != 0) abort();
    pid_ = fork();
    if (pid_ == 0) {
      close(release_[1]);
      close(done_[0]);
      char code = static_cast<char>(body());
      (void)!write(done_[1], &code, 1);
      char c;
      (void)!read(release_[0], &c, 1);
      _exit(code);
    }
    close(release_[0]);
    close(done_[1]);
  }
  ~Child() { Release(); }
  pid_t pid() const { return pid_; }
  // Waits until `body` has returned; its result (0 = fine).
  int WaitBody() {
    char code = 99;
    if (read(done_[0], &code, 1) != 1) return 98;
    return code;
  }
  // Ends the child and reaps it. (Killed: later children inherited our end of
  // its pipe.)
  void Release() {
    if (pid_ <= 0) return;
    close(release_[1]);
    close(done_[0]);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int release_[2];
  int done_[2];
};

// Body of a server process: connects to the station and sends one offer.
int SendOne(pid_t station_pid, uint64_t station_nonce, uint64_t link,
            uint32_t seg, const std::string& text, int* conn_out = nullptr) {
  int conn = ConnectStation(station_pid, station_nonce);
  if (conn < 0) return 1;
  int seg_fd = MakeSegment(text);
  if (seg_fd < 0) return 2;
  if (!SendOffer(conn, link, seg, kSegBytes, seg_fd)) return 3;
  close(seg_fd);
  if (conn_out != nullptr) *conn_out = conn;
  return 0;
}

// Sends a raw message with optional fds on `conn`.
bool SendRaw(int conn, const void* data, size_t len, const int* fds, int nfds) {
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 4)] = {};
  iovec iov{const_cast<void*>(data), len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (nfds > 0) {
    m.msg_control = ctrl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  return sendmsg(conn, &m, MSG_NOSIGNAL) == static_cast<ssize_t>(len);
}

struct RawOffer {
  char magic[8] = {'U', 'S', 'M', 'C', 'L', 'N', 'K', '1'};
  uint64_t link_nonce = 0;
  uint32_t segment_id = 0;
  uint32_t pad = 0;
  uint64_t segment_bytes = kSegBytes;
};

class StationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(station_.Open()) << strerror(errno); }
  void TearDown() override { station_.Close(); }
  Station station_;
};

TEST_F(StationTest, NameAndOpen) {
  EXPECT_EQ(StationName(1234, 0xabcdef), "usmc.S.1234.0000000000abcdef");
  EXPECT_TRUE(station_.is_open());
  EXPECT_EQ(station_.pid(), getpid());
  EXPECT_NE(station_.nonce(), 0u);
  EXPECT_TRUE(station_.Open());  // idempotent
  EXPECT_EQ(fcntl(station_.fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(fcntl(station_.fd(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
}

TEST_F(StationTest, OfferAcrossForkAndLaterSegmentOnSameConnection) {
  int conn = -1;
  Child server([&] {
    int rc =
        SendOne(station_.pid(), station_.nonce(), 77, 1, "segment one", &conn);
    if (rc != 0) return rc;
    int seg2 = MakeSegment("segment two");
    return SendOffer(conn, 77, 2, kSegBytes, seg2) ? 0 : 4;
  });
  ASSERT_EQ(server.WaitBody(), 0);
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(77, 1, server.pid(), 1000, &o))
      << strerror(errno);
  EXPECT_EQ(o.link_nonce, 77u);
  EXPECT_EQ(o.segment_id, 1u);
  EXPECT_EQ(o.segment_bytes, kSegBytes);
  EXPECT_GE(o.conn_fd, 0);
  EXPECT_EQ(fcntl(o.memfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(ReadMapped(o, 11), "segment one");
  Offer o2;
  ASSERT_TRUE(station_.TakeOffer(77, 2, server.pid(), 1000, &o2))
      << strerror(errno);
  EXPECT_EQ(ReadMapped(o2, 11), "segment two");
  EXPECT_EQ(o2.conn_fd, o.conn_fd);
  EXPECT_FALSE(
      station_.TakeOffer(77, 2, server.pid(), 0, &o2));  // taken once only
  EXPECT_EQ(errno, EAGAIN);
  close(o.memfd);
  close(o2.memfd);
}

TEST_F(StationTest, SecondSegmentSentLaterOnKeptConnection) {
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  int conn = -1;
  Child server([&] {
    int rc = SendOne(station_.pid(), station_.nonce(), 5, 1, "first", &conn);
    if (rc != 0) return rc;
    char c;
    if (read(go[0], &c, 1) != 1) return 5;
    int seg2 = MakeSegment("second");
    return SendOffer(conn, 5, 2, kSegBytes, seg2) ? 0 : 4;
  });
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(5, 1, server.pid(), 1000, &o));
  close(o.memfd);
  ASSERT_EQ(write(go[1], "x", 1), 1);
  ASSERT_EQ(server.WaitBody(), 0);
  ASSERT_TRUE(station_.TakeOffer(5, 2, server.pid(), 1000, &o))
      << strerror(errno);
  EXPECT_EQ(ReadMapped(o, 6), "second");
  close(o.memfd);
  close(go[0]);
  close(go[1]);
}

TEST_F(StationTest, WrongPidIsNotTaken) {
  Child server(
      [&] { return SendOne(station_.pid(), station_.nonce(), 9, 1, "data"); });
  ASSERT_EQ(server.WaitBody(), 0);
  Offer o;
  EXPECT_FALSE(station_.TakeOffer(9, 1, getpid(), 50, &o));
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_FALSE(station_.TakeOffer(9, 1, server.pid() + 100000, 0, &o));
  ASSERT_TRUE(station_.TakeOffer(9, 1, server.pid(), 0,
                                 &o));  // still there for the right pid
  close(o.memfd);
}

TEST_F(StationTest, WrongNonceOrSegmentIsNotTaken) {
  Child server(
      [&] { return SendOne(station_.pid(), station_.nonce(), 42, 3, "data"); });
  ASSERT_EQ(server.WaitBody(), 0);
  Offer o;
  EXPECT_FALSE(station_.TakeOffer(43, 3, server.pid(), 20, &o));
  EXPECT_FALSE(station_.TakeOffer(42, 4, server.pid(), 0, &o));
  ASSERT_TRUE(station_.TakeOffer(42, 3, server.pid(), 0, &o));
  close(o.memfd);
}

TEST_F(StationTest, MalformedMessagesAreDroppedAndTheirFdsClosed) {
  Child server([&] {
    int conn = ConnectStation(station_.pid(), station_.nonce());
    if (conn < 0) return 1;
    RawOffer good;
    good.link_nonce = 11;
    good.segment_id = 1;
    int seg = MakeSegment("real");
    int seg2 = MakeSegment("x");
    int small = MakeSegment("tiny", 100);
    int p[2];
    if (pipe(p) != 0) return 2;
    RawOffer bad_magic = good;
    bad_magic.magic[7] = '2';
    RawOffer bad_pad = good;
    bad_pad.pad = 1;
    char shorter[16] = "USMCLNK1";
    int two[2] = {seg, seg2};
    bool ok =
        SendRaw(conn, &bad_magic, sizeof bad_magic, &seg, 1) &&  // wrong magic
        SendRaw(conn, &bad_pad, sizeof bad_pad, &seg, 1) &&      // pad not zero
        SendRaw(conn, shorter, sizeof shorter, &seg, 1) &&       // short
        SendRaw(conn, &good, sizeof good, nullptr, 0) &&         // no fd
        SendRaw(conn, &good, sizeof good, two, 2) &&             // two fds
        SendRaw(conn, &good, sizeof good, &p[0], 1) &&           // not a memfd
        SendRaw(conn, &good, sizeof good, &small, 1);  // smaller than announced
    char longer[sizeof good + 8] = {};
    memcpy(longer, &good, sizeof good);
    ok = ok && SendRaw(conn, longer, sizeof longer, &seg, 1);  // too long
    ok =
        ok && SendRaw(conn, &good, sizeof good, &seg, 1);  // finally a good one
    return ok ? 0 : 3;
  });
  ASSERT_EQ(server.WaitBody(), 0);
  int before = OpenFdCount();
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(11, 1, server.pid(), 1000, &o));
  EXPECT_EQ(ReadMapped(o, 4), "real");
  close(o.memfd);
  EXPECT_EQ(OpenFdCount(),
            before + 1);  // only the kept connection: no received fd leaked
}

TEST_F(StationTest, DevShmFileIsNotAMemfd) {
  Child server([&] {
    int conn = ConnectStation(station_.pid(), station_.nonce());
    std::string path = "/dev/shm/usmc-station-test-" + std::to_string(getpid());
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    unlink(path.c_str());
    if (conn < 0 || fd < 0 || ftruncate(fd, kSegBytes) != 0) return 1;
    return SendOffer(conn, 12, 1, kSegBytes, fd) ? 0 : 2;
  });
  ASSERT_EQ(server.WaitBody(), 0);
  Offer o;
  EXPECT_FALSE(station_.TakeOffer(12, 1, server.pid(), 20, &o));
}

TEST_F(StationTest, ThirdProcessDoesNotBlockOrPlant) {
  // An intruder connects first: it sends garbage, a well-formed offer for the
  // same link, and then stays connected without sending anything more.
  Child intruder([&] {
    int conn = ConnectStation(station_.pid(), station_.nonce());
    if (conn < 0) return 1;
    int idle = ConnectStation(station_.pid(), station_.nonce());
    if (idle < 0) return 1;
    SendRaw(conn, "garbage", 7, nullptr, 0);
    int seg = MakeSegment("planted");
    return SendOffer(conn, 21, 1, kSegBytes, seg) ? 0 : 2;
  });
  ASSERT_EQ(intruder.WaitBody(), 0);
  Child server([&] {
    return SendOne(station_.pid(), station_.nonce(), 21, 1, "genuine");
  });
  ASSERT_EQ(server.WaitBody(), 0);
  auto start = std::chrono::steady_clock::now();
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(21, 1, server.pid(), 1000, &o));
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(100));
  EXPECT_EQ(ReadMapped(o, 7), "genuine");
  close(o.memfd);
  EXPECT_FALSE(station_.TakeOffer(21, 1, server.pid(), 0, &o));
}

TEST_F(StationTest, WaitsForAnOfferInFlight) {
  Child server([&] {
    struct timespec ts {
      0, 50 * 1000 * 1000
    };
    nanosleep(&ts, nullptr);
    return SendOne(station_.pid(), station_.nonce(), 31, 1, "late");
  });
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(31, 1, server.pid(), 5000, &o))
      << strerror(errno);
  EXPECT_EQ(ReadMapped(o, 4), "late");
  close(o.memfd);
}

TEST_F(StationTest, TimeoutAndNotOpen) {
  Offer o;
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(station_.TakeOffer(1, 1, getpid(), 60, &o));
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(60));
  EXPECT_FALSE(station_.TakeOffer(1, 1, getpid(), 0, &o));
  EXPECT_EQ(errno, EAGAIN);
  Station closed;
  EXPECT_FALSE(closed.TakeOffer(1, 1, getpid(), 0, &o));
  EXPECT_EQ(errno, EBADF);
}

TEST_F(StationTest, ConcurrentTakersForDifferentServers) {
  Child a([&] {
    return SendOne(station_.pid(), station_.nonce(), 100, 1, "from a");
  });
  Child b([&] {
    return SendOne(station_.pid(), station_.nonce(), 200, 1, "from b");
  });
  ASSERT_EQ(a.WaitBody(), 0);
  ASSERT_EQ(b.WaitBody(), 0);
  Offer oa, ob;
  bool ta = false, tb = false;
  std::thread t1([&] { ta = station_.TakeOffer(100, 1, a.pid(), 1000, &oa); });
  std::thread t2([&] { tb = station_.TakeOffer(200, 1, b.pid(), 1000, &ob); });
  t1.join();
  t2.join();
  ASSERT_TRUE(ta);
  ASSERT_TRUE(tb);
  EXPECT_EQ(ReadMapped(oa, 6), "from a");
  EXPECT_EQ(ReadMapped(ob, 6), "from b");
  close(oa.memfd);
  close(ob.memfd);
}

TEST_F(StationTest, ConcurrentTakersForOneServer) {
  // Two threads wait for two segments of one link; the one read by the "wrong"
  // thread is stashed and found by the other.
  Child server([&] {
    int conn = ConnectStation(station_.pid(), station_.nonce());
    if (conn < 0) return 1;
    struct timespec ts {
      0, 20 * 1000 * 1000
    };
    nanosleep(&ts, nullptr);
    int s2 = MakeSegment("two");
    int s1 = MakeSegment("one");
    return SendOffer(conn, 300, 2, kSegBytes, s2) &&
                   SendOffer(conn, 300, 1, kSegBytes, s1)
               ? 0
               : 2;
  });
  Offer o1, o2;
  bool t1ok = false, t2ok = false;
  std::thread t1(
      [&] { t1ok = station_.TakeOffer(300, 1, server.pid(), 2000, &o1); });
  std::thread t2(
      [&] { t2ok = station_.TakeOffer(300, 2, server.pid(), 2000, &o2); });
  t1.join();
  t2.join();
  ASSERT_EQ(server.WaitBody(), 0);
  ASSERT_TRUE(t1ok);
  ASSERT_TRUE(t2ok);
  EXPECT_EQ(ReadMapped(o1, 3), "one");
  EXPECT_EQ(ReadMapped(o2, 3), "two");
  close(o1.memfd);
  close(o2.memfd);
}

TEST_F(StationTest, DropHungUp) {
  Child server(
      [&] { return SendOne(station_.pid(), station_.nonce(), 51, 1, "bye"); });
  ASSERT_EQ(server.WaitBody(), 0);
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(51, 1, server.pid(), 1000, &o));
  close(o.memfd);
  EXPECT_EQ(station_.DropHungUp(), 0);
  EXPECT_EQ(OpenFdCountOfKind("socket:"), 2);  // listener + connection
  server
      .Release();  // the server process exits: its end of the connection closes
  EXPECT_EQ(station_.DropHungUp(), 1);
  EXPECT_EQ(OpenFdCountOfKind("socket:"), 1);
  EXPECT_EQ(station_.DropHungUp(), 0);
}

TEST_F(StationTest, ConnectStationChecksThePidOfTheName) {
  uint64_t nonce = station_.nonce() ^ 1;
  pid_t me = getpid();
  // A process binds a station name carrying another process's pid (ours).
  Child impostor([&] {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::string name = StationName(me, nonce);
    memcpy(sun.sun_path + 1, name.data(), name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                           name.size());
    if (bind(fd, reinterpret_cast<sockaddr*>(&sun), len) != 0 ||
        listen(fd, 8) != 0)
      return 1;
    return 0;
  });
  ASSERT_EQ(impostor.WaitBody(), 0);
  EXPECT_EQ(ConnectStation(me, nonce), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(ConnectStation(me, station_.nonce() ^ 2), -1);  // nobody there
  EXPECT_EQ(errno, ECONNREFUSED);
  int fd = ConnectStation(me, station_.nonce());
  EXPECT_GE(fd, 0);
  close(fd);
}

TEST_F(StationTest, SelfConnection) {
  int conn = ConnectStation(getpid(), station_.nonce());
  ASSERT_GE(conn, 0);
  int seg = MakeSegment("self");
  ASSERT_TRUE(SendOffer(conn, 61, 1, kSegBytes, seg));
  close(seg);
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(61, 1, getpid(), 0, &o));
  EXPECT_EQ(ReadMapped(o, 4), "self");
  close(o.memfd);
  close(conn);
}

TEST_F(StationTest, ForkedChildForgetsParentStation) {
  Child child([&] {
    uint64_t parent_nonce = station_.nonce();
    station_.ForgetAfterFork();
    if (station_.is_open()) return 1;
    if (!station_.Open() || station_.pid() != getpid() ||
        station_.nonce() == parent_nonce)
      return 2;
    // Sends to the parent, whose station must be untouched by our close.
    return SendOne(getppid(), parent_nonce, 71, 1, "child");
  });
  ASSERT_EQ(child.WaitBody(), 0);
  Offer o;
  ASSERT_TRUE(station_.TakeOffer(71, 1, child.pid(), 1000, &o));
  EXPECT_EQ(ReadMapped(o, 5), "child");
  close(o.memfd);
}

TEST_F(StationTest, ManyServersBeyondTableCapacity) {
  // More live server processes than the table holds: the least recently used
  // connections are evicted, the new ones keep working.
  constexpr int kServers = Station::kMaxConns + 8;
  std::vector<std::unique_ptr<Child>> servers;
  for (int i = 0; i < kServers; ++i) {
    servers.push_back(std::make_unique<Child>([&] {
      return SendOne(station_.pid(), station_.nonce(), 1000 + i, 1, "n");
    }));
    ASSERT_EQ(servers.back()->WaitBody(), 0);
    Offer o;
    ASSERT_TRUE(
        station_.TakeOffer(1000 + i, 1, servers.back()->pid(), 1000, &o))
        << i;
    close(o.memfd);
  }
  EXPECT_EQ(OpenFdCountOfKind("socket:"),
            Station::kMaxConns + 1);  // table + listener
}

}  // namespace
}  // namespace usmc::shm
