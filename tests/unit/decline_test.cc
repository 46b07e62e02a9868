#include "wire/decline.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace usmc::wire {
namespace {

constexpr uint32_t kWireCodes[] = {
    kDeclMem,        kDeclTimeoutCl,  kDeclTimeoutAl, kDeclCnfErr,
    kDeclPeerNoSmc,  kDeclIpsec,      kDeclNoSmcDev,  kDeclNoSmcdDev,
    kDeclNoSmcrDev,  kDeclModeUnsupp, kDeclRmbeEc,    kDeclOptUnsupp,
    kDeclDiffPrefix, kDeclNoActLink,  kDeclNoSrvLink, kDeclVersMismat,
    kDeclMaxDmb,     kDeclSyncErr,    kDeclPeerDecl,  kDeclIntErr,
    kDeclErrRtok,    kDeclErrRdyLnk,  kDeclErrRegBuf,
};

constexpr uint32_t kLocalCodes[] = {
    kDeclRule,         kDeclNoListener,  kDeclClcTimeout,
    kDeclClcMalformed, kDeclServerFirst, kDeclUnsupported,
};

TEST(DeclineNameTest, SmcssNames) {
  EXPECT_STREQ(DeclineName(kDeclMem), "MEM");
  EXPECT_STREQ(DeclineName(kDeclTimeoutCl), "TIMEOUT_CL");
  EXPECT_STREQ(DeclineName(kDeclTimeoutAl), "TIMEOUT_AL");
  EXPECT_STREQ(DeclineName(kDeclCnfErr), "CNFERR");
  EXPECT_STREQ(DeclineName(kDeclPeerNoSmc), "PEERNOSMC");
  EXPECT_STREQ(DeclineName(kDeclIpsec), "IPSEC");
  EXPECT_STREQ(DeclineName(kDeclNoSmcDev), "NOSMCDEV");
  EXPECT_STREQ(DeclineName(kDeclNoSmcdDev), "NOSMCDDEV");
  EXPECT_STREQ(DeclineName(kDeclNoSmcrDev), "NOSMCRDEV");
  EXPECT_STREQ(DeclineName(kDeclModeUnsupp), "MODEUNSUPP");
  EXPECT_STREQ(DeclineName(kDeclRmbeEc), "RMBE_EC");
  EXPECT_STREQ(DeclineName(kDeclOptUnsupp), "OPTUNSUPP");
  EXPECT_STREQ(DeclineName(kDeclDiffPrefix), "DIFFPREFIX");
  EXPECT_STREQ(DeclineName(kDeclNoActLink), "NOACTLINK");
  EXPECT_STREQ(DeclineName(kDeclNoSrvLink), "NOSRVLINK");
  EXPECT_STREQ(DeclineName(kDeclVersMismat), "VERSMISMAT");
  EXPECT_STREQ(DeclineName(kDeclMaxDmb), "MAX_DMB");
  EXPECT_STREQ(DeclineName(kDeclSyncErr), "SYNCERR");
  EXPECT_STREQ(DeclineName(kDeclPeerDecl), "PEERDECL");
  EXPECT_STREQ(DeclineName(kDeclIntErr), "INTERR");
  EXPECT_STREQ(DeclineName(kDeclErrRtok), "ERR_RTOK");
  EXPECT_STREQ(DeclineName(kDeclErrRdyLnk), "ERR_RDYLNK");
  EXPECT_STREQ(DeclineName(kDeclErrRegBuf), "ERR_REGBUF");
}

TEST(DeclineNameTest, KernelCodesWithoutEnumerator) {
  EXPECT_STREQ(DeclineName(0x03030003), "NOISM2SUPP");
  EXPECT_STREQ(DeclineName(0x0303000b), "MAXLINKERR");
  EXPECT_STREQ(DeclineName(0x03080000), "GETVLANERR");
  EXPECT_STREQ(DeclineName(0x030f0000), "NOINDIRECT");
}

TEST(DeclineNameTest, LocalNames) {
  EXPECT_STREQ(DeclineName(kDeclRule), "RULE");
  EXPECT_STREQ(DeclineName(kDeclNoListener), "NOLISTENER");
  EXPECT_STREQ(DeclineName(kDeclClcTimeout), "CLCTIMEOUT");
  EXPECT_STREQ(DeclineName(kDeclClcMalformed), "CLCMALFORMED");
  EXPECT_STREQ(DeclineName(kDeclServerFirst), "SERVERFIRST");
  EXPECT_STREQ(DeclineName(kDeclUnsupported), "UNSUPPORTED");
}

TEST(DeclineNameTest, NoneAndUnknown) {
  EXPECT_STREQ(DeclineName(kDeclNone), "NONE");
  for (uint32_t code : {0x01000000u, 0x03010001u, 0x0303000cu, 0x03100000u,
                        0x09990004u, 0x0A000000u, 0x0A000007u, 0xFFFFFFFFu}) {
    EXPECT_STREQ(DeclineName(code), "UNKNOWN") << std::hex << code;
  }
}

TEST(DeclineNameTest, NamesAreDistinct) {
  std::set<std::string> names;
  for (uint32_t code : kWireCodes) names.insert(DeclineName(code));
  for (uint32_t code : kLocalCodes) names.insert(DeclineName(code));
  EXPECT_EQ(names.size(), std::size(kWireCodes) + std::size(kLocalCodes));
  EXPECT_EQ(names.count("UNKNOWN"), 0u);
}

TEST(IsWireDeclineCodeTest, KernelCodesGoOnTheWire) {
  for (uint32_t code : kWireCodes) {
    EXPECT_TRUE(IsWireDeclineCode(code)) << std::hex << code;
  }
  EXPECT_TRUE(IsWireDeclineCode(0x03030007));  // NOSMCD2DEV
  EXPECT_TRUE(IsWireDeclineCode(0x030e0000));  // NOROUTE
}

TEST(IsWireDeclineCodeTest, LocalNoneAndUnknownStayHome) {
  for (uint32_t code : kLocalCodes) {
    EXPECT_FALSE(IsWireDeclineCode(code)) << std::hex << code;
  }
  EXPECT_FALSE(IsWireDeclineCode(kDeclNone));
  EXPECT_FALSE(IsWireDeclineCode(0x0A000000));
  EXPECT_FALSE(IsWireDeclineCode(0x03990000));
  EXPECT_FALSE(IsWireDeclineCode(0xFFFFFFFF));
}

}  // namespace
}  // namespace usmc::wire
