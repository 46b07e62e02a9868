// SMC-R CLC messages: the eyecatcher carries `smcr`, and an SMC-R Accept or
// Confirm carries the link address blob. The SMC-D layouts are pinned by the
// golden vectors in clc_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "wire/clc.h"

namespace usmc::wire {
namespace {

using Bytes = std::vector<uint8_t>;

template <typename Message>
Bytes EncodeToBytes(const Message& m) {
  Bytes buf(kClcMaxSize);
  const size_t n = Encode(m, buf);
  buf.resize(n);
  return buf;
}

template <typename Message>
ParseStatus DecodeBytes(const Bytes& bytes) {
  Message m;
  return Decode(bytes, &m);
}

void SetLength(Bytes* msg, uint16_t length) {
  (*msg)[5] = static_cast<uint8_t>(length >> 8);
  (*msg)[6] = static_cast<uint8_t>(length);
}

// Inserts `extra` bytes of `fill` before the trailer and fixes up the length.
Bytes Extend(const Bytes& msg, size_t extra, uint8_t fill = 0) {
  Bytes longer(msg.begin(), msg.end() - kClcTrailerSize);
  longer.insert(longer.end(), extra, fill);
  longer.insert(longer.end(), msg.end() - kClcTrailerSize, msg.end());
  SetLength(&longer, static_cast<uint16_t>(longer.size()));
  return longer;
}

void SetHeaderEyecatcher(Bytes* msg, const std::array<uint8_t, 4>& e) {
  std::copy(e.begin(), e.end(), msg->begin());
}

void SetTrailerEyecatcher(Bytes* msg, const std::array<uint8_t, 4>& e) {
  std::copy(e.begin(), e.end(), msg->end() - kClcTrailerSize);
}

bool HasEyecatchers(const Bytes& msg, const std::array<uint8_t, 4>& e) {
  return std::equal(e.begin(), e.end(), msg.begin()) &&
         std::equal(e.begin(), e.end(), msg.end() - kClcTrailerSize);
}

// Fills the first `n` bytes of the blob with a pattern that has no zero byte.
template <typename Message>
void FillLink(Message* m, uint8_t n) {
  m->link_len = n;
  m->link.fill(0);
  for (uint8_t i = 0; i < n; ++i) m->link[i] = static_cast<uint8_t>(0xA0 + i);
}

Proposal SmcrProposal() {
  return {.peer_id = 0x0102030405060708,
          .pid = 0x1234,
          .station_nonce = 0x1112131415161718,
          .rx_size_code = 3,
          .tx_size_code = 2,
          .chid = 0xFFFF,
          .smcr = true};
}

Accept SmcrAccept(uint8_t link_len) {
  Accept a = {.peer_id = 0x0102030405060708,
              .server_pid = 0x4321,
              .link_nonce = 0x2122232425262728,
              .segment_id = 7,
              .slot = 0x0A0B,
              .conn_token = 0xCAFEBABE,
              .c2s_size_code = 4,
              .s2c_size_code = 5,
              .first_contact = true,
              .smcr = true};
  FillLink(&a, link_len);
  return a;
}

Confirm SmcrConfirm(uint8_t link_len) {
  Confirm c = {.peer_id = 0x0102030405060708,
               .link_nonce = 0x2122232425262728,
               .segment_id = 7,
               .slot = 0x0A0B,
               .conn_token = 0xCAFEBABE,
               .smcr = true};
  FillLink(&c, link_len);
  return c;
}

// --- Golden vectors ---

TEST(ClcSmcrGoldenTest, AcceptWithThreeByteBlob) {
  const Bytes expected = {
      0xE2, 0xD4, 0xC3, 0xD9, 0x02, 0x00, 0x38, 0x2D,  // header, SMC-R
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // peer_id
      0x00, 0x00, 0x43, 0x21, 0x00, 0x00, 0x00, 0x00,  // server_pid, reserved
      0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x0A, 0x0B,  // segment_id, slot
      0x04, 0x05, 0x00, 0x00,                          // c2s, s2c, reserved
      0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,  // link_nonce
      0xCA, 0xFE, 0xBA, 0xBE,                          // conn_token
      0x03, 0xA0, 0xA1, 0xA2,                          // link_len, link
      0xE2, 0xD4, 0xC3, 0xD9,                          // trailer
  };
  EXPECT_EQ(EncodeToBytes(SmcrAccept(3)), expected);
}

TEST(ClcSmcrGoldenTest, ConfirmWithEmptyBlob) {
  const Bytes expected = {
      0xE2, 0xD4, 0xC3, 0xD9, 0x03, 0x00, 0x29, 0x25,  // header, SMC-R
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // peer_id
      0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x0A, 0x0B,  // segment_id, slot
      0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,  // link_nonce
      0xCA, 0xFE, 0xBA, 0xBE,                          // conn_token
      0x00,                                            // link_len
      0xE2, 0xD4, 0xC3, 0xD9,                          // trailer
  };
  EXPECT_EQ(EncodeToBytes(SmcrConfirm(0)), expected);
}

TEST(ClcSmcrGoldenTest, ProposalBodyIsTheSmcdOne) {
  Proposal smcd = SmcrProposal();
  smcd.smcr = false;
  Bytes expected = EncodeToBytes(smcd);
  SetHeaderEyecatcher(&expected, kEyecatcherSmcr);
  SetTrailerEyecatcher(&expected, kEyecatcherSmcr);
  EXPECT_EQ(EncodeToBytes(SmcrProposal()), expected);
}

// --- Eyecatcher <-> smcr ---

TEST(ClcSmcrEyecatcherTest, SmcrMessagesSendSmcrEyecatchers) {
  EXPECT_TRUE(HasEyecatchers(EncodeToBytes(SmcrProposal()), kEyecatcherSmcr));
  EXPECT_TRUE(HasEyecatchers(EncodeToBytes(SmcrAccept(0)), kEyecatcherSmcr));
  EXPECT_TRUE(HasEyecatchers(EncodeToBytes(SmcrConfirm(80)), kEyecatcherSmcr));
  Decline d;  // no SMC-R form
  EXPECT_TRUE(HasEyecatchers(EncodeToBytes(d), kEyecatcherSmcd));
}

TEST(ClcSmcrEyecatcherTest, HeaderEyecatcherSetsSmcr) {
  Bytes msg = EncodeToBytes(SmcrProposal());
  ClcHeader hdr;
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_TRUE(hdr.smcr);
  Proposal out;
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_TRUE(out.smcr);

  SetHeaderEyecatcher(&msg, kEyecatcherSmcd);  // trailer stays SMC-R
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_FALSE(hdr.smcr);
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_FALSE(out.smcr);
}

TEST(ClcSmcrEyecatcherTest, SmcdTrailerAccepted) {
  Bytes accept = EncodeToBytes(SmcrAccept(5));
  SetTrailerEyecatcher(&accept, kEyecatcherSmcd);
  Accept a;
  ASSERT_EQ(Decode(accept, &a), ParseStatus::kOk);
  EXPECT_EQ(a, SmcrAccept(5));
  Bytes confirm = EncodeToBytes(SmcrConfirm(5));
  SetTrailerEyecatcher(&confirm, kEyecatcherSmcd);
  Confirm c;
  ASSERT_EQ(Decode(confirm, &c), ParseStatus::kOk);
  EXPECT_EQ(c, SmcrConfirm(5));
}

TEST(ClcSmcrEyecatcherTest, DeclineWithSmcrHeaderDecodes) {
  const Decline in = {.peer_id = 9, .diagnosis = 0x03030000};
  Bytes msg = EncodeToBytes(in);
  SetHeaderEyecatcher(&msg, kEyecatcherSmcr);
  Decline out;
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_EQ(out, in);
}

// --- Proposal ---

TEST(ClcSmcrRoundTripTest, Proposal) {
  Proposal out;
  ASSERT_EQ(Decode(EncodeToBytes(SmcrProposal()), &out), ParseStatus::kOk);
  EXPECT_EQ(out, SmcrProposal());
}

// --- SMC-D Accept/Confirm ignore the blob fields ---

TEST(ClcSmcrSmcdTest, BlobNotSentAndDecodedEmpty) {
  Accept a = SmcrAccept(80);
  a.smcr = false;
  Accept plain_a = a;
  plain_a.link_len = 0;
  plain_a.link.fill(0);
  const Bytes accept = EncodeToBytes(a);
  EXPECT_EQ(accept.size(), 52u);
  EXPECT_EQ(accept, EncodeToBytes(plain_a));
  Accept a_out;
  ASSERT_EQ(Decode(accept, &a_out), ParseStatus::kOk);
  EXPECT_EQ(a_out, plain_a);

  Confirm c = SmcrConfirm(80);
  c.smcr = false;
  c.link_len = 200;  // ignored without smcr
  Confirm plain_c = c;
  plain_c.link_len = 0;
  plain_c.link.fill(0);
  const Bytes confirm = EncodeToBytes(c);
  EXPECT_EQ(confirm.size(), 40u);
  EXPECT_EQ(confirm, EncodeToBytes(plain_c));
  Confirm c_out;
  ASSERT_EQ(Decode(confirm, &c_out), ParseStatus::kOk);
  EXPECT_EQ(c_out, plain_c);
}

// --- Accept and Confirm: the link blob, for both types ---

template <typename Message>
Message SmcrSample(uint8_t link_len);
template <>
Accept SmcrSample<Accept>(uint8_t link_len) {
  return SmcrAccept(link_len);
}
template <>
Confirm SmcrSample<Confirm>(uint8_t link_len) {
  return SmcrConfirm(link_len);
}

template <typename Message>
class ClcSmcrLinkTest : public testing::Test {
 protected:
  static constexpr size_t kSmcdSize = std::is_same_v<Message, Accept> ? 52 : 40;
  static constexpr size_t kLinkOffset = kSmcdSize - kClcTrailerSize;

  static Bytes Valid(uint8_t link_len) {
    return EncodeToBytes(SmcrSample<Message>(link_len));
  }
};

using LinkTypes = testing::Types<Accept, Confirm>;
TYPED_TEST_SUITE(ClcSmcrLinkTest, LinkTypes);

TYPED_TEST(ClcSmcrLinkTest, RoundTripsEveryBlobLength) {
  for (size_t n = 0; n <= kClcLinkBlobMax; ++n) {
    const TypeParam in = SmcrSample<TypeParam>(static_cast<uint8_t>(n));
    const Bytes msg = EncodeToBytes(in);
    ASSERT_EQ(msg.size(), this->kSmcdSize + 1 + n);
    EXPECT_EQ(msg[this->kLinkOffset], n);
    TypeParam out;
    ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk) << n;
    EXPECT_EQ(out, in) << n;
  }
}

TYPED_TEST(ClcSmcrLinkTest, FullBlobRoundTripsExactly) {
  TypeParam in = SmcrSample<TypeParam>(0);
  in.link_len = kClcLinkBlobMax;
  in.link.fill(0xFF);
  TypeParam out;
  ASSERT_EQ(Decode(EncodeToBytes(in), &out), ParseStatus::kOk);
  EXPECT_EQ(out, in);
}

TYPED_TEST(ClcSmcrLinkTest, MissingLengthByteIsMalformed) {
  // An SMC-D body under an SMC-R header ends where the length byte should be.
  TypeParam smcd = SmcrSample<TypeParam>(0);
  smcd.smcr = false;
  Bytes msg = EncodeToBytes(smcd);
  SetHeaderEyecatcher(&msg, kEyecatcherSmcr);
  SetTrailerEyecatcher(&msg, kEyecatcherSmcr);
  EXPECT_EQ(DecodeBytes<TypeParam>(msg), ParseStatus::kMalformed);
}

TYPED_TEST(ClcSmcrLinkTest, BlobRunningIntoTrailerIsMalformed) {
  for (uint8_t n : {0, 1, 10, 79}) {
    Bytes msg = this->Valid(n);
    for (int claimed = n + 1; claimed <= 0xFF; ++claimed) {
      msg[this->kLinkOffset] = static_cast<uint8_t>(claimed);
      EXPECT_EQ(DecodeBytes<TypeParam>(msg), ParseStatus::kMalformed)
          << int{n} << " claims " << claimed;
    }
  }
}

TYPED_TEST(ClcSmcrLinkTest, BlobLongerThanMaxIsMalformed) {
  // Room for 0xFF blob bytes, so only the limit can reject these.
  const Bytes roomy = Extend(this->Valid(kClcLinkBlobMax), 0xFF, 0x11);
  for (int claimed = static_cast<int>(kClcLinkBlobMax) + 1; claimed <= 0xFF;
       ++claimed) {
    Bytes msg = roomy;
    msg[this->kLinkOffset] = static_cast<uint8_t>(claimed);
    EXPECT_EQ(DecodeBytes<TypeParam>(msg), ParseStatus::kMalformed) << claimed;
  }
  Bytes at_max = roomy;
  at_max[this->kLinkOffset] = kClcLinkBlobMax;
  EXPECT_EQ(DecodeBytes<TypeParam>(at_max), ParseStatus::kOk);
}

TYPED_TEST(ClcSmcrLinkTest, BytesAfterTheBlobIgnoredAndTailZeroed) {
  const Bytes msg = Extend(this->Valid(4), 16, 0x77);
  TypeParam out;
  out.link.fill(0x55);
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_EQ(out, SmcrSample<TypeParam>(4));
  for (size_t i = 4; i < kClcLinkBlobMax; ++i) EXPECT_EQ(out.link[i], 0) << i;
}

TYPED_TEST(ClcSmcrLinkTest, TruncatedAtEveryLengthNeedsMore) {
  const Bytes valid = this->Valid(kClcLinkBlobMax);
  for (size_t n = 0; n < valid.size(); ++n) {
    const Bytes prefix(valid.begin(), valid.begin() + n);
    EXPECT_EQ(DecodeBytes<TypeParam>(prefix), ParseStatus::kNeedMore) << n;
  }
}

TYPED_TEST(ClcSmcrLinkTest, DecodeLeavesOutputAloneOnFailure) {
  Bytes msg = this->Valid(3);
  msg[this->kLinkOffset] = 4;
  TypeParam out = SmcrSample<TypeParam>(7);
  EXPECT_EQ(Decode(msg, &out), ParseStatus::kMalformed);
  EXPECT_EQ(out, SmcrSample<TypeParam>(7));
}

TYPED_TEST(ClcSmcrLinkTest, EncoderRejectsOversizedBlobAndSmallBuffers) {
  TypeParam m = SmcrSample<TypeParam>(0);
  m.link_len = kClcLinkBlobMax + 1;
  Bytes buf(kClcMaxSize, 0x55);
  EXPECT_EQ(Encode(m, buf), 0u);
  EXPECT_TRUE(
      std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0x55; }));

  const size_t needed = this->Valid(kClcLinkBlobMax).size();
  Bytes small(needed - 1, 0x55);
  EXPECT_EQ(Encode(SmcrSample<TypeParam>(kClcLinkBlobMax), small), 0u);
  EXPECT_TRUE(std::all_of(small.begin(), small.end(),
                          [](uint8_t b) { return b == 0x55; }));
  Bytes exact(needed);
  EXPECT_EQ(Encode(SmcrSample<TypeParam>(kClcLinkBlobMax), exact), needed);
}

}  // namespace
}  // namespace usmc::wire
