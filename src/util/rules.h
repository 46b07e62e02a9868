// Rules decide which connections usmc tries to accelerate.
//
// A rule is one line: `ACTION ROLE ENDPOINT`, '#' starts a comment, blank lines
// are ignored.
//   ACTION   : accelerate | tcp | remote
//              remote = accelerate, and the peer at this endpoint runs usmc
//              on another host: offer/expect the cross-host (SMC-R)
//              handshake even without the BPF capability signal.
//   ROLE     : server (matches the local listening address) | client
//              (matches the destination) | any
//   ENDPOINT : ADDR[:PORTS] | [IPV6ADDR][:PORTS] | *[:PORTS] | :PORTS
//              ADDR may carry /PREFIXLEN; PORTS is N, N-M or *.
// Examples: "accelerate server *:6379", "tcp any *:53",
// "tcp client 10.0.0.0/8:*", "remote any 10.77.0.0/16". Several rules may be
// given on one line separated by ';' (handy in an environment variable). The
// first matching rule wins; when none matches, the default applies:
// accelerate, except port 53. IPv4-mapped IPv6 addresses match IPv4 rules.
//
// Invariant: a RuleSet is immutable after parsing, so lookups take no lock.
#ifndef USMC_UTIL_RULES_H_
#define USMC_UTIL_RULES_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace usmc::util {

enum class Role { kServer, kClient };

// What a rule (or the default) says about a connection. kRemote is kAccelerate
// plus "the peer is usmc on another host".
enum class Decision { kTcp, kAccelerate, kRemote };

struct Rule {
  bool accelerate = true;
  bool remote = false;  // `remote` action (implies accelerate)
  bool match_server = true;
  bool match_client = true;
  int family = AF_UNSPEC;  // AF_UNSPEC = any address
  in6_addr addr{};         // IPv4 stored v4-mapped
  int prefix_len = 0;      // in bits of the 128-bit (mapped) form
  uint16_t port_lo = 0;
  uint16_t port_hi = 65535;
  std::string text;  // the rule as written, for logs
};

class RuleSet {
 public:
  // Parses `text` (lines or ';'-separated). On error returns nullopt and sets
  // *error to "line N: what is wrong: 'the text'".
  static std::optional<RuleSet> Parse(std::string_view text,
                                      std::string* error);

  // The built-in default: accelerate everything except port 53.
  static RuleSet Default();

  // Loads from the environment: USMC_RULES (inline text) wins over
  // USMC_RULES_FILE, which wins over $XDG_CONFIG_HOME/usmc/rules (or
  // ~/.config/usmc/rules); nothing set -> Default(). The default rules are
  // always appended after the user's rules.
  static std::optional<RuleSet> FromEnvironment(std::string* error);

  // Decision for a connection: `addr` is the local listening address (kServer)
  // or the destination (kClient). `rule` (optional) receives the matching
  // rule's text or "default". A null or non-IP address (AF_UNIX, ...) is
  // always kTcp.
  Decision Decide(Role role, const sockaddr* addr, socklen_t len,
                  std::string* rule = nullptr) const;

  // Decide(...) != Decision::kTcp.
  bool ShouldAccelerate(Role role, const sockaddr* addr, socklen_t len,
                        std::string* matched = nullptr) const;

  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::vector<Rule> rules_;
};

}  // namespace usmc::util

#endif  // USMC_UTIL_RULES_H_
