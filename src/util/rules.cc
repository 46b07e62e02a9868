#include "util/rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cstdint>

#include "util/sys.h"

namespace usmc::util {
namespace {

constexpr std::string_view kBlanks = " \t\r\v\f";
constexpr size_t kMaxRulesFile = 1 << 20;

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

std::vector<std::string_view> SplitWords(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (true) {
    i = s.find_first_not_of(kBlanks, i);
    if (i == std::string_view::npos) break;
    size_t e = s.find_first_of(kBlanks, i);
    if (e == std::string_view::npos) e = s.size();
    words.push_back(s.substr(i, e - i));
    i = e;
  }
  return words;
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// Decimal digits only (no sign, no spaces), value <= max.
bool ParseUint(std::string_view s, uint32_t max, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParsePorts(std::string_view s, Rule* r, std::string* err) {
  if (s.empty()) {
    *err = "missing port after ':'";
    return false;
  }
  if (s == "*") {
    r->port_lo = 0;
    r->port_hi = 65535;
    return true;
  }
  size_t dash = s.find('-');
  std::string_view lo = s.substr(0, dash);
  std::string_view hi =
      dash == std::string_view::npos ? lo : s.substr(dash + 1);
  uint32_t l = 0, h = 0;
  if (!ParseUint(lo, 65535, &l) || !ParseUint(hi, 65535, &h)) {
    *err = "bad port " + Quote(s) + " (expected N, N-M or *, 0-65535)";
    return false;
  }
  if (l > h) {
    *err = "bad port range " + Quote(s) + " (start > end)";
    return false;
  }
  r->port_lo = static_cast<uint16_t>(l);
  r->port_hi = static_cast<uint16_t>(h);
  return true;
}

void MaskTo(in6_addr* a, int prefix_len) {
  for (int i = 0; i < 16; ++i) {
    int bits = prefix_len - i * 8;
    if (bits >= 8) continue;
    a->s6_addr[i] &= bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
}

bool PrefixMatch(const in6_addr& rule, const in6_addr& a, int prefix_len) {
  for (int i = 0; i < 16; ++i) {
    int bits = prefix_len - i * 8;
    if (bits <= 0) return true;
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((rule.s6_addr[i] & mask) != (a.s6_addr[i] & mask)) return false;
  }
  return true;
}

in6_addr MapV4(const in_addr& v4) {
  in6_addr a{};
  a.s6_addr[10] = 0xff;
  a.s6_addr[11] = 0xff;
  memcpy(&a.s6_addr[12], &v4, 4);
  return a;
}

// ADDR or ADDR/PREFIXLEN, IPv4 or IPv6.
bool ParseAddr(std::string_view s, Rule* r, std::string* err) {
  size_t slash = s.find('/');
  std::string addr(s.substr(0, slash));
  in_addr v4;
  int max_len = 0;
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
    r->family = AF_INET;
    r->addr = MapV4(v4);
    max_len = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), &r->addr) == 1) {
    r->family = AF_INET6;
    max_len = 128;
  } else {
    *err = "bad address " + Quote(addr);
    return false;
  }
  uint32_t len = static_cast<uint32_t>(max_len);
  if (slash != std::string_view::npos &&
      !ParseUint(s.substr(slash + 1), static_cast<uint32_t>(max_len), &len)) {
    *err = "bad prefix length " + Quote(s.substr(slash)) + " (0-" +
           std::to_string(max_len) + " for " +
           (r->family == AF_INET ? "IPv4)" : "IPv6)");
    return false;
  }
  r->prefix_len = static_cast<int>(len) + (r->family == AF_INET ? 96 : 0);
  MaskTo(&r->addr, r->prefix_len);
  return true;
}

// [ADDR[/LEN]][/LEN][:PORTS]
bool ParseBracketed(std::string_view s, Rule* r, std::string* err) {
  size_t close = s.find(']');
  if (close == std::string_view::npos) {
    *err = "missing ']' in " + Quote(s);
    return false;
  }
  std::string addr(s.substr(1, close - 1));
  std::string_view rest = s.substr(close + 1);
  if (!rest.empty() && rest[0] == '/') {
    size_t colon = rest.find(':');
    addr += rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view()
                                           : rest.substr(colon);
  }
  if (!rest.empty() && rest[0] != ':') {
    *err = "unexpected " + Quote(rest) + " after ']'";
    return false;
  }
  if (!ParseAddr(addr, r, err)) return false;
  return rest.empty() || ParsePorts(rest.substr(1), r, err);
}

bool ParseEndpoint(std::string_view s, Rule* r, std::string* err) {
  if (s[0] == '[') return ParseBracketed(s, r, err);
  if (s == "*") return true;
  if (s.substr(0, 2) == "*:") return ParsePorts(s.substr(2), r, err);
  if (s[0] == ':' && s.substr(0, 2) != "::")
    return ParsePorts(s.substr(1), r, err);
  size_t colons = static_cast<size_t>(std::count(s.begin(), s.end(), ':'));
  if (colons != 1) return ParseAddr(s, r, err);  // no port, or a bare IPv6
  size_t colon = s.find(':');
  return ParseAddr(s.substr(0, colon), r, err) &&
         ParsePorts(s.substr(colon + 1), r, err);
}

bool ParseRule(std::string_view text, Rule* r, std::string* err) {
  std::vector<std::string_view> w = SplitWords(text);
  if (w[0] == "accelerate" || w[0] == "remote") {
    r->accelerate = true;
    r->remote = w[0] == "remote";
  } else if (w[0] == "tcp") {
    r->accelerate = false;
  } else {
    *err = "unknown action " + Quote(w[0]);
    return false;
  }
  if (w.size() < 2) {
    *err = "missing role (server, client or any)";
    return false;
  }
  if (w[1] == "server" || w[1] == "client" || w[1] == "any") {
    r->match_server = w[1] != "client";
    r->match_client = w[1] != "server";
  } else {
    *err = "unknown role " + Quote(w[1]);
    return false;
  }
  if (w.size() < 3) {
    *err = "missing endpoint (e.g. *:6379)";
    return false;
  }
  if (!ParseEndpoint(w[2], r, err)) return false;
  if (w.size() > 3) {
    *err = "unexpected " + Quote(w[3]) + " after the endpoint";
    return false;
  }
  r->text = std::string(text);
  return true;
}

bool ToMapped(const sockaddr* sa, socklen_t len, in6_addr* a, uint16_t* port) {
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    *a = MapV4(in->sin_addr);
    *port = ntohs(in->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    *a = in6->sin6_addr;
    *port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

Decision DecisionOf(const Rule& r) {
  if (!r.accelerate) return Decision::kTcp;
  return r.remote ? Decision::kRemote : Decision::kAccelerate;
}

bool Matches(const Rule& r, Role role, const in6_addr& a, uint16_t port) {
  if (role == Role::kServer ? !r.match_server : !r.match_client) return false;
  if (port < r.port_lo || port > r.port_hi) return false;
  return r.family == AF_UNSPEC || PrefixMatch(r.addr, a, r.prefix_len);
}

// Reads a whole (small) file through raw syscalls: this runs inside the
// preloaded library, where open/read are interposed. Returns 0 or an errno.
int ReadFile(const char* path, std::string* out) {
  int fd = sys::Open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  out->clear();
  char buf[4096];
  int rc = 0;
  while (true) {
    ssize_t n = sys::Read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = errno;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxRulesFile) {
      rc = EFBIG;
      break;
    }
  }
  sys::Close(fd);
  return rc;
}

std::string DefaultConfigPath() {
  const char* xdg = secure_getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/usmc/rules";
  const char* home = secure_getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    return std::string(home) + "/.config/usmc/rules";
  }
  return {};
}

// Finds the user's rule text. Returns false on an error worth reporting;
// *source stays empty when there are no user rules.
bool LoadUserRules(std::string* text, std::string* source, std::string* err) {
  if (const char* inline_rules = secure_getenv("USMC_RULES")) {
    *text = inline_rules;
    *source = "USMC_RULES";
    return true;
  }
  const char* file = secure_getenv("USMC_RULES_FILE");
  bool explicit_file = file != nullptr && file[0] != '\0';
  std::string path = explicit_file ? std::string(file) : DefaultConfigPath();
  if (path.empty()) return true;
  int rc = ReadFile(path.c_str(), text);
  if (rc == 0) {
    *source = path;
    return true;
  }
  if (!explicit_file && (rc == ENOENT || rc == ENOTDIR || rc == EACCES))
    return true;
  *err = path + ": cannot read rules: " + strerror(rc);
  return false;
}

}  // namespace

std::optional<RuleSet> RuleSet::Parse(std::string_view text,
                                      std::string* error) {
  RuleSet set;
  std::string err;
  int line_no = 0;
  while (!text.empty() || line_no == 0) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    line = line.substr(0, line.find('#'));
    while (!line.empty()) {
      size_t semi = line.find(';');
      std::string_view piece = Trim(line.substr(0, semi));
      line = semi == std::string_view::npos ? std::string_view()
                                            : line.substr(semi + 1);
      if (piece.empty()) continue;
      Rule rule;
      if (!ParseRule(piece, &rule, &err)) {
        if (error != nullptr) {
          *error = "line " + std::to_string(line_no) + ": " + err + ": " +
                   Quote(piece);
        }
        return std::nullopt;
      }
      set.rules_.push_back(std::move(rule));
    }
  }
  return set;
}

RuleSet RuleSet::Default() {
  RuleSet set;
  Rule dns;
  dns.accelerate = false;
  dns.port_lo = dns.port_hi = 53;
  dns.text = "default";
  Rule rest;
  rest.text = "default";
  set.rules_.push_back(dns);
  set.rules_.push_back(rest);
  return set;
}

std::optional<RuleSet> RuleSet::FromEnvironment(std::string* error) {
  std::string text, source, err;
  if (!LoadUserRules(&text, &source, &err)) {
    if (error != nullptr) *error = err;
    return std::nullopt;
  }
  std::optional<RuleSet> set = Parse(text, &err);
  if (!set) {
    if (error != nullptr) *error = source + ": " + err;
    return std::nullopt;
  }
  for (const Rule& r : Default().rules_) set->rules_.push_back(r);
  return set;
}

Decision RuleSet::Decide(Role role, const sockaddr* addr, socklen_t len,
                         std::string* rule) const {
  in6_addr a;
  uint16_t port = 0;
  if (!ToMapped(addr, len, &a, &port)) {
    if (rule != nullptr) *rule = "not an IP address";
    return Decision::kTcp;
  }
  for (const Rule& r : rules_) {
    if (Matches(r, role, a, port)) {
      if (rule != nullptr) *rule = r.text;
      return DecisionOf(r);
    }
  }
  if (rule != nullptr) *rule = "default";
  return port != 53 ? Decision::kAccelerate : Decision::kTcp;
}

bool RuleSet::ShouldAccelerate(Role role, const sockaddr* addr, socklen_t len,
                               std::string* matched) const {
  return Decide(role, addr, len, matched) != Decision::kTcp;
}

}  // namespace usmc::util
