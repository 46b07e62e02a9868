// A hostile peer against a real LinkGroup server over the tcp provider on
// 127.0.0.1. The peer is a bare FabricLink that does the set-up by hand and
// then misbehaves: forged LLC/CDC messages, RMA writes outside the region
// it was given, a wrong key. The server must drop the link cleanly and
// never let a byte land outside its ring. The server runs in a child and
// reports by exit code.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "link/fabric/bytes.h"
#include "link/fabric/link_group.h"
#include "util/sys.h"

namespace usmc::fabric {
namespace {

constexpr size_t kMap = 1 << 20;
constexpr size_t kGuard = 4096;
constexpr size_t kRing = kMap - kGuard;

struct ServerHandler : GroupHandler {
  bool down = false;
  void OnWriteComplete(const WriteRequest&) override {}
  void OnRemoteData(uint8_t, uint64_t) override {}
  void OnCdc(uint8_t, const CdcMsg&) override {}
  void OnGroupDown(uint32_t) override { down = true; }
};

// Child: a server group with one ring followed by a guard area. Exits 0 if
// the group went down with a protocol error (or, for writes, stayed intact)
// and the guard still holds its pattern.
[[noreturn]] void RunServer(int fd, bool expect_protocol_error,
                            int establish_ms) {
  ServerHandler h;
  GroupOptions o;
  o.role = Role::kServer;
  o.local_addrs = {"127.0.0.1", ""};
  o.provider = "tcp";
  o.keepalive_ms = 5000;
  std::string err;
  auto g = LinkGroup::Create(o, &h, &err);
  auto* map = static_cast<uint8_t*>(mmap(nullptr, kMap, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  std::memset(map + kRing, 0xEE, kGuard);
  uint32_t id;
  if (!g || g->RegisterRegion(map, kRing, true, &id) != 0 ||
      !g->EstablishOverFd(fd, establish_ms, &err)) {
    fprintf(stderr, "server: %s\n", err.c_str());
    _exit(g && g->counters().protocol_errors == 1 ? 91 : 90);
  }
  const uint64_t end = sys::NowNs() + 3000000000ull;
  while (!h.down && sys::NowNs() < end) g->Wait(5);
  for (size_t i = kRing; i < kMap; ++i) {
    if (map[i] != 0xEE) _exit(30);
  }
  if (expect_protocol_error) {
    if (!h.down) _exit(31);
    if (g->counters().protocol_errors != 1) _exit(32);
  }
  _exit(0);
}

// The misbehaving client: just enough protocol to get the link confirmed.
class Rogue : public LinkSink {
 public:
  bool Establish(int fd, uint64_t nonce_xor = 0) {
    std::string err;
    LinkAddress offer;
    if (!RecvLinkAddress(fd, &offer, 5000, &err)) return Fail(err);
    offer_ = offer;
    EpAddr src;
    ParseIp("127.0.0.1", 0, &src);
    fi_info* info = GetInfo("tcp", src, &offer.addr, &err);
    if (info == nullptr) return Fail(err);
    link_ = FabricLink::Open(info, 0, false, &err);
    buf_ = static_cast<uint8_t*>(mmap(nullptr, kMap, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    std::memset(buf_, 0xAB, kMap);
    if (!link_ || !link_->RegisterRegion(0, buf_, kMap, true, &err)) {
      return Fail(err);
    }
    const LocalMr* mr = link_->Mr(0);
    LinkAddress mine{0,
                     Provider::kTcp,
                     link_->local_addr(),
                     0,
                     offer.token,
                     mr->key,
                     mr->base,
                     kMap};
    uint8_t cm[16] = {};
    bytes::Put32(cm, kLinkAddressMagic);
    cm[4] = kLinkAddressVersion;
    bytes::Put64(cm + 8, offer.token ^ nonce_xor);
    if (!SendLinkAddress(fd, mine, 5000, &err) || !link_->Connect(cm, &err)) {
      return Fail(err);
    }
    PollFor([&] { return confirmed_ || dead_; });
    if (!confirmed_) return nonce_xor != 0 ? false : Fail("not confirmed");
    // Let the server see the link confirmed before misbehaving on it.
    PollFor([] { return false; }, 100);
    return !dead_;
  }

  bool PollFor(const std::function<bool()>& done, int ms = 5000) {
    const uint64_t end = sys::NowNs() + uint64_t(ms) * 1000000;
    while (!done() && sys::NowNs() < end) {
      link_->PollCq(*this, 16);
      link_->PollEq(*this);
    }
    return done();
  }

  void SendRaw(const CtrlBytes& b) { link_->PostCtrl(b); }
  int Write(uint64_t offset, size_t len, uint64_t key) {
    WriteRequest w;
    w.local = buf_;
    w.len = len;
    w.local_region = 0;
    w.remote_offset = offset;
    return link_->PostWrite(w, RemoteKey{key, offer_.base, 0});
  }

  FabricLink& link() { return *link_; }
  const LinkAddress& offer() const { return offer_; }
  bool dead_ = false;
  int writes_done_ = 0;

 private:
  bool Fail(const std::string& e) {
    ADD_FAILURE() << "rogue: " << e;
    return false;
  }
  void OnWriteDone(FabricLink&, const WriteRequest&) override {
    ++writes_done_;
  }
  void OnRemoteData(FabricLink&, uint64_t) override {}
  void OnControl(FabricLink&, std::span<const uint8_t> msg) override {
    CtrlMsg m;
    if (ParseControl(msg, &m) != CtrlStatus::kOk ||
        m.type != MsgType::kConfirmLink) {
      return;
    }
    LlcMsg r = m.llc;
    r.flags = kLlcResp;
    CtrlBytes b;
    EncodeLlc(r, b);
    link_->PostCtrl(b);
    confirmed_ = true;
  }
  bool OnConnReq(FabricLink&, std::span<const uint8_t>) override {
    return false;
  }
  void OnConnected(FabricLink&) override {}
  void OnLinkError(FabricLink&, int, const std::string&) override {
    dead_ = true;
  }

  std::unique_ptr<FabricLink> link_;
  uint8_t* buf_ = nullptr;
  LinkAddress offer_;
  bool confirmed_ = false;
};

int Reap(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

pid_t StartServer(bool expect_protocol_error, int* fd,
                  int establish_ms = 5000) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    RunServer(sv[1], expect_protocol_error, establish_ms);
  }
  close(sv[1]);
  *fd = sv[0];
  return pid;
}

CtrlBytes Llc(const LlcMsg& m) {
  CtrlBytes b;
  EXPECT_EQ(EncodeLlc(m, b), kCtrlMsgSize);
  return b;
}

// Forged control messages, each of which must cost the rogue its link.
std::vector<CtrlBytes> Forgeries() {
  std::vector<CtrlBytes> out;
  CtrlBytes junk{};
  junk[0] = 0x33;  // unknown type
  junk[1] = kCtrlMsgSize;
  out.push_back(junk);
  CtrlBytes short_len{};
  short_len[0] = static_cast<uint8_t>(MsgType::kTestLink);
  short_len[1] = 20;  // lies about its length
  out.push_back(short_len);
  LlcMsg add{.type = MsgType::kAddLink, .link_id = 1};  // only servers add
  add.token = 1;
  ParseIp("127.0.0.1", 9, &add.addr);
  out.push_back(Llc(add));
  LlcMsg confirm{.type = MsgType::kConfirmLink, .flags = kLlcResp};
  confirm.token = 0x1234;  // wrong group token
  confirm.max_links = 2;
  out.push_back(Llc(confirm));
  LlcMsg rkey{.type = MsgType::kConfirmRkey};
  rkey.region_id = 0;
  rkey.rkey = 1;
  rkey.length = 100;
  out.push_back(Llc(rkey));
  rkey.length = 200;  // the same region changes its length
  out.push_back(Llc(rkey));
  CtrlBytes bad_flags = Llc(LlcMsg{.type = MsgType::kTestLink});
  bad_flags[2] = 0x01;
  out.push_back(bad_flags);
  return out;
}

class FabricHostile : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { setenv("USMC_FABRIC_ALLOW_TCP", "1", 1); }
};

TEST_P(FabricHostile, ForgedControlMessageCostsTheLink) {
  const std::vector<CtrlBytes> forged = Forgeries();
  const size_t n = static_cast<size_t>(GetParam());
  int fd = -1;
  const pid_t pid = StartServer(true, &fd);
  ASSERT_GT(pid, 0);
  Rogue rogue;
  ASSERT_TRUE(rogue.Establish(fd));
  // The first CONFIRM_RKEY in the list is legitimate; send it first for the
  // length-change case.
  if (n == forged.size() - 2) rogue.SendRaw(forged[n - 1]);
  rogue.SendRaw(forged[n]);
  EXPECT_TRUE(rogue.PollFor([&] { return rogue.dead_; }));
  close(fd);
  EXPECT_EQ(Reap(pid), 0);
}

INSTANTIATE_TEST_SUITE_P(All, FabricHostile,
                         ::testing::Values(0, 1, 2, 3, 5, 6));

TEST(FabricHostileWrite, WritesOutsideTheRegionNeverLand) {
  setenv("USMC_FABRIC_ALLOW_TCP", "1", 1);
  for (int variant = 0; variant < 3; ++variant) {
    int fd = -1;
    const pid_t pid = StartServer(false, &fd);
    ASSERT_GT(pid, 0);
    Rogue rogue;
    ASSERT_TRUE(rogue.Establish(fd));
    const uint64_t key = rogue.offer().rkey;
    int rc = 0;
    if (variant == 0) rc = rogue.Write(kRing - 100, 4096, key);  // crosses
    if (variant == 1) rc = rogue.Write(kRing, 64, key);          // past end
    if (variant == 2) rc = rogue.Write(0, 4096, key + 1);        // bad key
    ASSERT_EQ(rc, 0);
    EXPECT_TRUE(rogue.PollFor([&] { return rogue.dead_; }))
        << "variant " << variant;
    EXPECT_EQ(rogue.writes_done_, 0);
    close(fd);
    EXPECT_EQ(Reap(pid), 0) << "variant " << variant;
  }
}

// A connection request that does not carry the offer's nonce is rejected;
// the server never confirms a link for it.
TEST(FabricHostileConnect, WrongNonceIsRejected) {
  setenv("USMC_FABRIC_ALLOW_TCP", "1", 1);
  int fd = -1;
  const pid_t pid = StartServer(false, &fd, 1500);
  ASSERT_GT(pid, 0);
  Rogue rogue;
  EXPECT_FALSE(rogue.Establish(fd, 1));
  EXPECT_TRUE(rogue.dead_);
  close(fd);
  EXPECT_EQ(Reap(pid), 91);  // set-up failed, one protocol error counted
}

}  // namespace
}  // namespace usmc::fabric
