#include "wire/decline.h"

#include <cstddef>

namespace usmc::wire {
namespace {

struct DeclineInfo {
  uint32_t code;
  const char* name;
  bool on_wire;
};

// Kernel codes that have no DeclineCode enumerator are listed too, so a
// Decline from a kernel-derived peer still gets a readable name.
constexpr DeclineInfo kDeclines[] = {
    {kDeclNone, "NONE", false},
    {kDeclMem, "MEM", true},
    {kDeclTimeoutCl, "TIMEOUT_CL", true},
    {kDeclTimeoutAl, "TIMEOUT_AL", true},
    {kDeclCnfErr, "CNFERR", true},
    {kDeclPeerNoSmc, "PEERNOSMC", true},
    {kDeclIpsec, "IPSEC", true},
    {kDeclNoSmcDev, "NOSMCDEV", true},
    {kDeclNoSmcdDev, "NOSMCDDEV", true},
    {kDeclNoSmcrDev, "NOSMCRDEV", true},
    {0x03030003, "NOISM2SUPP", true},
    {0x03030004, "NOV2EXT", true},
    {0x03030005, "NOV2DEXT", true},
    {0x03030006, "NOSEID", true},
    {0x03030007, "NOSMCD2DEV", true},
    {0x03030008, "NOUEID", true},
    {0x03030009, "RELEASEERR", true},
    {0x0303000a, "MAXCONNERR", true},
    {0x0303000b, "MAXLINKERR", true},
    {kDeclModeUnsupp, "MODEUNSUPP", true},
    {kDeclRmbeEc, "RMBE_EC", true},
    {kDeclOptUnsupp, "OPTUNSUPP", true},
    {kDeclDiffPrefix, "DIFFPREFIX", true},
    {0x03080000, "GETVLANERR", true},
    {0x03090000, "ISMVLANERR", true},
    {kDeclNoActLink, "NOACTLINK", true},
    {kDeclNoSrvLink, "NOSRVLINK", true},
    {kDeclVersMismat, "VERSMISMAT", true},
    {kDeclMaxDmb, "MAX_DMB", true},
    {0x030e0000, "NOROUTE", true},
    {0x030f0000, "NOINDIRECT", true},
    {kDeclSyncErr, "SYNCERR", true},
    {kDeclPeerDecl, "PEERDECL", true},
    {kDeclIntErr, "INTERR", true},
    {kDeclErrRtok, "ERR_RTOK", true},
    {kDeclErrRdyLnk, "ERR_RDYLNK", true},
    {kDeclErrRegBuf, "ERR_REGBUF", true},
    {kDeclRule, "RULE", false},
    {kDeclNoListener, "NOLISTENER", false},
    {kDeclClcTimeout, "CLCTIMEOUT", false},
    {kDeclClcMalformed, "CLCMALFORMED", false},
    {kDeclServerFirst, "SERVERFIRST", false},
    {kDeclUnsupported, "UNSUPPORTED", false},
};

const DeclineInfo* Find(uint32_t code) {
  for (const DeclineInfo& d : kDeclines) {
    if (d.code == code) return &d;
  }
  return nullptr;
}

}  // namespace

const char* DeclineName(uint32_t code) {
  const DeclineInfo* d = Find(code);
  return d != nullptr ? d->name : "UNKNOWN";
}

bool IsWireDeclineCode(uint32_t code) {
  const DeclineInfo* d = Find(code);
  return d != nullptr && d->on_wire;
}

}  // namespace usmc::wire
