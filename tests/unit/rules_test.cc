#include "util/rules.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace usmc::util {
namespace {

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr V4(const char* ip, uint16_t port) {
  Addr a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET, ip, &in->sin_addr), 1) << ip;
  a.len = sizeof(sockaddr_in);
  return a;
}

Addr V6(const char* ip, uint16_t port) {
  Addr a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1) << ip;
  a.len = sizeof(sockaddr_in6);
  return a;
}

RuleSet MustParse(std::string_view text) {
  std::string err;
  std::optional<RuleSet> set = RuleSet::Parse(text, &err);
  EXPECT_TRUE(set.has_value()) << err;
  return set ? *set : RuleSet();
}

Rule One(std::string_view text) {
  RuleSet set = MustParse(text);
  EXPECT_EQ(set.rules().size(), 1u) << text;
  return set.rules().empty() ? Rule() : set.rules()[0];
}

std::string ParseError(std::string_view text) {
  std::string err;
  EXPECT_FALSE(RuleSet::Parse(text, &err).has_value()) << text;
  return err;
}

bool Accel(const RuleSet& s, Role role, const Addr& a,
           std::string* matched = nullptr) {
  return s.ShouldAccelerate(role, a.sa(), a.len, matched);
}

Decision Decide(const RuleSet& s, Role role, const Addr& a,
                std::string* rule = nullptr) {
  return s.Decide(role, a.sa(), a.len, rule);
}

std::string AddrString(const in6_addr& a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &a, buf, sizeof buf);
  return buf;
}

TEST(RulesParse, ActionsAndRoles) {
  Rule r = One("accelerate server *:6379");
  EXPECT_TRUE(r.accelerate);
  EXPECT_TRUE(r.match_server);
  EXPECT_FALSE(r.match_client);
  EXPECT_EQ(r.text, "accelerate server *:6379");
  r = One("tcp client *");
  EXPECT_FALSE(r.accelerate);
  EXPECT_FALSE(r.match_server);
  EXPECT_TRUE(r.match_client);
  r = One("tcp any *");
  EXPECT_TRUE(r.match_server);
  EXPECT_TRUE(r.match_client);
}

TEST(RulesParse, RemoteAction) {
  Rule r = One("remote any 10.77.0.0/16");
  EXPECT_TRUE(r.accelerate);
  EXPECT_TRUE(r.remote);
  EXPECT_TRUE(r.match_server && r.match_client);
  EXPECT_EQ(AddrString(r.addr), "::ffff:10.77.0.0");
  EXPECT_EQ(r.prefix_len, 96 + 16);
  EXPECT_EQ(r.text, "remote any 10.77.0.0/16");
  r = One("remote client [fd00::/8]:7000-7010");
  EXPECT_TRUE(r.remote);
  EXPECT_FALSE(r.match_server);
  EXPECT_EQ(r.port_lo, 7000);
  EXPECT_FALSE(One("accelerate any *").remote);
  EXPECT_FALSE(One("tcp any *").remote);
  const RuleSet d = RuleSet::Default();
  for (const Rule& rule : d.rules()) EXPECT_FALSE(rule.remote);
}

TEST(RulesParse, RemoteErrors) {
  EXPECT_EQ(ParseError("remote any 10.77.0.0/16\nremot any 10.77.0.0/16"),
            "line 2: unknown action 'remot': 'remot any 10.77.0.0/16'");
  EXPECT_EQ(ParseError("REMOTE any *"),
            "line 1: unknown action 'REMOTE': 'REMOTE any *'");
  EXPECT_EQ(ParseError("tcp any *:1\n\nremote"),
            "line 3: missing role (server, client or any): 'remote'");
}

TEST(RulesParse, WildcardEndpoints) {
  for (const char* text : {"tcp any *", "tcp any *:*"}) {
    Rule r = One(text);
    EXPECT_EQ(r.family, AF_UNSPEC) << text;
    EXPECT_EQ(r.port_lo, 0) << text;
    EXPECT_EQ(r.port_hi, 65535) << text;
  }
  Rule r = One("tcp any *:53");
  EXPECT_EQ(r.family, AF_UNSPEC);
  EXPECT_EQ(r.port_lo, 53);
  EXPECT_EQ(r.port_hi, 53);
  r = One("tcp any :8000-8080");
  EXPECT_EQ(r.family, AF_UNSPEC);
  EXPECT_EQ(r.port_lo, 8000);
  EXPECT_EQ(r.port_hi, 8080);
  r = One("tcp any :0-65535");
  EXPECT_EQ(r.port_lo, 0);
  EXPECT_EQ(r.port_hi, 65535);
}

TEST(RulesParse, Ipv4Endpoints) {
  Rule r = One("tcp client 10.1.2.3");
  EXPECT_EQ(r.family, AF_INET);
  EXPECT_EQ(AddrString(r.addr), "::ffff:10.1.2.3");
  EXPECT_EQ(r.prefix_len, 128);
  EXPECT_EQ(r.port_lo, 0);
  EXPECT_EQ(r.port_hi, 65535);
  r = One("tcp client 10.1.2.3:80");
  EXPECT_EQ(r.prefix_len, 128);
  EXPECT_EQ(r.port_lo, 80);
  EXPECT_EQ(r.port_hi, 80);
  r = One("tcp client 10.1.2.3/8:*");
  EXPECT_EQ(AddrString(r.addr), "::ffff:10.0.0.0");  // host bits cleared
  EXPECT_EQ(r.prefix_len, 96 + 8);
  r = One("tcp client 0.0.0.0/0:1-2");
  EXPECT_EQ(r.prefix_len, 96);
  EXPECT_EQ(r.port_lo, 1);
  EXPECT_EQ(r.port_hi, 2);
}

TEST(RulesParse, Ipv6Endpoints) {
  Rule r = One("tcp any ::1");
  EXPECT_EQ(r.family, AF_INET6);
  EXPECT_EQ(AddrString(r.addr), "::1");
  EXPECT_EQ(r.prefix_len, 128);
  EXPECT_EQ(r.port_hi, 65535);  // a bare IPv6 address carries no port
  r = One("tcp any fe80::1/10");
  EXPECT_EQ(AddrString(r.addr), "fe80::");
  EXPECT_EQ(r.prefix_len, 10);
  r = One("tcp any [::1]:443");
  EXPECT_EQ(AddrString(r.addr), "::1");
  EXPECT_EQ(r.port_lo, 443);
  EXPECT_EQ(r.port_hi, 443);
  r = One("tcp any [::1]");
  EXPECT_EQ(r.port_lo, 0);
  EXPECT_EQ(r.port_hi, 65535);
  r = One("tcp any [fd00::/8]:1000-2000");
  EXPECT_EQ(AddrString(r.addr), "fd00::");
  EXPECT_EQ(r.prefix_len, 8);
  EXPECT_EQ(r.port_lo, 1000);
  EXPECT_EQ(r.port_hi, 2000);
  r = One("tcp any [fd00::]/16:*");
  EXPECT_EQ(r.prefix_len, 16);
  r = One("tcp any [10.0.0.1]:80");  // brackets also take IPv4
  EXPECT_EQ(r.family, AF_INET);
  EXPECT_EQ(r.port_lo, 80);
}

TEST(RulesParse, LinesSemicolonsCommentsBlanks) {
  RuleSet s = MustParse(
      "# a comment line\n"
      "\n"
      "   \t\n"
      "accelerate server *:6379   # trailing comment\r\n"
      "tcp client 10.0.0.0/8:*; tcp any *:53 ;; accelerate any *\n"
      "\ttcp\tany\t[::1]:22\t\n"
      "tcp any *:1 # ; accelerate any *:2 is commented out");
  ASSERT_EQ(s.rules().size(), 6u);
  EXPECT_EQ(s.rules()[0].text, "accelerate server *:6379");
  EXPECT_EQ(s.rules()[1].text, "tcp client 10.0.0.0/8:*");
  EXPECT_EQ(s.rules()[2].text, "tcp any *:53");
  EXPECT_EQ(s.rules()[3].text, "accelerate any *");
  EXPECT_EQ(s.rules()[4].port_lo, 22);
  EXPECT_EQ(s.rules()[5].port_lo, 1);
  EXPECT_TRUE(MustParse("").rules().empty());
  EXPECT_TRUE(MustParse("# only\n;\n").rules().empty());
}

TEST(RulesParse, ErrorsNameLineAndText) {
  EXPECT_EQ(ParseError("accelerate server *:6379\n"
                       "# comment\n"
                       "acelerate server *:6379\n"),
            "line 3: unknown action 'acelerate': 'acelerate server *:6379'");
  EXPECT_EQ(
      ParseError("tcp any *:1; tcp any *:2\n\ntcp any *:3;  tcp sever *:4 "),
      "line 3: unknown role 'sever': 'tcp sever *:4'");
  EXPECT_EQ(ParseError("bogus"), "line 1: unknown action 'bogus': 'bogus'");
  EXPECT_EQ(ParseError("tcp"),
            "line 1: missing role (server, client or any): 'tcp'");
  EXPECT_EQ(ParseError("tcp any"),
            "line 1: missing endpoint (e.g. *:6379): 'tcp any'");
  EXPECT_EQ(
      ParseError("tcp any *:1 extra"),
      "line 1: unexpected 'extra' after the endpoint: 'tcp any *:1 extra'");
  EXPECT_EQ(ParseError("TCP any *"),
            "line 1: unknown action 'TCP': 'TCP any *'");
}

TEST(RulesParse, EndpointErrors) {
  struct Case {
    const char* endpoint;
    const char* what;
  } cases[] = {
      {"10.0.0.256", "bad address '10.0.0.256'"},
      {"host.example:80", "bad address 'host.example'"},
      {"fe80::1%eth0", "bad address 'fe80::1%eth0'"},
      {"10.0.0.0/33", "bad prefix length '/33' (0-32 for IPv4)"},
      {"10.0.0.0/", "bad prefix length '/' (0-32 for IPv4)"},
      {"10.0.0.0/x", "bad prefix length '/x' (0-32 for IPv4)"},
      {"::/129", "bad prefix length '/129' (0-128 for IPv6)"},
      {"[::]/129:80", "bad prefix length '/129' (0-128 for IPv6)"},
      {"*:65536", "bad port '65536' (expected N, N-M or *, 0-65535)"},
      {"*:http", "bad port 'http' (expected N, N-M or *, 0-65535)"},
      {"*:-5", "bad port '-5' (expected N, N-M or *, 0-65535)"},
      {"*:5-", "bad port '5-' (expected N, N-M or *, 0-65535)"},
      {"*:1-2-3", "bad port '1-2-3' (expected N, N-M or *, 0-65535)"},
      {"*:+80", "bad port '+80' (expected N, N-M or *, 0-65535)"},
      {"*:90-80", "bad port range '90-80' (start > end)"},
      {"*:", "missing port after ':'"},
      {"10.0.0.1:", "missing port after ':'"},
      {":", "missing port after ':'"},
      {"[::1]:", "missing port after ':'"},
      {"[::1", "missing ']' in '[::1'"},
      {"[::1]80", "unexpected '80' after ']'"},
      {"[]:80", "bad address ''"},
      {"*/8", "bad address '*'"},
  };
  for (const Case& c : cases) {
    std::string rule = std::string("tcp any ") + c.endpoint;
    EXPECT_EQ(ParseError(rule),
              "line 1: " + std::string(c.what) + ": '" + rule + "'");
  }
}

TEST(RulesParse, NullErrorIsAllowed) {
  EXPECT_FALSE(RuleSet::Parse("nonsense", nullptr).has_value());
}

TEST(RulesMatch, FirstMatchWins) {
  RuleSet s = MustParse(
      "tcp client 10.0.0.5:*\n"
      "accelerate client 10.0.0.0/8:*\n"
      "tcp any *");
  std::string m;
  EXPECT_FALSE(Accel(s, Role::kClient, V4("10.0.0.5", 80), &m));
  EXPECT_EQ(m, "tcp client 10.0.0.5:*");
  EXPECT_TRUE(Accel(s, Role::kClient, V4("10.0.0.6", 80), &m));
  EXPECT_EQ(m, "accelerate client 10.0.0.0/8:*");
  EXPECT_FALSE(Accel(s, Role::kClient, V4("11.0.0.6", 80), &m));
  EXPECT_EQ(m, "tcp any *");
  // Same rules, other order: the broad rule now shadows the rest.
  RuleSet r = MustParse("tcp any *; accelerate client 10.0.0.0/8:*");
  EXPECT_FALSE(Accel(r, Role::kClient, V4("10.0.0.6", 80), &m));
  EXPECT_EQ(m, "tcp any *");
}

TEST(RulesMatch, DefaultWhenNothingMatches) {
  RuleSet s = MustParse("tcp server *:6379");
  std::string m;
  EXPECT_TRUE(Accel(s, Role::kClient, V4("127.0.0.1", 6379), &m));
  EXPECT_EQ(m, "default");
  EXPECT_FALSE(Accel(s, Role::kClient, V4("127.0.0.1", 53), &m));
  EXPECT_EQ(m, "default");
  EXPECT_FALSE(Accel(s, Role::kServer, V6("::1", 53), &m));
  EXPECT_TRUE(Accel(RuleSet(), Role::kServer, V6("::1", 54)));
  // The user's rules come first, so they can accelerate port 53.
  RuleSet dns = MustParse("accelerate any *:53");
  EXPECT_TRUE(Accel(dns, Role::kClient, V4("127.0.0.1", 53), &m));
  EXPECT_EQ(m, "accelerate any *:53");
}

TEST(RulesMatch, DefaultRuleSet) {
  RuleSet d = RuleSet::Default();
  ASSERT_EQ(d.rules().size(), 2u);
  std::string m;
  for (Role role : {Role::kServer, Role::kClient}) {
    EXPECT_FALSE(Accel(d, role, V4("8.8.8.8", 53), &m));
    EXPECT_EQ(m, "default");
    EXPECT_TRUE(Accel(d, role, V4("8.8.8.8", 853), &m));
    EXPECT_EQ(m, "default");
    EXPECT_TRUE(Accel(d, role, V6("2001:db8::1", 80)));
    EXPECT_FALSE(Accel(d, role, V6("2001:db8::1", 53)));
  }
}

TEST(RulesMatch, Roles) {
  RuleSet s = MustParse("tcp server *:80; accelerate client *:80; tcp any *");
  std::string m;
  EXPECT_FALSE(Accel(s, Role::kServer, V4("0.0.0.0", 80), &m));
  EXPECT_EQ(m, "tcp server *:80");
  EXPECT_TRUE(Accel(s, Role::kClient, V4("127.0.0.1", 80), &m));
  EXPECT_EQ(m, "accelerate client *:80");
  EXPECT_FALSE(Accel(s, Role::kClient, V4("127.0.0.1", 81), &m));
  EXPECT_EQ(m, "tcp any *");
}

TEST(RulesMatch, PortRanges) {
  RuleSet s = MustParse("accelerate any *:8000-8080; tcp any *");
  EXPECT_FALSE(Accel(s, Role::kClient, V4("1.2.3.4", 7999)));
  EXPECT_TRUE(Accel(s, Role::kClient, V4("1.2.3.4", 8000)));
  EXPECT_TRUE(Accel(s, Role::kClient, V4("1.2.3.4", 8042)));
  EXPECT_TRUE(Accel(s, Role::kClient, V4("1.2.3.4", 8080)));
  EXPECT_FALSE(Accel(s, Role::kClient, V4("1.2.3.4", 8081)));
  RuleSet edges = MustParse("tcp any :0; tcp any :65535");
  EXPECT_FALSE(Accel(edges, Role::kClient, V4("1.2.3.4", 0)));
  EXPECT_FALSE(Accel(edges, Role::kClient, V4("1.2.3.4", 65535)));
  EXPECT_TRUE(Accel(edges, Role::kClient, V4("1.2.3.4", 65534)));
}

TEST(RulesMatch, Ipv4Prefixes) {
  RuleSet s = MustParse(
      "accelerate client 192.168.1.128/25:*\n"
      "accelerate client 10.0.0.0/8\n"
      "accelerate client 127.0.0.1:6379\n"
      "tcp any *");
  EXPECT_TRUE(Accel(s, Role::kClient, V4("192.168.1.128", 1)));
  EXPECT_TRUE(Accel(s, Role::kClient, V4("192.168.1.255", 1)));
  EXPECT_FALSE(Accel(s, Role::kClient, V4("192.168.1.127", 1)));
  EXPECT_TRUE(Accel(s, Role::kClient, V4("10.255.0.1", 1)));
  EXPECT_FALSE(Accel(s, Role::kClient, V4("11.0.0.1", 1)));
  EXPECT_TRUE(Accel(s, Role::kClient, V4("127.0.0.1", 6379)));
  EXPECT_FALSE(Accel(s, Role::kClient, V4("127.0.0.1", 6380)));
  EXPECT_FALSE(Accel(s, Role::kClient, V4("127.0.0.2", 6379)));
  RuleSet all4 = MustParse("tcp any 0.0.0.0/0");
  EXPECT_FALSE(Accel(all4, Role::kClient, V4("203.0.113.9", 80)));
  EXPECT_TRUE(Accel(all4, Role::kClient, V6("2001:db8::1", 80)));
}

TEST(RulesMatch, Ipv6Prefixes) {
  RuleSet s = MustParse(
      "accelerate any [fd00::/8]:*\n"
      "accelerate any [::1]:6379\n"
      "accelerate any 2001:db8:1::/48\n"
      "tcp any *");
  EXPECT_TRUE(Accel(s, Role::kClient, V6("fd12:3456::1", 9)));
  EXPECT_FALSE(Accel(s, Role::kClient, V6("fe80::1", 9)));
  EXPECT_TRUE(Accel(s, Role::kServer, V6("::1", 6379)));
  EXPECT_FALSE(Accel(s, Role::kServer, V6("::1", 6380)));
  EXPECT_TRUE(Accel(s, Role::kClient, V6("2001:db8:1:ffff::1", 1)));
  EXPECT_FALSE(Accel(s, Role::kClient, V6("2001:db8:2::1", 1)));
  // An IPv6 rule does not match an IPv4 address outside its prefix.
  EXPECT_FALSE(Accel(s, Role::kClient, V4("127.0.0.1", 6379)));
  RuleSet odd = MustParse("tcp any fe80::/10");
  EXPECT_FALSE(Accel(odd, Role::kClient, V6("febf::1", 1)));
  EXPECT_TRUE(Accel(odd, Role::kClient, V6("fec0::1", 1)));
}

TEST(RulesMatch, V4MappedMatchesV4Rules) {
  RuleSet s = MustParse("tcp client 10.0.0.0/8:*; tcp server 127.0.0.1:6379");
  std::string m;
  EXPECT_FALSE(Accel(s, Role::kClient, V6("::ffff:10.1.2.3", 443), &m));
  EXPECT_EQ(m, "tcp client 10.0.0.0/8:*");
  EXPECT_FALSE(Accel(s, Role::kServer, V6("::ffff:127.0.0.1", 6379), &m));
  EXPECT_EQ(m, "tcp server 127.0.0.1:6379");
  EXPECT_TRUE(Accel(s, Role::kClient, V6("::ffff:11.1.2.3", 443)));
  // Not mapped: ::a01:203 has the same low 32 bits but is not IPv4.
  EXPECT_TRUE(Accel(s, Role::kClient, V6("::10.1.2.3", 443)));
  // A mapped rule matches plain IPv4 too.
  RuleSet mapped = MustParse("tcp any [::ffff:192.0.2.0/120]");
  EXPECT_FALSE(Accel(mapped, Role::kClient, V4("192.0.2.77", 80)));
}

TEST(RulesMatch, NonIpAndShortAddresses) {
  RuleSet s = MustParse("accelerate any *");
  std::string m;
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_FALSE(s.ShouldAccelerate(
      Role::kClient, reinterpret_cast<sockaddr*>(&un), sizeof un, &m));
  EXPECT_EQ(m, "not an IP address");
  Addr a = V4("127.0.0.1", 80);
  EXPECT_FALSE(s.ShouldAccelerate(Role::kClient, a.sa(), a.len - 1));
  Addr b = V6("::1", 80);
  EXPECT_FALSE(s.ShouldAccelerate(Role::kClient, b.sa(), sizeof(sockaddr_in)));
  EXPECT_FALSE(s.ShouldAccelerate(Role::kClient, nullptr, 0));
  EXPECT_TRUE(
      s.ShouldAccelerate(Role::kClient, a.sa(), a.len));  // no `matched`
}

TEST(RulesDecide, RemoteForClientAndServer) {
  RuleSet s = MustParse(
      "remote server *:7000\n"
      "remote client 10.77.0.0/16:*\n"
      "accelerate any *:8000\n"
      "tcp any *");
  std::string m;
  EXPECT_EQ(Decide(s, Role::kServer, V4("0.0.0.0", 7000), &m),
            Decision::kRemote);
  EXPECT_EQ(m, "remote server *:7000");
  EXPECT_EQ(Decide(s, Role::kClient, V4("10.77.3.4", 7000), &m),
            Decision::kRemote);
  EXPECT_EQ(m, "remote client 10.77.0.0/16:*");
  // Each rule is bound to its role.
  EXPECT_EQ(Decide(s, Role::kServer, V4("10.77.3.4", 7001), &m),
            Decision::kTcp);
  EXPECT_EQ(m, "tcp any *");
  EXPECT_EQ(Decide(s, Role::kClient, V4("10.78.3.4", 7000), &m),
            Decision::kTcp);
  EXPECT_EQ(Decide(s, Role::kClient, V4("10.78.3.4", 8000), &m),
            Decision::kAccelerate);
  EXPECT_EQ(m, "accelerate any *:8000");
  // Remote still means accelerate for callers that only ask that.
  EXPECT_TRUE(Accel(s, Role::kServer, V4("0.0.0.0", 7000), &m));
  EXPECT_EQ(m, "remote server *:7000");
  EXPECT_TRUE(Accel(s, Role::kClient, V4("10.77.3.4", 1)));
}

TEST(RulesDecide, FirstMatchWinsOverRemote) {
  RuleSet s = MustParse(
      "tcp client 10.77.0.9:*; remote any 10.77.0.0/16; accelerate any *");
  std::string m;
  EXPECT_EQ(Decide(s, Role::kClient, V4("10.77.0.9", 80), &m), Decision::kTcp);
  EXPECT_EQ(m, "tcp client 10.77.0.9:*");
  EXPECT_FALSE(Accel(s, Role::kClient, V4("10.77.0.9", 80)));
  // The tcp rule is client-only, so a server bound there is remote.
  EXPECT_EQ(Decide(s, Role::kServer, V4("10.77.0.9", 80), &m),
            Decision::kRemote);
  EXPECT_EQ(m, "remote any 10.77.0.0/16");
  EXPECT_EQ(Decide(s, Role::kClient, V4("10.77.0.10", 80)), Decision::kRemote);
  EXPECT_EQ(Decide(s, Role::kClient, V4("10.76.0.10", 80), &m),
            Decision::kAccelerate);
  EXPECT_EQ(m, "accelerate any *");
  // A broad accelerate rule first shadows the remote rule.
  RuleSet shadowed = MustParse("accelerate any *; remote any 10.77.0.0/16");
  EXPECT_EQ(Decide(shadowed, Role::kClient, V4("10.77.0.10", 80)),
            Decision::kAccelerate);
}

TEST(RulesDecide, RemoteMatchesV4Mapped) {
  RuleSet s = MustParse("remote client 10.77.0.0/16:*; remote server [::1]");
  std::string m;
  EXPECT_EQ(Decide(s, Role::kClient, V6("::ffff:10.77.1.2", 443), &m),
            Decision::kRemote);
  EXPECT_EQ(m, "remote client 10.77.0.0/16:*");
  EXPECT_EQ(Decide(s, Role::kClient, V6("::10.77.1.2", 443), &m),
            Decision::kAccelerate);  // not mapped: falls to the default
  EXPECT_EQ(m, "default");
  EXPECT_EQ(Decide(s, Role::kServer, V6("::1", 9)), Decision::kRemote);
  RuleSet mapped = MustParse("remote any [::ffff:10.77.0.0/112]");
  EXPECT_EQ(Decide(mapped, Role::kServer, V4("10.77.200.1", 80)),
            Decision::kRemote);
}

TEST(RulesDecide, DefaultsAndNonIp) {
  RuleSet none;
  std::string m;
  EXPECT_EQ(Decide(none, Role::kClient, V4("10.77.0.1", 80), &m),
            Decision::kAccelerate);
  EXPECT_EQ(m, "default");
  EXPECT_EQ(Decide(none, Role::kClient, V4("10.77.0.1", 53), &m),
            Decision::kTcp);
  EXPECT_EQ(Decide(RuleSet::Default(), Role::kServer, V6("::1", 80)),
            Decision::kAccelerate);
  RuleSet s = MustParse("remote any *");
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_EQ(
      s.Decide(Role::kClient, reinterpret_cast<sockaddr*>(&un), sizeof un, &m),
      Decision::kTcp);
  EXPECT_EQ(m, "not an IP address");
  EXPECT_EQ(s.Decide(Role::kClient, nullptr, 0), Decision::kTcp);
  Addr a = V4("127.0.0.1", 80);
  EXPECT_EQ(s.Decide(Role::kClient, a.sa(), a.len - 1), Decision::kTcp);
  EXPECT_EQ(s.Decide(Role::kClient, a.sa(), a.len), Decision::kRemote);
}

class RulesEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/usmc_rules_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* v :
         {"USMC_RULES", "USMC_RULES_FILE", "XDG_CONFIG_HOME", "HOME"}) {
      if (const char* old = getenv(v)) saved_.emplace_back(v, old);
      unsetenv(v);
    }
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
    for (const char* v :
         {"USMC_RULES", "USMC_RULES_FILE", "XDG_CONFIG_HOME", "HOME"}) {
      unsetenv(v);
    }
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
  }
  std::string Write(const std::string& rel, const std::string& text) {
    std::string path = dir_ + "/" + rel;
    std::string mkdir = "mkdir -p \"$(dirname '" + path + "')\"";
    EXPECT_EQ(system(mkdir.c_str()), 0);
    std::ofstream(path) << text;
    return path;
  }
  static std::vector<std::string> TextsOf(const RuleSet& s) {
    std::vector<std::string> out;
    for (const Rule& r : s.rules()) out.push_back(r.text);
    return out;
  }

  std::string dir_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

using Texts = std::vector<std::string>;

TEST_F(RulesEnv, NothingSetGivesDefault) {
  std::string err;
  auto s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(TextsOf(*s), (Texts{"default", "default"}));
  setenv("HOME", dir_.c_str(), 1);  // no ~/.config/usmc/rules there
  s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->rules().size(), 2u);
}

TEST_F(RulesEnv, InlineRulesWinAndDefaultsFollow) {
  setenv("USMC_RULES", "tcp any *:6379; accelerate any *:53", 1);
  setenv("USMC_RULES_FILE", Write("f", "tcp any *").c_str(), 1);
  std::string err;
  auto s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(TextsOf(*s), (Texts{"tcp any *:6379", "accelerate any *:53",
                                "default", "default"}));
  EXPECT_TRUE(Accel(*s, Role::kClient, V4("127.0.0.1", 53)));
  EXPECT_FALSE(Accel(*s, Role::kClient, V4("127.0.0.1", 6379)));
  EXPECT_TRUE(Accel(*s, Role::kClient, V4("127.0.0.1", 6380)));
  setenv("USMC_RULES", "", 1);  // set but empty: no user rules, file ignored
  s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(TextsOf(*s), (Texts{"default", "default"}));
}

TEST_F(RulesEnv, RulesFile) {
  setenv("USMC_RULES_FILE", Write("r", "# mine\ntcp client *:80\n").c_str(), 1);
  setenv("XDG_CONFIG_HOME", dir_.c_str(), 1);
  Write("usmc/rules", "tcp any *");
  std::string err;
  auto s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(TextsOf(*s), (Texts{"tcp client *:80", "default", "default"}));
}

TEST_F(RulesEnv, ConfigFileXdgThenHome) {
  setenv("HOME", dir_.c_str(), 1);
  Write(".config/usmc/rules", "tcp server *:1\n");
  std::string err;
  auto s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->rules()[0].text, "tcp server *:1");
  std::string xdg = dir_ + "/xdg";
  setenv("XDG_CONFIG_HOME", xdg.c_str(), 1);
  Write("xdg/usmc/rules", "tcp server *:2\n");
  s = RuleSet::FromEnvironment(&err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->rules()[0].text, "tcp server *:2");
}

TEST_F(RulesEnv, ErrorsNameTheSource) {
  setenv("USMC_RULES", "tcp any *:1\ntcp anyone *", 1);
  std::string err;
  EXPECT_FALSE(RuleSet::FromEnvironment(&err));
  EXPECT_EQ(err, "USMC_RULES: line 2: unknown role 'anyone': 'tcp anyone *'");
  unsetenv("USMC_RULES");
  std::string path = Write("bad", "\n\ntcp any *:99999\n");
  setenv("USMC_RULES_FILE", path.c_str(), 1);
  EXPECT_FALSE(RuleSet::FromEnvironment(&err));
  EXPECT_EQ(err,
            path +
                ": line 3: bad port '99999' (expected N, N-M or *, 0-65535): "
                "'tcp any *:99999'");
  std::string missing = dir_ + "/missing";
  setenv("USMC_RULES_FILE", missing.c_str(), 1);
  EXPECT_FALSE(RuleSet::FromEnvironment(&err));
  EXPECT_EQ(err, missing + ": cannot read rules: No such file or directory");
  EXPECT_FALSE(RuleSet::FromEnvironment(nullptr));
}

}  // namespace
}  // namespace usmc::util
