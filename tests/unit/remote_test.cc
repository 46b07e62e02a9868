// The cross-host link under the connection engine, in one process: a real
// CLC handshake over a loopback TCP connection with the SMC-R Proposal, the
// first link of a link group over libfabric's tcp provider, then two Conn
// objects moving a checksummed stream through mirrored slots. Then what a
// hostile peer can do: forged CDCs (bad cursors, unknown tokens) and a slot
// outside its region end in a reset of that connection only.
#include "engine/remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/conn.h"
#include "engine/handshake.h"
#include "engine/remote_group.h"

namespace usmc::engine {
namespace {

constexpr uint32_t kRing = 64 * 1024;

ssize_t SendAll(Conn* c, const uint8_t* p, size_t n) {
  iovec iov{const_cast<uint8_t*>(p), n};
  return c->Send(&iov, 1, MSG_NOSIGNAL | MSG_WAITALL, 5000);
}

ssize_t RecvSome(Conn* c, uint8_t* p, size_t n) {
  iovec iov{p, n};
  return c->Recv(&iov, 1, 0, 5000);
}

// A connected loopback TCP pair.
void TcpPair(int* client, int* server) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(l, 4), 0);
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  *client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(*client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  *server = accept(l, nullptr, nullptr);
  close(l);
}

HsResult Drive(auto& hs, int fd) {
  for (int i = 0; i < 5000; ++i) {
    HsResult r = hs.Step();
    if (r != HsResult::kWantRead) return r;
    usleep(1000);
  }
  return HsResult::kWantRead;
  (void)fd;
}

struct Pair {
  int cfd = -1, sfd = -1;
  std::unique_ptr<Conn> client, server;
  ~Pair() {
    if (client) client->Close();
    if (server) server->Close();
    if (cfd >= 0) close(cfd);
    if (sfd >= 0) close(sfd);
  }
};

// Handshakes one connection; both ends run at once (the first contact
// connects the link group from both sides).
void Connect(Pair* p) {
  TcpPair(&p->cfd, &p->sfd);
  ClientHandshake ch(p->cfd, kRing, /*remote=*/true, /*wait_hello=*/true);
  ServerHandshake sh(p->sfd, kRing);
  ASSERT_TRUE(sh.SendHello());  // cross-host, the server speaks first
  ASSERT_EQ(ch.Start(), HsResult::kWantRead);
  HsResult sr = HsResult::kWantRead;
  std::thread server([&] { sr = Drive(sh, p->sfd); });
  HsResult cr = Drive(ch, p->cfd);
  server.join();
  ASSERT_EQ(cr, HsResult::kDone) << "client reason " << ch.reason();
  ASSERT_EQ(sr, HsResult::kDone) << "server reason " << sh.reason();
  p->client = ch.TakeConn();
  p->server = sh.TakeConn();
  ASSERT_NE(p->client->remote(), nullptr);
  ASSERT_NE(p->server->remote(), nullptr);
}

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("USMC_FABRIC_ALLOW_TCP", "1", 1);
    setenv("USMC_FABRIC_PROVIDER", "tcp", 1);
  }
};

TEST_F(RemoteTest, StreamArrivesWholeAndInOrder) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(&p));
  constexpr size_t kTotal = 8 * kRing + 12345;  // wraps the ring several times
  std::vector<uint8_t> out(kTotal), in(kTotal);
  for (size_t i = 0; i < kTotal; ++i) out[i] = uint8_t(i * 131 + (i >> 9));
  std::thread tx([&] {
    EXPECT_EQ(SendAll(p.client.get(), out.data(), kTotal), ssize_t(kTotal));
    EXPECT_EQ(p.client->Shutdown(SHUT_WR), 0);
  });
  size_t got = 0;
  while (got < kTotal) {
    ssize_t n = RecvSome(p.server.get(), in.data() + got, kTotal - got);
    ASSERT_GT(n, 0) << "errno " << errno << " at " << got;
    got += size_t(n);
  }
  tx.join();
  EXPECT_EQ(in, out);
  uint8_t b;
  EXPECT_EQ(RecvSome(p.server.get(), &b, 1), 0);  // the peer's SHUT_WR
  // And back: a reply after the half-close.
  const uint8_t reply[] = "done";
  EXPECT_EQ(SendAll(p.server.get(), reply, 4), 4);
  uint8_t r[4];
  EXPECT_EQ(RecvSome(p.client.get(), r, 4), 4);
  EXPECT_EQ(0, memcmp(r, reply, 4));
}

// Injects a CDC as if the peer had sent it.
void Forge(Conn* c, const fabric::CdcMsg& m) {
  RemoteConn* rc = c->remote();
  std::lock_guard<std::mutex> l(rc->g->mu);
  rc->g->OnCdc(0, m);
}

// A plain server (or a middlebox echoing the TCP option for one) never says
// hello: the client sends nothing, and whatever the server writes stays
// application data.
TEST_F(RemoteTest, ClientSendsNothingUntilTheServerSaysHello) {
  int cfd = -1, sfd = -1;
  ASSERT_NO_FATAL_FAILURE(TcpPair(&cfd, &sfd));
  ClientHandshake ch(cfd, kRing, /*remote=*/true, /*wait_hello=*/true);
  EXPECT_EQ(ch.Start(), HsResult::kWantRead);
  EXPECT_EQ(ch.Step(), HsResult::kWantRead);
  uint8_t b;
  EXPECT_EQ(recv(sfd, &b, 1, MSG_DONTWAIT), -1);  // nothing on the wire
  EXPECT_EQ(errno, EAGAIN);
  ASSERT_EQ(write(sfd, "220 banner\r\n", 12), 12);
  usleep(20000);
  EXPECT_EQ(ch.Step(), HsResult::kFallback);
  char banner[12];
  ASSERT_EQ(recv(cfd, banner, sizeof banner, MSG_DONTWAIT), 12);
  EXPECT_EQ(0, memcmp(banner, "220 banner\r\n", 12));
  EXPECT_TRUE(ch.GiveUp());  // a timeout would not send a Decline either
  EXPECT_EQ(recv(sfd, &b, 1, MSG_DONTWAIT), -1);
  close(cfd);
  close(sfd);
}

TEST_F(RemoteTest, ForgedCursorResetsOnlyThatConnection) {
  Pair a, b;
  ASSERT_NO_FATAL_FAILURE(Connect(&a));
  ASSERT_NO_FATAL_FAILURE(Connect(&b));
  fabric::CdcMsg m;
  m.seqno = 30000;
  m.token = a.server->remote()->token;
  m.prod_wrap = 7;  // far ahead of anything the peer produced
  m.prod_count = 100;
  Forge(a.server.get(), m);
  uint8_t buf[16];
  errno = 0;
  EXPECT_EQ(RecvSome(a.server.get(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, ECONNRESET);
  // A CDC for no connection is dropped; the other connection still works.
  m.token = 0x12345679;
  Forge(b.server.get(), m);
  const uint8_t msg[] = "still fine";
  EXPECT_EQ(SendAll(b.client.get(), msg, sizeof msg), ssize_t(sizeof msg));
  uint8_t got[sizeof msg];
  size_t n = 0;
  while (n < sizeof msg) {
    ssize_t r = RecvSome(b.server.get(), got + n, sizeof msg - n);
    ASSERT_GT(r, 0);
    n += size_t(r);
  }
  EXPECT_EQ(0, memcmp(got, msg, sizeof msg));
}

TEST_F(RemoteTest, CountBeyondTheRingResets) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(&p));
  fabric::CdcMsg m;
  m.seqno = 40000;
  m.token = p.client->remote()->token;
  m.prod_count = kRing + 5;  // not a position inside the ring
  Forge(p.client.get(), m);
  uint8_t buf[8];
  EXPECT_EQ(RecvSome(p.client.get(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(RemoteTest, PeerSlotOutsideItsRegionResets) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(&p));
  {
    RemoteConn* rc = p.client->remote();
    std::lock_guard<std::mutex> l(rc->g->mu);
    rc->peer_rx_off = uint64_t{1} << 40;  // as if the Accept named such a slot
  }
  const uint8_t msg[] = "x";
  SendAll(p.client.get(), msg, 1);  // the write is refused: reset
  uint8_t buf[4];
  EXPECT_EQ(RecvSome(p.client.get(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

}  // namespace
}  // namespace usmc::engine
