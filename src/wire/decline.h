// Decline / fallback reason codes, numbered as the kernel's SMC_CLC_DECL_* (RFC
// 7609 peer diagnosis), plus usmc-local reasons in the 0x0999xxxx
// internal-error range and 0x0A00xxxx (usmc policy).
#ifndef USMC_WIRE_DECLINE_H_
#define USMC_WIRE_DECLINE_H_

#include <cstdint>

namespace usmc::wire {

enum DeclineCode : uint32_t {
  kDeclNone = 0,
  kDeclMem = 0x01010000,        // MEM: insufficient memory
  kDeclTimeoutCl = 0x02010000,  // TIMEOUT_CL
  kDeclTimeoutAl = 0x02020000,  // TIMEOUT_AL
  kDeclCnfErr = 0x03000000,     // CNFERR: configuration error
  kDeclPeerNoSmc = 0x03010000,  // PEERNOSMC: peer did not signal SMC capability
  kDeclIpsec = 0x03020000,      // IPSEC
  kDeclNoSmcDev = 0x03030000,   // NOSMCDEV: no usable device/link
  kDeclNoSmcdDev = 0x03030001,  // NOSMCDDEV
  kDeclNoSmcrDev = 0x03030002,  // NOSMCRDEV
  kDeclModeUnsupp = 0x03040000,  // MODEUNSUPP
  kDeclRmbeEc = 0x03050000,      // RMBE_EC
  kDeclOptUnsupp = 0x03060000,   // OPTUNSUPP: e.g. TCP Fast Open
  kDeclDiffPrefix = 0x03070000,  // DIFFPREFIX
  kDeclNoActLink = 0x030a0000,   // NOACTLINK
  kDeclNoSrvLink = 0x030b0000,   // NOSRVLINK
  kDeclVersMismat = 0x030c0000,  // VERSMISMAT
  kDeclMaxDmb = 0x030d0000,      // MAX_DMB
  kDeclSyncErr = 0x04000000,     // SYNCERR
  kDeclPeerDecl = 0x05000000,    // PEERDECL: the peer declined
  kDeclIntErr = 0x09990000,      // INTERR
  kDeclErrRtok = 0x09990001,     // ERR_RTOK
  kDeclErrRdyLnk = 0x09990002,   // ERR_RDYLNK
  kDeclErrRegBuf = 0x09990003,   // ERR_REGBUF
  // usmc-local reasons (never sent on the wire; shown by `usmc ss`):
  kDeclRule = 0x0A000001,  // RULE: a rules entry said tcp
  kDeclNoListener =
      0x0A000002,  // NOLISTENER: destination is not an accelerated listener
  kDeclClcTimeout = 0x0A000003,    // CLCTIMEOUT: handshake stalled
  kDeclClcMalformed = 0x0A000004,  // CLCMALFORMED: peer sent a bad CLC message
  kDeclServerFirst = 0x0A000005,   // SERVERFIRST: the server wrote before any
                                   // proposal (SYN cookie path)
  kDeclUnsupported = 0x0A000006,   // UNSUPPORTED: the program used a call usmc
                                   // cannot accelerate
};

// Short upper-case name as smcss prints it ("PEERNOSMC"); "0x%08x" style names
// are not returned: an unknown code yields "UNKNOWN".
const char* DeclineName(uint32_t code);

// True for codes the RFC defines (may go on the wire in a Decline).
bool IsWireDeclineCode(uint32_t code);

}  // namespace usmc::wire

#endif  // USMC_WIRE_DECLINE_H_
