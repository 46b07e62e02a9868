#include "wire/clc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "wire/decline.h"

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

Bytes ToBytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

void SetLength(Bytes* msg, uint16_t length) {
  (*msg)[5] = static_cast<uint8_t>(length >> 8);
  (*msg)[6] = static_cast<uint8_t>(length);
}

// Inserts `extra` zero bytes before the trailer and fixes up the length.
Bytes Extend(const Bytes& msg, size_t extra) {
  Bytes longer(msg.begin(), msg.end() - kClcTrailerSize);
  longer.insert(longer.end(), extra, 0);
  longer.insert(longer.end(), msg.end() - kClcTrailerSize, msg.end());
  SetLength(&longer, static_cast<uint16_t>(longer.size()));
  return longer;
}

Proposal SampleProposal() {
  return {.peer_id = 0x0102030405060708,
          .pid = 0x1234,
          .station_nonce = 0x1112131415161718,
          .rx_size_code = 3,
          .tx_size_code = 2,
          .chid = 0xFFFF};
}

Accept SampleAccept() {
  return {.peer_id = 0x0102030405060708,
          .server_pid = 0x4321,
          .link_nonce = 0x2122232425262728,
          .segment_id = 7,
          .slot = 0x0A0B,
          .conn_token = 0xCAFEBABE,
          .c2s_size_code = 4,
          .s2c_size_code = 5,
          .first_contact = true};
}

Confirm SampleConfirm() {
  return {.peer_id = 0x0102030405060708,
          .link_nonce = 0x2122232425262728,
          .segment_id = 7,
          .slot = 0x0A0B,
          .conn_token = 0xCAFEBABE};
}

Decline SampleDecline() {
  return {.peer_id = 0x0102030405060708,
          .diagnosis = kDeclNoSmcDev,
          .out_of_sync = false};
}

// --- Golden vectors: the layout must not drift silently. ---

TEST(ClcGoldenTest, Proposal) {
  const Bytes expected = {
      0xE2, 0xD4, 0xC3, 0xC4, 0x01, 0x00, 0x28, 0x25,  // header, v2, SMC-D
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // peer_id
      0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x00,  // pid, reserved
      0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // station_nonce
      0xFF, 0xFF, 0x03, 0x02,                          // chid, rx, tx
      0xE2, 0xD4, 0xC3, 0xC4,                          // trailer
  };
  EXPECT_EQ(EncodeToBytes(SampleProposal()), expected);
}

TEST(ClcGoldenTest, AcceptWithFirstContact) {
  const Bytes expected = {
      0xE2, 0xD4, 0xC3, 0xC4, 0x02, 0x00, 0x34, 0x2D,  // header, first contact
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // peer_id
      0x00, 0x00, 0x43, 0x21, 0x00, 0x00, 0x00, 0x00,  // server_pid, reserved
      0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x0A, 0x0B,  // segment_id, slot
      0x04, 0x05, 0x00, 0x00,                          // c2s, s2c, reserved
      0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,  // link_nonce
      0xCA, 0xFE, 0xBA, 0xBE,                          // conn_token
      0xE2, 0xD4, 0xC3, 0xC4,                          // trailer
  };
  EXPECT_EQ(EncodeToBytes(SampleAccept()), expected);
}

TEST(ClcGoldenTest, Confirm) {
  const Bytes expected = {
      0xE2, 0xD4, 0xC3, 0xC4, 0x03, 0x00, 0x28, 0x25,  // header
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // peer_id
      0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x0A, 0x0B,  // segment_id, slot
      0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,  // link_nonce
      0xCA, 0xFE, 0xBA, 0xBE,                          // conn_token
      0xE2, 0xD4, 0xC3, 0xC4,                          // trailer
  };
  EXPECT_EQ(EncodeToBytes(SampleConfirm()), expected);
}

TEST(ClcGoldenTest, DeclineOutOfSync) {
  Decline d = SampleDecline();
  d.diagnosis = kDeclSyncErr;
  d.out_of_sync = true;
  const Bytes expected = {
      0xE2, 0xD4, 0xC3, 0xC4, 0x04, 0x00, 0x1C, 0x2D,  // header, out of sync
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // peer_id
      0x04, 0x00, 0x00, 0x00,                          // diagnosis SYNCERR
      0x20, 0x00, 0x00, 0x00,                          // os_type Linux
      0xE2, 0xD4, 0xC3, 0xC4,                          // trailer
  };
  EXPECT_EQ(EncodeToBytes(d), expected);
}

// --- ParseHeader ---

TEST(ClcHeaderTest, ParsesEncodedHeader) {
  const Bytes msg = EncodeToBytes(SampleAccept());
  ClcHeader hdr;
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_EQ(hdr.type, ClcType::kAccept);
  EXPECT_EQ(hdr.length, msg.size());
  EXPECT_EQ(hdr.version, kClcVersion);
  EXPECT_TRUE(hdr.first_contact);
}

TEST(ClcHeaderTest, HeaderAloneIsEnough) {
  const Bytes msg = EncodeToBytes(SampleProposal());
  ClcHeader hdr;
  EXPECT_EQ(ParseHeader(std::span(msg).first(kClcHeaderSize), &hdr),
            ParseStatus::kOk);
  EXPECT_EQ(hdr.length, msg.size());
}

TEST(ClcHeaderTest, NeedMoreForEveryPrefixOfTheHeader) {
  for (const auto& eyecatcher : {kEyecatcherSmcd, kEyecatcherSmcr}) {
    Bytes msg = EncodeToBytes(SampleProposal());
    std::memcpy(msg.data(), eyecatcher.data(), eyecatcher.size());
    for (size_t n = 0; n < kClcHeaderSize; ++n) {
      ClcHeader hdr;
      EXPECT_EQ(ParseHeader(std::span(msg).first(n), &hdr),
                ParseStatus::kNeedMore)
          << n;
    }
  }
}

TEST(ClcHeaderTest, ApplicationDataIsNotClc) {
  for (std::string_view text :
       {"GET / HTTP/1.1\r\n", "*1\r\n$4\r\nPING\r\n", "SMCD0000",
        "\xE2\xD4\x43"}) {  // 'C' in ASCII, not EBCDIC
    const Bytes bytes = ToBytes(text);
    ClcHeader hdr;
    EXPECT_EQ(ParseHeader(bytes, &hdr), ParseStatus::kNotClc) << text;
  }
}

TEST(ClcHeaderTest, NotClcDecidedOnFirstDifferingByte) {
  ClcHeader hdr;
  const Bytes g = {'G'};
  EXPECT_EQ(ParseHeader(g, &hdr), ParseStatus::kNotClc);
  const Bytes star = {'*', '1'};
  EXPECT_EQ(ParseHeader(star, &hdr), ParseStatus::kNotClc);
  const Bytes almost = {0xE2, 0xD4, 0x00};
  EXPECT_EQ(ParseHeader(almost, &hdr), ParseStatus::kNotClc);
  const Bytes wrong_last = {0xE2, 0xD4, 0xC3, 0x00, 1, 0, 40, 0x25};
  EXPECT_EQ(ParseHeader(wrong_last, &hdr), ParseStatus::kNotClc);
  const Bytes prefix = {0xE2, 0xD4, 0xC3};
  EXPECT_EQ(ParseHeader(prefix, &hdr), ParseStatus::kNeedMore);
}

TEST(ClcHeaderTest, NotClcWithOnlyEyecatcherMismatchAndShortInput) {
  const Bytes bytes = {'G', 'E', 'T', ' ', '/'};
  ClcHeader hdr;
  EXPECT_EQ(ParseHeader(bytes, &hdr), ParseStatus::kNotClc);
}

TEST(ClcHeaderTest, UnknownTypeIsMalformed) {
  Bytes msg = EncodeToBytes(SampleProposal());
  for (uint8_t type : {0, 5, 6, 0x80, 0xFF}) {
    msg[4] = type;
    ClcHeader hdr;
    EXPECT_EQ(ParseHeader(msg, &hdr), ParseStatus::kMalformed) << int{type};
  }
}

TEST(ClcHeaderTest, LengthOutOfRangeIsMalformed) {
  Bytes msg = EncodeToBytes(SampleDecline());
  ClcHeader hdr;
  for (uint16_t length : {0, 8, 12, 27}) {
    SetLength(&msg, length);
    EXPECT_EQ(ParseHeader(msg, &hdr), ParseStatus::kMalformed) << length;
  }
  SetLength(&msg, kClcMaxSize + 1);
  EXPECT_EQ(ParseHeader(msg, &hdr), ParseStatus::kMalformed);
  SetLength(&msg, 0xFFFF);
  EXPECT_EQ(ParseHeader(msg, &hdr), ParseStatus::kMalformed);
  SetLength(&msg, kClcMaxSize);
  EXPECT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
}

TEST(ClcHeaderTest, HeaderDoesNotJudgeVersion) {
  Bytes msg = EncodeToBytes(SampleProposal());
  msg[7] = 0xF5;
  ClcHeader hdr;
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_EQ(hdr.version, 15);
}

// --- Round trips and per-type field checks ---

TEST(ClcRoundTripTest, AcceptBothFirstContactValues) {
  for (bool first_contact : {false, true}) {
    Accept in = SampleAccept();
    in.first_contact = first_contact;
    Accept out;
    ASSERT_EQ(Decode(EncodeToBytes(in), &out), ParseStatus::kOk);
    EXPECT_EQ(out, in);
  }
}

TEST(ClcRoundTripTest, DeclineBothOutOfSyncValues) {
  for (bool out_of_sync : {false, true}) {
    Decline in = SampleDecline();
    in.out_of_sync = out_of_sync;
    Decline out;
    ASSERT_EQ(Decode(EncodeToBytes(in), &out), ParseStatus::kOk);
    EXPECT_EQ(out, in);
  }
}

TEST(ClcRoundTripTest, ExtremeValues) {
  Proposal p = {.peer_id = ~0ull,
                .pid = ~0u,
                .station_nonce = ~0ull,
                .rx_size_code = 15,
                .tx_size_code = 0,
                .chid = 0};
  Proposal p_out;
  ASSERT_EQ(Decode(EncodeToBytes(p), &p_out), ParseStatus::kOk);
  EXPECT_EQ(p_out, p);
  Accept a = {.peer_id = 0,
              .server_pid = 1,
              .link_nonce = ~0ull,
              .segment_id = ~0u,
              .slot = ~0u,
              .conn_token = ~0u,
              .c2s_size_code = 15,
              .s2c_size_code = 15};
  Accept a_out;
  ASSERT_EQ(Decode(EncodeToBytes(a), &a_out), ParseStatus::kOk);
  EXPECT_EQ(a_out, a);
}

TEST(ClcFieldTest, ProposalZeroPidIsMalformed) {
  Proposal p = SampleProposal();
  p.pid = 0;
  EXPECT_EQ(DecodeBytes<Proposal>(EncodeToBytes(p)), ParseStatus::kMalformed);
}

TEST(ClcFieldTest, ProposalBadSizeCodes) {
  for (uint8_t code : {16, 17, 0x80, 0xFF}) {
    Proposal p = SampleProposal();
    p.rx_size_code = code;
    EXPECT_EQ(DecodeBytes<Proposal>(EncodeToBytes(p)), ParseStatus::kMalformed);
    p = SampleProposal();
    p.tx_size_code = code;
    EXPECT_EQ(DecodeBytes<Proposal>(EncodeToBytes(p)), ParseStatus::kMalformed);
  }
}

TEST(ClcFieldTest, AcceptZeroServerPidIsMalformed) {
  Accept a = SampleAccept();
  a.server_pid = 0;
  EXPECT_EQ(DecodeBytes<Accept>(EncodeToBytes(a)), ParseStatus::kMalformed);
}

TEST(ClcFieldTest, AcceptBadSizeCodes) {
  for (uint8_t code : {16, 0xFF}) {
    Accept a = SampleAccept();
    a.c2s_size_code = code;
    EXPECT_EQ(DecodeBytes<Accept>(EncodeToBytes(a)), ParseStatus::kMalformed);
    a = SampleAccept();
    a.s2c_size_code = code;
    EXPECT_EQ(DecodeBytes<Accept>(EncodeToBytes(a)), ParseStatus::kMalformed);
  }
}

TEST(ClcFieldTest, DeclineKeepsUnknownDiagnosis) {
  Decline d = SampleDecline();
  d.diagnosis = 0x12345678;
  Decline out;
  ASSERT_EQ(Decode(EncodeToBytes(d), &out), ParseStatus::kOk);
  EXPECT_EQ(out.diagnosis, 0x12345678u);
}

TEST(ClcFieldTest, ReservedBytesIgnoredOnReceive) {
  Bytes msg = EncodeToBytes(SampleProposal());
  msg[20] = msg[21] = msg[22] = msg[23] = 0xAA;
  msg[7] = 0x20;  // typev1/typev2 bits are not checked either
  Proposal out;
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_EQ(out, SampleProposal());

  Bytes decline = EncodeToBytes(SampleDecline());
  decline[20] = 0x1F;  // os_type z/OS, reserved nibble set
  decline[21] = 0xFF;
  Decline d;
  ASSERT_EQ(Decode(decline, &d), ParseStatus::kOk);
  EXPECT_EQ(d, SampleDecline());
}

TEST(ClcFieldTest, WrongTypeIsMalformed) {
  const Bytes proposal = EncodeToBytes(SampleProposal());
  const Bytes confirm = EncodeToBytes(SampleConfirm());
  EXPECT_EQ(DecodeBytes<Confirm>(proposal), ParseStatus::kMalformed);
  EXPECT_EQ(DecodeBytes<Proposal>(confirm), ParseStatus::kMalformed);
  EXPECT_EQ(DecodeBytes<Decline>(proposal), ParseStatus::kMalformed);
  EXPECT_EQ(DecodeBytes<Accept>(EncodeToBytes(SampleDecline())),
            ParseStatus::kMalformed);
}

TEST(ClcFieldTest, DecodeLeavesOutputAloneOnFailure) {
  Proposal p = SampleProposal();
  p.pid = 0;
  Proposal out;
  out.pid = 99;
  EXPECT_NE(Decode(EncodeToBytes(p), &out), ParseStatus::kOk);
  EXPECT_EQ(out.pid, 99u);
}

// --- Framing checks, for every message type ---

template <typename Message>
Message Sample();
template <>
Proposal Sample<Proposal>() {
  return SampleProposal();
}
template <>
Accept Sample<Accept>() {
  return SampleAccept();
}
template <>
Confirm Sample<Confirm>() {
  return SampleConfirm();
}
template <>
Decline Sample<Decline>() {
  return SampleDecline();
}

template <typename Message>
class ClcFramingTest : public testing::Test {
 protected:
  Bytes Valid() const { return EncodeToBytes(Sample<Message>()); }
  ParseStatus DecodeIt(const Bytes& bytes) const {
    return DecodeBytes<Message>(bytes);
  }
};

using MessageTypes = testing::Types<Proposal, Accept, Confirm, Decline>;
TYPED_TEST_SUITE(ClcFramingTest, MessageTypes);

TYPED_TEST(ClcFramingTest, ValidMessageDecodesAndHeaderAgrees) {
  const Bytes msg = this->Valid();
  ASSERT_GT(msg.size(), kClcHeaderSize + kClcTrailerSize);
  TypeParam out;
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_EQ(out, Sample<TypeParam>());
  ClcHeader hdr;
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_EQ(hdr.length, msg.size());
  EXPECT_EQ(hdr.version, kClcVersion);
  EXPECT_EQ(msg[7] & 0x05, 0x05);  // typev2 and typev1 say SMC-D
}

TYPED_TEST(ClcFramingTest, SendsSmcdEyecatchers) {
  const Bytes msg = this->Valid();
  EXPECT_TRUE(
      std::equal(kEyecatcherSmcd.begin(), kEyecatcherSmcd.end(), msg.begin()));
  EXPECT_TRUE(std::equal(kEyecatcherSmcd.begin(), kEyecatcherSmcd.end(),
                         msg.end() - kClcTrailerSize));
}

// An SMC-R header makes an SMC-R message (clc_smcr_test.cc); the trailer alone
// does not.
TYPED_TEST(ClcFramingTest, SmcrTrailerAccepted) {
  Bytes msg = this->Valid();
  std::memcpy(msg.data() + msg.size() - 4, kEyecatcherSmcr.data(), 4);
  TypeParam out;
  ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk);
  EXPECT_EQ(out, Sample<TypeParam>());
}

TYPED_TEST(ClcFramingTest, BadHeaderEyecatcherIsNotClc) {
  for (size_t i = 0; i < 4; ++i) {
    Bytes msg = this->Valid();
    msg[i] ^= 0x01;
    EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kNotClc) << i;
  }
}

TYPED_TEST(ClcFramingTest, BadTrailerIsMalformed) {
  for (size_t i = 0; i < 4; ++i) {
    Bytes msg = this->Valid();
    msg[msg.size() - 4 + i] ^= 0x01;
    EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kMalformed) << i;
  }
  Bytes zero_trailer = this->Valid();
  std::fill(zero_trailer.end() - 4, zero_trailer.end(), 0);
  EXPECT_EQ(this->DecodeIt(zero_trailer), ParseStatus::kMalformed);
}

TYPED_TEST(ClcFramingTest, EveryOtherTypeIsMalformed) {
  const uint8_t own = this->Valid()[4];
  for (int type = 0; type <= 0xFF; ++type) {
    if (type == own) continue;
    Bytes msg = this->Valid();
    msg[4] = static_cast<uint8_t>(type);
    EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kMalformed) << type;
  }
}

TYPED_TEST(ClcFramingTest, LengthBelowTypeMinimumIsMalformed) {
  const Bytes valid = this->Valid();
  for (size_t length = 0; length < valid.size(); ++length) {
    Bytes msg = valid;
    SetLength(&msg, static_cast<uint16_t>(length));
    EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kMalformed) << length;
  }
}

TYPED_TEST(ClcFramingTest, LengthAboveMaxIsMalformed) {
  Bytes msg = Extend(this->Valid(), kClcMaxSize + 1 - this->Valid().size());
  ASSERT_EQ(msg.size(), kClcMaxSize + 1);
  EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kMalformed);
  SetLength(&msg, 0xFFFF);
  EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kMalformed);
}

TYPED_TEST(ClcFramingTest, LongerMessageUpToMaxIsAccepted) {
  for (size_t extra :
       {size_t{1}, size_t{16}, kClcMaxSize - this->Valid().size()}) {
    const Bytes msg = Extend(this->Valid(), extra);
    TypeParam out;
    ASSERT_EQ(Decode(msg, &out), ParseStatus::kOk) << extra;
    EXPECT_EQ(out, Sample<TypeParam>());
  }
}

TYPED_TEST(ClcFramingTest, LengthFieldMismatchWithSpan) {
  const Bytes valid = this->Valid();
  Bytes longer_field = valid;
  SetLength(&longer_field, static_cast<uint16_t>(valid.size() + 4));
  EXPECT_EQ(this->DecodeIt(longer_field), ParseStatus::kNeedMore);

  Bytes shorter_field = Extend(valid, 8);
  SetLength(&shorter_field, static_cast<uint16_t>(valid.size()));
  EXPECT_EQ(this->DecodeIt(shorter_field), ParseStatus::kMalformed);

  Bytes trailing_garbage = valid;
  trailing_garbage.push_back(0);
  EXPECT_EQ(this->DecodeIt(trailing_garbage), ParseStatus::kMalformed);
}

TYPED_TEST(ClcFramingTest, TruncatedAtEveryLengthNeedsMore) {
  const Bytes valid = this->Valid();
  for (size_t n = 0; n < valid.size(); ++n) {
    const Bytes prefix(valid.begin(), valid.begin() + n);
    EXPECT_EQ(this->DecodeIt(prefix), ParseStatus::kNeedMore) << n;
  }
}

TYPED_TEST(ClcFramingTest, UnsupportedVersions) {
  for (int version = 0; version <= 15; ++version) {
    Bytes msg = this->Valid();
    msg[7] = static_cast<uint8_t>((version << 4) | (msg[7] & 0x0F));
    const ParseStatus expected = (version == 1 || version == 2)
                                     ? ParseStatus::kOk
                                     : ParseStatus::kUnsupportedVersion;
    EXPECT_EQ(this->DecodeIt(msg), expected) << version;
  }
}

TYPED_TEST(ClcFramingTest, FramingIsJudgedBeforeVersion) {
  Bytes msg = this->Valid();
  msg[7] = 0x05;  // version 0
  msg[msg.size() - 1] = 0;
  EXPECT_EQ(this->DecodeIt(msg), ParseStatus::kMalformed);
}

TYPED_TEST(ClcFramingTest, FirstContactBitFromHeader) {
  Bytes msg = this->Valid();
  msg[7] |= 0x08;
  ClcHeader hdr;
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_TRUE(hdr.first_contact);
  msg[7] &= static_cast<uint8_t>(~0x08);
  ASSERT_EQ(ParseHeader(msg, &hdr), ParseStatus::kOk);
  EXPECT_FALSE(hdr.first_contact);
}

// --- Encode buffer sizes ---

TEST(ClcEncodeTest, TooSmallBufferReturnsZeroAndWritesNothing) {
  const size_t needed = EncodeToBytes(SampleAccept()).size();
  Bytes buf(needed - 1, 0x55);
  EXPECT_EQ(Encode(SampleAccept(), buf), 0u);
  for (uint8_t b : buf) EXPECT_EQ(b, 0x55);
  Bytes exact(needed);
  EXPECT_EQ(Encode(SampleAccept(), exact), needed);
  EXPECT_EQ(Encode(SampleDecline(), std::span<uint8_t>()), 0u);
}

// --- Ring size compression ---

TEST(ClcRingSizeTest, Decompress) {
  EXPECT_EQ(DecompressRingSize(0), 16u * 1024);
  EXPECT_EQ(DecompressRingSize(1), 32u * 1024);
  EXPECT_EQ(DecompressRingSize(15), 512u * 1024 * 1024);
  EXPECT_EQ(DecompressRingSize(16), 0u);
  EXPECT_EQ(DecompressRingSize(255), 0u);
}

TEST(ClcRingSizeTest, CompressPicksSmallestSufficientCode) {
  EXPECT_EQ(CompressRingSize(0), 0);
  EXPECT_EQ(CompressRingSize(1), 0);
  EXPECT_EQ(CompressRingSize(16 * 1024), 0);
  EXPECT_EQ(CompressRingSize(16 * 1024 + 1), 1);
  EXPECT_EQ(CompressRingSize(64 * 1024), 2);
  EXPECT_EQ(CompressRingSize(1024 * 1024), 6);
  EXPECT_EQ(CompressRingSize(512u * 1024 * 1024), 15);
  EXPECT_EQ(CompressRingSize(512u * 1024 * 1024 + 1), 15);
  EXPECT_EQ(CompressRingSize(~0u), 15);
}

TEST(ClcRingSizeTest, CompressInvertsDecompress) {
  for (uint8_t code = 0; code <= 15; ++code) {
    EXPECT_EQ(CompressRingSize(DecompressRingSize(code)), code);
  }
}

TEST(ClcStatusTest, Names) {
  EXPECT_STREQ(ParseStatusName(ParseStatus::kOk), "ok");
  EXPECT_STREQ(ParseStatusName(ParseStatus::kNeedMore), "need_more");
  EXPECT_STREQ(ParseStatusName(ParseStatus::kNotClc), "not_clc");
  EXPECT_STREQ(ParseStatusName(ParseStatus::kMalformed), "malformed");
  EXPECT_STREQ(ParseStatusName(ParseStatus::kUnsupportedVersion),
               "unsupported_version");
  EXPECT_STREQ(ParseStatusName(static_cast<ParseStatus>(99)), "unknown");
}

}  // namespace
}  // namespace usmc::wire
