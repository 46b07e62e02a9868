// Pure parts of the fabric link: LinkAddress and control-message codecs
// (including hostile input) and the provider policy.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "link/fabric/link_address.h"
#include "link/fabric/llc.h"
#include "link/fabric/provider.h"

namespace usmc::fabric {
namespace {

LinkAddress Sample() {
  LinkAddress a;
  a.link_id = 1;
  a.provider = Provider::kVerbs;
  EXPECT_TRUE(ParseIp("10.77.1.2", 4791, &a.addr));
  a.region_id = 7;
  a.token = 0x0102030405060708ull;
  a.rkey = 0xdeadbeefcafef00dull;
  a.base = 0x7f0000001000ull;
  a.length = 1 << 20;
  return a;
}

std::vector<uint8_t> Bytes(const LinkAddress& a) {
  std::vector<uint8_t> out(kLinkAddressMax);
  out.resize(a.Serialize(out));
  return out;
}

TEST(FabricLinkAddress, RoundTripsIpv4AndIpv6) {
  LinkAddress a = Sample();
  std::vector<uint8_t> b = Bytes(a);
  ASSERT_EQ(b.size(), kLinkAddressFixed + 6);
  LinkAddress back;
  ASSERT_EQ(LinkAddress::Parse(b, &back), AddrStatus::kOk);
  EXPECT_EQ(back, a);
  EXPECT_EQ(back.addr.ToString(), "10.77.1.2:4791");

  ASSERT_TRUE(ParseIp("fe80::1%1", 7000, &a.addr));
  b = Bytes(a);
  ASSERT_EQ(b.size(), kLinkAddressMax);
  ASSERT_EQ(LinkAddress::Parse(b, &back), AddrStatus::kOk);
  EXPECT_EQ(back, a);
  sockaddr_storage ss;
  ASSERT_EQ(back.addr.ToSockaddr(&ss), sizeof(sockaddr_in6));
  EXPECT_EQ(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_scope_id, 1u);
}

TEST(FabricLinkAddress, RejectsTruncationAndTrailingBytes) {
  const std::vector<uint8_t> b = Bytes(Sample());
  LinkAddress out;
  for (size_t n = 0; n < b.size(); ++n) {
    EXPECT_EQ(LinkAddress::Parse(std::span(b.data(), n), &out),
              AddrStatus::kTruncated)
        << n;
  }
  std::vector<uint8_t> longer = b;
  longer.push_back(0);
  EXPECT_EQ(LinkAddress::Parse(longer, &out), AddrStatus::kMalformed);
}

TEST(FabricLinkAddress, RejectsHostileFields) {
  const std::vector<uint8_t> good = Bytes(Sample());
  struct Case {
    size_t offset;
    uint8_t value;
    AddrStatus want;
  };
  const Case cases[] = {
      {0, 0x00, AddrStatus::kBadMagic},
      {4, 2, AddrStatus::kUnsupportedVersion},
      {5, 2, AddrStatus::kMalformed},      // link id >= kMaxLinks
      {6, 0, AddrStatus::kMalformed},      // no provider
      {6, 9, AddrStatus::kMalformed},      // unknown provider
      {7, 2, AddrStatus::kMalformed},      // IPv6 format, IPv4 length
      {7, 0, AddrStatus::kMalformed},      // no format
      {8, 200, AddrStatus::kMalformed},    // addr_len beyond the maximum
      {8, 22, AddrStatus::kTruncated},     // addr_len beyond the input
      {10, 1, AddrStatus::kMalformed},     // reserved byte set
      {12, 0xFF, AddrStatus::kMalformed},  // region id >= kMaxRegions
      {40, 0xFF, AddrStatus::kMalformed},  // region longer than allowed
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> b = good;
    b[c.offset] = c.value;
    LinkAddress out;
    EXPECT_EQ(LinkAddress::Parse(b, &out), c.want) << "offset " << c.offset;
    EXPECT_EQ(out, LinkAddress{}) << "offset " << c.offset;
  }
  LinkAddress wrap = Sample();
  wrap.base = UINT64_MAX - 10;  // end wraps around
  std::vector<uint8_t> b(kLinkAddressMax);
  EXPECT_EQ(wrap.Serialize(b), 0u);
  LinkAddress zero = Sample();
  zero.length = 0;
  EXPECT_EQ(zero.Serialize(b), 0u);
}

TEST(FabricLinkAddress, EveryByteFlipParsesOrFailsCleanly) {
  const std::vector<uint8_t> good = Bytes(Sample());
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> b = good;
      b[i] ^= static_cast<uint8_t>(1u << bit);
      LinkAddress out;
      if (LinkAddress::Parse(b, &out) != AddrStatus::kOk) continue;
      std::vector<uint8_t> again(kLinkAddressMax);
      again.resize(out.Serialize(again));
      EXPECT_EQ(again, b) << i << "/" << bit;
    }
  }
}

LlcMsg RoundTrip(const LlcMsg& m) {
  std::array<uint8_t, kCtrlMsgSize> b;
  EXPECT_EQ(EncodeLlc(m, b), kCtrlMsgSize);
  CtrlMsg out;
  EXPECT_EQ(ParseControl(b, &out), CtrlStatus::kOk);
  EXPECT_EQ(out.type, m.type);
  return out.llc;
}

TEST(FabricLlc, EveryTypeRoundTrips) {
  LlcMsg confirm{
      .type = MsgType::kConfirmLink, .flags = kLlcResp, .link_id = 1};
  confirm.token = 42;
  confirm.max_links = 2;
  EXPECT_EQ(RoundTrip(confirm), confirm);
  LlcMsg add{.type = MsgType::kAddLink, .link_id = 1};
  add.token = 99;
  ASSERT_TRUE(ParseIp("fe80::2%3", 1234, &add.addr));
  EXPECT_EQ(RoundTrip(add), add);
  LlcMsg del{.type = MsgType::kDeleteLink,
             .flags = kLlcDelOrderly | kLlcDelAll};
  del.reason = kReasonLostPath;
  EXPECT_EQ(RoundTrip(del), del);
  LlcMsg rkey{.type = MsgType::kConfirmRkey, .link_id = 1};
  rkey.region_id = 3;
  rkey.rkey = 0x1122334455667788ull;
  rkey.base = 4096;
  rkey.length = 65536;
  EXPECT_EQ(RoundTrip(rkey), rkey);
  LlcMsg test{.type = MsgType::kTestLink};
  for (size_t i = 0; i < test.test_data.size(); ++i) test.test_data[i] = i;
  EXPECT_EQ(RoundTrip(test), test);
  LlcMsg drk{.type = MsgType::kDeleteRkey};
  drk.region_id = kMaxRegions - 1;
  EXPECT_EQ(RoundTrip(drk), drk);
}

TEST(FabricLlc, CdcKeepsSmcLayout) {
  CdcMsg c{0x0102, 0x03040506, 0x0708,           0x090a0b0c,
           0x0d0e, 0x0f101112, kCdcWriteBlocked, 0x04};
  std::array<uint8_t, kCtrlMsgSize> b;
  ASSERT_EQ(EncodeCdc(c, b), kCtrlMsgSize);
  EXPECT_EQ(b[0], 0xFE);
  EXPECT_EQ(b[1], 44);
  EXPECT_EQ(b[2], 0x01);   // be16 seqno
  EXPECT_EQ(b[4], 0x03);   // be32 token
  EXPECT_EQ(b[10], 0x07);  // producer wrap after 2 reserved bytes
  EXPECT_EQ(b[18], 0x0d);  // consumer wrap
  EXPECT_EQ(b[24], kCdcWriteBlocked);
  CtrlMsg out;
  ASSERT_EQ(ParseControl(b, &out), CtrlStatus::kOk);
  EXPECT_EQ(out.type, MsgType::kCdc);
  EXPECT_EQ(out.cdc, c);
}

TEST(FabricLlc, RejectsHostileMessages) {
  LlcMsg rkey{.type = MsgType::kConfirmRkey};
  rkey.region_id = 1;
  rkey.length = 4096;
  std::array<uint8_t, kCtrlMsgSize> good;
  ASSERT_EQ(EncodeLlc(rkey, good), kCtrlMsgSize);
  CtrlMsg out;
  EXPECT_EQ(ParseControl(std::span(good.data(), 43), &out),
            CtrlStatus::kBadSize);
  std::vector<uint8_t> longer(good.begin(), good.end());
  longer.push_back(0);
  EXPECT_EQ(ParseControl(longer, &out), CtrlStatus::kBadSize);
  auto with = [&](size_t off, uint8_t v) {
    std::array<uint8_t, kCtrlMsgSize> b = good;
    b[off] = v;
    CtrlMsg m;
    return ParseControl(b, &m);
  };
  EXPECT_EQ(with(1, 43), CtrlStatus::kBadSize);
  EXPECT_EQ(with(0, 0x00), CtrlStatus::kUnknownType);
  EXPECT_EQ(with(0, 0x03), CtrlStatus::kUnknownType);  // ADD_LINK_CONT
  EXPECT_EQ(with(2, 0x40), CtrlStatus::kBadFlags);     // DEL_ALL on rkey
  EXPECT_EQ(with(3, 2), CtrlStatus::kBadField);        // link id
  EXPECT_EQ(with(4, 0xFF), CtrlStatus::kBadField);     // region id
  EXPECT_EQ(with(24, 0xFF), CtrlStatus::kBadField);    // length > max
  // base + length wraps
  std::array<uint8_t, kCtrlMsgSize> wrap = good;
  std::memset(wrap.data() + 16, 0xFF, 8);
  EXPECT_EQ(ParseControl(wrap, &out), CtrlStatus::kBadField);
  // ADD_LINK with an address length past its field, or no port.
  LlcMsg add{.type = MsgType::kAddLink};
  ASSERT_TRUE(ParseIp("10.0.0.1", 80, &add.addr));
  std::array<uint8_t, kCtrlMsgSize> ab;
  ASSERT_EQ(EncodeLlc(add, ab), kCtrlMsgSize);
  ab[13] = 23;
  EXPECT_EQ(ParseControl(ab, &out), CtrlStatus::kBadField);
  ASSERT_TRUE(ParseIp("10.0.0.1", 0, &add.addr));
  EXPECT_EQ(EncodeLlc(add, ab), 0u);
}

TEST(FabricLlc, AllSingleBytesAtEveryOffsetAreSafe) {
  for (uint8_t type : {0x01, 0x02, 0x04, 0x06, 0x07, 0x09, 0xFE}) {
    for (size_t off = 0; off < kCtrlMsgSize; ++off) {
      for (int v = 0; v < 256; v += 17) {
        std::array<uint8_t, kCtrlMsgSize> b{};
        b[0] = type;
        b[1] = kCtrlMsgSize;
        b[off] = static_cast<uint8_t>(v);
        CtrlMsg m;
        if (ParseControl(b, &m) != CtrlStatus::kOk) continue;
        if (m.type == MsgType::kCdc) continue;
        EXPECT_LT(m.llc.link_id, kMaxLinks);
        EXPECT_LE(m.llc.addr.len, kEpAddrMax);
      }
    }
  }
}

class FabricPolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("USMC_FABRIC_PROVIDER");
    unsetenv("USMC_FABRIC_ALLOW_TCP");
  }
  void TearDown() override { SetUp(); }
};

TEST_F(FabricPolicy, NeverTcpUnlessAllowed) {
  ProviderPolicy p = PolicyFromEnv();
  EXPECT_EQ(p.candidates, (std::vector<std::string>{"verbs", "efa"}));
  setenv("USMC_FABRIC_ALLOW_TCP", "1", 1);
  p = PolicyFromEnv();
  EXPECT_EQ(p.candidates, (std::vector<std::string>{"verbs", "efa", "tcp"}));
}

TEST_F(FabricPolicy, NamedProviderStillNeedsTheTcpSwitch) {
  setenv("USMC_FABRIC_PROVIDER", "tcp", 1);
  ProviderPolicy p = PolicyFromEnv();
  EXPECT_TRUE(p.candidates.empty());
  EXPECT_EQ(p.rejected, "tcp");
  setenv("USMC_FABRIC_ALLOW_TCP", "1", 1);
  EXPECT_EQ(PolicyFromEnv().candidates, std::vector<std::string>{"tcp"});
  EXPECT_EQ(PolicyFromEnv("verbs").candidates,
            std::vector<std::string>{"verbs"});
  EXPECT_TRUE(IsSoftwareProvider("sockets"));
  EXPECT_FALSE(IsSoftwareProvider("verbs"));
}

TEST_F(FabricPolicy, NoProviderWithoutHardwareOrPermission) {
  EpAddr src;
  ASSERT_TRUE(ParseIp("127.0.0.1", 0, &src));
  std::string chosen;
  std::string err;
  fi_info* info = SelectInfo(PolicyFromEnv(), src, nullptr, &chosen, &err);
  if (info != nullptr) {  // a machine with an RNIC
    EXPECT_NE(chosen, "tcp");
    fi_freeinfo(info);
    return;
  }
  EXPECT_FALSE(err.empty());
  setenv("USMC_FABRIC_ALLOW_TCP", "1", 1);
  info = SelectInfo(PolicyFromEnv(), src, nullptr, &chosen, &err);
  ASSERT_NE(info, nullptr) << err;
  EXPECT_EQ(chosen, "tcp");
  const ProviderTraits t = TraitsOf(info);
  EXPECT_EQ(t.completion, FI_DELIVERY_COMPLETE);
  EXPECT_GE(t.tx_depth, 64u);
  fi_freeinfo(info);
}

}  // namespace
}  // namespace usmc::fabric
