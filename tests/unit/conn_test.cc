// The connection engine on its own, in one process: the client and the server
// end of one connection (two Conn objects over one slot of a real segment),
// with a socketpair standing in for the TCP connection that carries doorbells.
#include "engine/conn.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "engine/arena.h"
#include "link/shm/segment.h"
#include "wire/cdc.h"

namespace usmc::engine {
namespace {

using wire::Cursor;

constexpr uint32_t kRingBytes = 64 * 1024;
constexpr size_t kMaxChunk = 100000;
constexpr size_t kPeriod = 1000003;  // prime: never lines up with the ring
constexpr uint64_t kFnvBasis = 14695981039346656037ull;

uint64_t Fnv(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Byte i of a stream is At(i)[0]; At(i) is contiguous for kMaxChunk bytes.
class Pattern {
 public:
  explicit Pattern(uint64_t seed) : bytes_(kPeriod + kMaxChunk) {
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < kPeriod; ++i) bytes_[i] = uint8_t(rng() >> 17);
    std::copy_n(bytes_.begin(), kMaxChunk, bytes_.begin() + kPeriod);
  }
  const uint8_t* At(uint64_t pos) const { return &bytes_[pos % kPeriod]; }

 private:
  std::vector<uint8_t> bytes_;
};

ssize_t SendBuf(Conn* c, const void* p, size_t n) {
  iovec iov{const_cast<void*>(p), n};
  return c->Send(&iov, 1, MSG_NOSIGNAL, -1);
}

ssize_t RecvBuf(Conn* c, void* p, size_t n, int flags = 0) {
  iovec iov{p, n};
  return c->Recv(&iov, 1, flags, -1);
}

// Both ends of one connection. Conns still open are closed before the segment
// goes away.
struct Pair {
  std::unique_ptr<shm::Segment> seg;
  int sv[2] = {-1, -1};
  int slot = -1;
  std::unique_ptr<Conn> client;
  std::unique_ptr<Conn> server;

  bool Open() {
    seg = shm::Segment::Create(0, 4, kRingBytes);
    if (seg == nullptr) return false;
    slot = seg->AllocSlot(0x5eed);
    if (slot < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
    ConnState* cs = Arena::Get().Alloc();
    ConnState* ss = Arena::Get().Alloc();
    if (cs == nullptr || ss == nullptr) return false;
    auto s = static_cast<uint32_t>(slot);
    client = std::make_unique<Conn>(
        Conn::Setup{sv[0], shm::Side::kClient, cs, seg.get(), s});
    server = std::make_unique<Conn>(
        Conn::Setup{sv[1], shm::Side::kServer, ss, seg.get(), s});
    return true;
  }
  bool CloseServer() {
    bool abort = server->Close();
    server.reset();
    return abort;
  }
  ~Pair() {
    if (client != nullptr) client->Close();
    if (server != nullptr) server->Close();
    for (int fd : sv)
      if (fd >= 0) close(fd);
  }
};

class ConnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alarm(60);  // watchdog: a hang kills the binary (SIGALRM)
    ASSERT_TRUE(p_.Open());
  }
  void TearDown() override { alarm(0); }
  Pair p_;
};

struct StreamResult {
  uint64_t bytes = 0;
  uint64_t sum = kFnvBasis;
  int64_t first_bad = -1;  // stream offset of the first wrong byte
  int err = 0;             // errno of a failed call; -1 short send, -2 EOF
};

// Sends `total` bytes of `pat` in random chunks of 1..kMaxChunk bytes.
StreamResult SendStream(Conn* c, const Pattern& pat, uint64_t total,
                        uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> len(1, kMaxChunk);
  StreamResult r;
  while (r.bytes < total) {
    size_t n = std::min<uint64_t>(len(rng), total - r.bytes);
    const uint8_t* p = pat.At(r.bytes);
    ssize_t s = SendBuf(c, p, n);
    if (s != static_cast<ssize_t>(n)) {
      r.err = s < 0 ? errno : -1;
      break;
    }
    r.sum = Fnv(r.sum, p, n);
    r.bytes += n;
  }
  return r;
}

// Receives `total` bytes with random buffer sizes, checking each against `pat`.
StreamResult RecvStream(Conn* c, const Pattern& pat, uint64_t total,
                        uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> len(1, kMaxChunk);
  std::vector<uint8_t> buf(kMaxChunk);
  StreamResult r;
  while (r.bytes < total) {
    size_t want = std::min<uint64_t>(len(rng), total - r.bytes);
    ssize_t got = RecvBuf(c, buf.data(), want);
    if (got <= 0) {
      r.err = got < 0 ? errno : -2;
      break;
    }
    const uint8_t* expect = pat.At(r.bytes);
    if (r.first_bad < 0 && std::memcmp(buf.data(), expect, got) != 0) {
      size_t i = 0;
      while (buf[i] == expect[i]) ++i;
      r.first_bad = static_cast<int64_t>(r.bytes + i);
    }
    r.sum = Fnv(r.sum, buf.data(), static_cast<size_t>(got));
    r.bytes += static_cast<uint64_t>(got);
  }
  return r;
}

void ExpectSameStream(const StreamResult& tx, const StreamResult& rx,
                      uint64_t total) {
  EXPECT_EQ(tx.err, 0);
  EXPECT_EQ(rx.err, 0);
  EXPECT_EQ(tx.bytes, total);
  EXPECT_EQ(rx.bytes, total);
  EXPECT_EQ(rx.first_bad, -1) << "first corrupt byte at stream offset";
  EXPECT_EQ(tx.sum, rx.sum);
}

TEST_F(ConnTest, Streams64MiBClientToServer) {
  constexpr uint64_t kTotal = 64ull << 20;
  Pattern pat(1);
  StreamResult tx, rx;
  std::thread sender([&] {
    tx = SendStream(p_.client.get(), pat, kTotal, 11);
    p_.client->Shutdown(SHUT_WR);
  });
  std::thread receiver(
      [&] { rx = RecvStream(p_.server.get(), pat, kTotal, 12); });
  sender.join();
  receiver.join();
  ExpectSameStream(tx, rx, kTotal);
  uint8_t extra;
  EXPECT_EQ(RecvBuf(p_.server.get(), &extra, 1), 0) << "bytes past the end";
}

// Server: echoes everything until EOF, then shuts down its write side.
StreamResult Echo(Conn* c) {
  std::vector<uint8_t> buf(kRingBytes);
  StreamResult r;
  while (true) {
    ssize_t n = RecvBuf(c, buf.data(), buf.size());
    if (n <= 0) {
      if (n < 0) r.err = errno;
      break;
    }
    if (SendBuf(c, buf.data(), static_cast<size_t>(n)) != n) {
      r.err = errno;
      break;
    }
    r.bytes += static_cast<uint64_t>(n);
  }
  c->Shutdown(SHUT_WR);
  return r;
}

TEST_F(ConnTest, FullDuplexOnOneConn) {
  constexpr uint64_t kTotal = 16ull << 20;
  Pattern pat(2);
  StreamResult tx, rx, echo;
  std::thread server([&] { echo = Echo(p_.server.get()); });
  std::thread sender([&] {
    tx = SendStream(p_.client.get(), pat, kTotal, 21);
    p_.client->Shutdown(SHUT_WR);
  });
  std::thread receiver(
      [&] { rx = RecvStream(p_.client.get(), pat, kTotal, 22); });
  sender.join();
  receiver.join();
  server.join();
  ExpectSameStream(tx, rx, kTotal);
  EXPECT_EQ(echo.err, 0);
  EXPECT_EQ(echo.bytes, kTotal);
  uint8_t extra;
  EXPECT_EQ(RecvBuf(p_.client.get(), &extra, 1), 0) << "bytes past the end";
}

struct SeqResult {
  std::vector<uint64_t> seqs;
  uint64_t bytes = 0;
  bool ordered = true;  // this thread saw increasing sequence numbers
  int err = 0;          // errno, or -1 for a read splitting a record
};

// Reads 8-byte records until EOF. Senders and receivers move whole records
// and the ring is a multiple of 8 bytes, so every cursor stays 8-aligned and a
// read never splits a record.
SeqResult RecvSeqs(Conn* c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> len(1, 4096);
  std::vector<uint64_t> buf(4096);
  SeqResult r;
  while (true) {
    ssize_t n = RecvBuf(c, buf.data(), len(rng) * 8);
    if (n <= 0) {
      if (n < 0) r.err = errno;
      break;
    }
    if (n % 8 != 0) r.err = -1;
    r.bytes += static_cast<uint64_t>(n);
    for (ssize_t i = 0; i < n / 8; ++i) {
      if (!r.seqs.empty() && buf[i] <= r.seqs.back()) r.ordered = false;
      r.seqs.push_back(buf[i]);
    }
  }
  return r;
}

TEST_F(ConnTest, TwoReceiversGetEachByteOnce) {
  constexpr uint64_t kRecords = 1 << 20;
  int send_err = 0;
  std::thread sender([&] {
    std::mt19937_64 rng(31);
    std::uniform_int_distribution<uint64_t> len(1, kMaxChunk / 8);
    std::vector<uint64_t> batch;
    for (uint64_t next = 0; next < kRecords && send_err == 0;) {
      batch.clear();
      for (uint64_t n = len(rng); n > 0 && next < kRecords; --n)
        batch.push_back(next++);
      size_t bytes = batch.size() * 8;
      if (SendBuf(p_.client.get(), batch.data(), bytes) != ssize_t(bytes))
        send_err = errno;
    }
    p_.client->Shutdown(SHUT_WR);
  });
  SeqResult a, b;
  std::thread ra([&] { a = RecvSeqs(p_.server.get(), 32); });
  std::thread rb([&] { b = RecvSeqs(p_.server.get(), 33); });
  sender.join();
  ra.join();
  rb.join();
  EXPECT_EQ(send_err, 0);
  EXPECT_EQ(a.err, 0);
  EXPECT_EQ(b.err, 0);
  EXPECT_TRUE(a.ordered);
  EXPECT_TRUE(b.ordered);
  EXPECT_EQ(a.bytes + b.bytes, kRecords * 8);
  std::vector<uint64_t> all = a.seqs;
  all.insert(all.end(), b.seqs.begin(), b.seqs.end());
  uint64_t sum = 0;
  for (uint64_t s : all) sum += s;
  EXPECT_EQ(sum, kRecords * (kRecords - 1) / 2);
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), kRecords);
  for (uint64_t i = 0; i < kRecords; ++i) ASSERT_EQ(all[i], i) << "dup/loss";
}

TEST_F(ConnTest, HalfCloseStillCarriesTheOtherDirection) {
  constexpr uint64_t kTotal = 1 << 20;
  Pattern pat(4);
  StreamResult tx;
  std::thread sender([&] {
    tx = SendStream(p_.client.get(), pat, kTotal, 41);
    EXPECT_EQ(p_.client->Shutdown(SHUT_WR), 0);
  });
  StreamResult rx = RecvStream(p_.server.get(), pat, kTotal, 42);
  sender.join();
  ExpectSameStream(tx, rx, kTotal);
  uint8_t extra;
  EXPECT_EQ(RecvBuf(p_.server.get(), &extra, 1), 0);  // EOF
  EXPECT_TRUE(p_.server->Events() & EPOLLRDHUP);
  EXPECT_EQ(SendBuf(p_.client.get(), &extra, 1), -1);
  EXPECT_EQ(errno, EPIPE);

  Pattern back(5);
  ASSERT_EQ(SendBuf(p_.server.get(), back.At(0), 100), 100);
  uint8_t buf[100] = {};
  ASSERT_EQ(RecvBuf(p_.client.get(), buf, sizeof buf, MSG_WAITALL), 100);
  EXPECT_EQ(std::memcmp(buf, back.At(0), 100), 0);
}

// The peer writes `garbage` as the producer cursor of the ring `reader` reads,
// after 100 good bytes. The reader must reset, not copy.
void ExpectResetOnGarbage(bool server_reads, uint64_t garbage) {
  SCOPED_TRACE(testing::Message() << std::hex << "cursor 0x" << garbage
                                  << (server_reads ? " c2s" : " s2c"));
  Pair p;
  ASSERT_TRUE(p.Open());
  Conn* writer = server_reads ? p.client.get() : p.server.get();
  Conn* reader = server_reads ? p.server.get() : p.client.get();
  Pattern pat(6);
  uint8_t buf[256];
  ASSERT_EQ(SendBuf(writer, pat.At(0), 100), 100);
  ASSERT_EQ(RecvBuf(reader, buf, 100, MSG_WAITALL), 100);
  ASSERT_EQ(std::memcmp(buf, pat.At(0), 100), 0);

  shm::SlotHeader* h = p.seg->slot(static_cast<uint32_t>(p.slot));
  (server_reads ? h->c2s : h->s2c).p.prod.store(garbage);
  std::memset(buf, 0xAA, sizeof buf);
  errno = 0;
  EXPECT_EQ(RecvBuf(reader, buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, ECONNRESET);
  for (uint8_t b : buf) ASSERT_EQ(b, 0xAA) << "copied from a bad cursor";
  EXPECT_TRUE(reader->Events() & EPOLLERR);
  EXPECT_EQ(reader->TakeError(), ECONNRESET);
  EXPECT_EQ(RecvBuf(reader, buf, sizeof buf), -1);  // stays broken
  EXPECT_EQ(errno, ECONNRESET);
  // The reader's abort flag reaches the writer.
  EXPECT_EQ(RecvBuf(writer, buf, sizeof buf), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_TRUE(writer->Events() & EPOLLERR);
}

TEST_F(ConnTest, HostileProducerCursorResetsTheConnection) {
  const uint64_t kGarbage[] = {
      Cursor(0, kRingBytes).ToWord(),    // count out of range
      Cursor(0, 50).ToWord(),            // moved backwards
      Cursor(1, 200).ToWord(),           // more than one ring ahead
      Cursor(2, 0).ToWord(),             // two wraps ahead
      Cursor(0xffffffff, 100).ToWord(),  // wrap far behind
      0xdeadbeefdeadbeefull,
      ~0ull,
  };
  for (uint64_t g : kGarbage) {
    ExpectResetOnGarbage(true, g);
    ExpectResetOnGarbage(false, g);
  }
}

TEST_F(ConnTest, CloseWithUnreadDataAborts) {
  Pattern pat(7);
  ASSERT_EQ(SendBuf(p_.client.get(), pat.At(0), 100), 100);
  EXPECT_TRUE(p_.CloseServer()) << "unread data: Close must report abort";
  uint8_t buf[128];
  EXPECT_EQ(RecvBuf(p_.client.get(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_TRUE(p_.client->Events() & EPOLLERR);
  EXPECT_EQ(SendBuf(p_.client.get(), buf, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(ConnTest, CloseAfterReadingEverythingIsGraceful) {
  Pattern pat(8);
  ASSERT_EQ(SendBuf(p_.client.get(), pat.At(0), 100), 100);
  uint8_t buf[128];
  ASSERT_EQ(RecvBuf(p_.server.get(), buf, 100, MSG_WAITALL), 100);
  EXPECT_FALSE(p_.CloseServer());
  EXPECT_EQ(RecvBuf(p_.client.get(), buf, sizeof buf), 0);  // EOF
  EXPECT_FALSE(p_.client->Events() & EPOLLERR);
  EXPECT_EQ(SendBuf(p_.client.get(), buf, 1), -1);
  EXPECT_EQ(errno, EPIPE);
}

}  // namespace
}  // namespace usmc::engine
