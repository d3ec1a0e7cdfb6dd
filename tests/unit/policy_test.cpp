// The policy matchers (src/policy/): admission, bypass, hosts — GOST's own examples
// (go-gost/x bypass/bypass_test.go, internal/matcher, hosts) and the edges around them.
#include <gtest/gtest.h>

#include "policy/admission.hpp"
#include "policy/bypass.hpp"
#include "policy/hosts.hpp"

namespace gost::policy {
namespace {

std::shared_ptr<const BypassRules> rules(std::vector<std::string> items, bool whitelist = false) {
  return compile_bypass(whitelist, "", items, nullptr);
}

bool bypassed(const std::vector<std::string>& items, std::string_view addr,
              bool whitelist = false) {
  return rules(items, whitelist)->bypasses("tcp", addr);
}

TEST(PolicyIp, ParsesAndPrints) {
  EXPECT_EQ(parse_ip("1.2.3.4")->to_string(), "1.2.3.4");
  EXPECT_EQ(parse_ip("::1")->to_string(), "::1");
  EXPECT_EQ(parse_ip("[0:0::1]")->to_string(), "::1");
  // A dual-stack socket's view of an IPv4 peer is that IPv4 address.
  EXPECT_EQ(parse_ip("::ffff:127.0.0.2"), parse_ip("127.0.0.2"));
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "example.com", "1.2.3.4:80", "::g"})
    EXPECT_FALSE(parse_ip(bad)) << bad;
  auto net = parse_cidr("10.1.2.3/8");
  ASSERT_TRUE(net);
  EXPECT_EQ(net->first.to_string(), "10.0.0.0");
  EXPECT_EQ(net->second.to_string(), "10.255.255.255");
  EXPECT_EQ(parse_cidr("0.0.0.0/0")->second.to_string(), "255.255.255.255");
  EXPECT_EQ(parse_cidr("fd00::/8")->second.to_string(), "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(parse_cidr("::/0")->first.to_string(), "::");
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "/8", "a/8", "::/129"})
    EXPECT_FALSE(parse_cidr(bad)) << bad;
  EXPECT_FALSE(parse_ip_range("1.1.1.1-::1"));
  EXPECT_FALSE(parse_ip_range("1.1.1.1-1.1.1.2-1.1.1.3"));
  EXPECT_EQ(parse_ip_range(" 1.1.1.1 - 1.1.1.9 ")->second.to_string(), "1.1.1.9");
}

TEST(PolicyIp, SplitHostPortLikeGo) {
  auto hp = split_host_port_view("example.com:443");
  EXPECT_EQ(hp.host, "example.com");
  EXPECT_EQ(hp.port, "443");
  hp = split_host_port_view("[::1]:80");
  EXPECT_EQ(hp.host, "::1");
  EXPECT_TRUE(hp.has_port);
  EXPECT_FALSE(split_host_port_view("::1").has_port);
  EXPECT_FALSE(split_host_port_view("example.com").has_port);
  EXPECT_FALSE(split_host_port_view("[::1]").has_port);
}

TEST(PolicyIp, SetOfOverlappingRanges) {
  IpSet set;
  set.add(*parse_ip("10.0.0.0"), *parse_ip("10.255.255.255"));
  set.add(*parse_ip("10.1.0.0"), *parse_ip("10.1.0.255"));  // inside the first
  set.add(*parse_ip("192.168.1.1"), *parse_ip("192.168.1.1"));
  set.add(*parse_ip("9.0.0.0"), *parse_ip("1.0.0.0"));  // empty: ignored
  set.add(*parse_ip("fd00::"), *parse_ip("fdff::"));
  set.finish();
  EXPECT_TRUE(set.contains(*parse_ip("10.200.0.1")));  // after the nested range: max_hi matters
  EXPECT_TRUE(set.contains(*parse_ip("10.1.0.7")));
  EXPECT_TRUE(set.contains(*parse_ip("192.168.1.1")));
  EXPECT_FALSE(set.contains(*parse_ip("192.168.1.2")));
  EXPECT_FALSE(set.contains(*parse_ip("11.0.0.0")));
  EXPECT_FALSE(set.contains(*parse_ip("5.0.0.0")));
  EXPECT_TRUE(set.contains(*parse_ip("fd12::1")));
  EXPECT_FALSE(set.contains(*parse_ip("::1")));
  EXPECT_TRUE(set.contains(*parse_ip("::ffff:10.0.0.1")));  // mapped = IPv4
}

// go-gost/x bypass/bypass_test.go
TEST(PolicyBypass, GostExamples) {
  EXPECT_FALSE(bypassed({}, "192.168.1.1"));
  EXPECT_FALSE(bypassed({"192.168.1.1"}, ""));
  EXPECT_TRUE(bypassed({"192.168.1.1"}, "192.168.1.1"));
  EXPECT_FALSE(bypassed({"192.168.1.1"}, "10.0.0.1"));
  EXPECT_FALSE(bypassed({"192.168.1.1"}, "192.168.1.1", true));
  EXPECT_TRUE(bypassed({"192.168.1.1"}, "10.0.0.1", true));
  EXPECT_TRUE(bypassed({"192.168.1.1"}, "192.168.1.1:8080"));
  EXPECT_TRUE(bypassed({"10.0.0.0/8"}, "10.0.0.1"));
  EXPECT_FALSE(bypassed({"10.0.0.0/8"}, "192.168.1.1"));
  EXPECT_TRUE(bypassed({"*.example.com"}, "foo.example.com"));
  EXPECT_FALSE(bypassed({"*.example.com"}, "foo.other.com"));
  EXPECT_TRUE(bypassed({"192.168.1.1-192.168.1.10"}, "192.168.1.5"));
  EXPECT_FALSE(bypassed({"192.168.1.1-192.168.1.10"}, "192.168.1.100"));
  EXPECT_FALSE(bypassed({"192.168.1.1"}, "invalid"));
  const std::vector<std::string> composite = {"192.168.1.1", "10.0.0.0/8", "*.example.com",
                                              "172.16.0.1-172.16.0.255"};
  for (const char* hit : {"192.168.1.1", "10.0.0.1", "foo.example.com", "172.16.0.50"})
    EXPECT_TRUE(bypassed(composite, hit)) << hit;
  EXPECT_FALSE(bypassed(composite, "8.8.8.8"));
  EXPECT_TRUE(bypassed({"fd00::1"}, "fd00::1"));
  EXPECT_FALSE(bypassed({"fd00::1"}, "fd00::2"));
  EXPECT_TRUE(bypassed({"::1"}, "[::1]:8080"));
  EXPECT_TRUE(bypassed({"*.example.com:8080"}, "foo.example.com:8080"));
  EXPECT_FALSE(bypassed({"*.example.com:8080"}, "foo.example.com:9090"));
}

// go-gost/x internal/matcher AddrMatcher: names, ".domain", ports and port ranges.
TEST(PolicyBypass, HostsDomainsAndPorts) {
  EXPECT_TRUE(bypassed({"example.com"}, "example.com:443"));
  EXPECT_TRUE(bypassed({"example.com"}, "EXAMPLE.Com:443"));  // case-insensitive
  EXPECT_TRUE(bypassed({"Example.COM"}, "example.com"));
  EXPECT_FALSE(bypassed({"example.com"}, "www.example.com:443"));  // exactly that name
  EXPECT_FALSE(bypassed({"example.com"}, "notexample.com:443"));
  EXPECT_TRUE(bypassed({".example.com"}, "example.com:443"));
  EXPECT_TRUE(bypassed({".example.com"}, "a.b.example.com:443"));
  EXPECT_FALSE(bypassed({".example.com"}, "badexample.com:443"));
  EXPECT_FALSE(bypassed({".example.com"}, "example.com.evil:443"));
  EXPECT_TRUE(bypassed({"example.com:443"}, "example.com:443"));
  EXPECT_FALSE(bypassed({"example.com:443"}, "example.com:80"));
  EXPECT_FALSE(bypassed({"example.com:443"}, "example.com"));  // no port = port 0
  EXPECT_TRUE(bypassed({".example.com:8000-8100"}, "x.example.com:8080"));
  EXPECT_FALSE(bypassed({".example.com:8000-8100"}, "x.example.com:8101"));
  EXPECT_TRUE(bypassed({"example.com:abc"}, "example.com:1"));  // not a port: any port
  EXPECT_TRUE(bypassed({"127.0.0.1:80"}, "127.0.0.1:80"));
  EXPECT_FALSE(bypassed({"127.0.0.1:80"}, "127.0.0.1:81"));
  EXPECT_TRUE(bypassed({"[::1]:80"}, "[0::1]:80"));  // IPs compared as addresses
  EXPECT_TRUE(bypassed({"localhost"}, "localhost:22"));
}

TEST(PolicyBypass, Globs) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*.example.com", "a.b.example.com"));  // '*' crosses dots
  EXPECT_FALSE(glob_match("*.example.com", "example.com"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("a?c",
                         "a\xc3\xa9"
                         "c"));  // '?' is one character
  EXPECT_TRUE(glob_match("*x*y*", "__x__y__"));
  EXPECT_FALSE(glob_match("*x*y*", "__y__x__"));
  EXPECT_TRUE(bypassed({"*.EXAMPLE.com"}, "Www.Example.COM:443"));
  EXPECT_TRUE(bypassed({"10.0.*"}, "10.0.3.4:80"));
  EXPECT_TRUE(bypassed({"*.example.com:80-90"}, "a.example.com:85"));
  EXPECT_FALSE(bypassed({"*.example.com:80-90"}, "a.example.com:91"));
  std::vector<std::string> rejected;
  compile_bypass(false, "", {"*.[ab].com", "{a,b}*.com", "ok*.com"}, &rejected);
  EXPECT_EQ(rejected, (std::vector<std::string>{"*.[ab].com", "{a,b}*.com"}));
}

TEST(PolicyBypass, NetworkAndWhitelistAndGroups) {
  auto udp_only = compile_bypass(false, "udp", {"10.0.0.1"}, nullptr);
  EXPECT_TRUE(udp_only->bypasses("udp", "10.0.0.1:53"));
  EXPECT_FALSE(udp_only->bypasses("tcp", "10.0.0.1:53"));
  config::Bypass black{.name = "black", .matchers = {"blocked.com"}};
  config::Bypass white{.name = "white", .whitelist = true, .matchers = {".allowed.com"}};
  config::Bypass reverse{.name = "reverse", .reverse = true, .matchers = {"x.allowed.com"}};
  auto b = std::make_shared<Bypass>(black), w = std::make_shared<Bypass>(white),
       r = std::make_shared<Bypass>(reverse);
  EXPECT_TRUE(bypasses({w}, "tcp", "other.com:80"));
  EXPECT_FALSE(bypasses({w}, "tcp", "a.allowed.com:80"));
  // Whitelists must all bypass; else any blacklist decides.
  EXPECT_FALSE(bypasses({w, r}, "tcp", "y.allowed.com:80"));
  EXPECT_TRUE(bypasses({w, r}, "tcp", "other.com:80"));
  EXPECT_TRUE(bypasses({w, b}, "tcp", "blocked.com:80"));
  EXPECT_FALSE(bypasses({b}, "tcp", "allowed.com:80"));
  EXPECT_FALSE(bypasses({}, "tcp", "blocked.com:80"));
  EXPECT_THROW(Bypass(config::Bypass{.name = "x", .matchers = {"*[a]"}}), config::ConfigError);
}

TEST(PolicyBypass, UpdateSwapsTheSnapshot) {
  Bypass b(config::Bypass{.name = "b", .matchers = {"a.com"}});
  auto before = b.current();
  EXPECT_TRUE(before->bypasses("tcp", "a.com:1"));
  EXPECT_FALSE(before->bypasses("tcp", "b.com:1"));
  EXPECT_TRUE(b.update({"b.com", "*[x]"}) == std::vector<std::string>{"*[x]"});
  EXPECT_TRUE(b.current()->bypasses("tcp", "b.com:1"));
  EXPECT_TRUE(b.current()->bypasses("tcp", "a.com:1"));  // inline matchers stay
  EXPECT_FALSE(before->bypasses("tcp", "b.com:1"));      // a held snapshot never changes
  b.update({});
  EXPECT_FALSE(b.current()->bypasses("tcp", "b.com:1"));
}

TEST(PolicyBypass, ThousandEntries) {
  std::vector<std::string> items;
  for (int i = 0; i < 250; ++i) {
    items.push_back("host" + std::to_string(i) + ".example.com");
    items.push_back(".zone" + std::to_string(i) + ".net");
    items.push_back("10." + std::to_string(i) + ".0.0/16");
    items.push_back("*.glob" + std::to_string(i) + ".org");
  }
  auto r = rules(items);
  EXPECT_TRUE(r->bypasses("tcp", "host249.example.com:443"));
  EXPECT_TRUE(r->bypasses("tcp", "a.zone7.net:443"));
  EXPECT_TRUE(r->bypasses("tcp", "10.200.3.4:80"));
  EXPECT_TRUE(r->bypasses("tcp", "x.glob99.org:80"));
  EXPECT_FALSE(r->bypasses("tcp", "127.0.0.1:80"));
  EXPECT_FALSE(r->bypasses("tcp", "host250.example.com:443"));
}

// go-gost/x admission: IPs and CIDRs of the client, port ignored.
TEST(PolicyAdmission, BlacklistWhitelistAndGroups) {
  auto black = std::make_shared<Admission>(
      config::Admission{.name = "a", .matchers = {"127.0.0.2", "10.0.0.0/8", "fd00::/8"}});
  EXPECT_TRUE(admits({black}, "127.0.0.1:5000"));
  EXPECT_FALSE(admits({black}, "127.0.0.2:5000"));
  EXPECT_FALSE(admits({black}, "[::ffff:127.0.0.2]:5000"));  // a dual-stack listener's view
  EXPECT_FALSE(admits({black}, "10.9.8.7:1"));
  EXPECT_FALSE(admits({black}, "[fd00::5]:1"));
  EXPECT_TRUE(admits({black}, "[::1]:1"));
  auto white = std::make_shared<Admission>(
      config::Admission{.name = "w", .whitelist = true, .matchers = {"127.0.0.1"}});
  auto reverse = std::make_shared<Admission>(
      config::Admission{.name = "r", .reverse = true, .matchers = {"127.0.0.0/8"}});
  EXPECT_TRUE(admits({white}, "127.0.0.1:1"));
  EXPECT_FALSE(admits({white}, "127.0.0.2:1"));
  EXPECT_FALSE(admits({white}, "/run/gost.sock"));  // not an IP: a whitelist refuses it
  EXPECT_TRUE(admits({black}, "/run/gost.sock"));
  EXPECT_TRUE(admits({reverse}, "127.0.0.2:1"));
  EXPECT_FALSE(admits({white, reverse}, "127.0.0.2:1"));  // every admission must admit
  EXPECT_TRUE(admits({}, "127.0.0.2:1"));
  EXPECT_THROW(Admission(config::Admission{.name = "h", .matchers = {"example.com"}}),
               config::ConfigError);
  Admission a(config::Admission{.name = "u", .matchers = {"127.0.0.2"}});
  EXPECT_EQ(a.update({"127.0.0.3", "nope"}), std::vector<std::string>{"nope"});
  EXPECT_FALSE(a.current()->admits(*parse_ip("127.0.0.3")));
  EXPECT_FALSE(a.current()->admits(*parse_ip("127.0.0.2")));
}

// go-gost/x hosts: exact name, ".name", parent domains; the first IP; ip4/ip6 filters.
TEST(PolicyHosts, LookupAndLines) {
  Hosts h(config::Hosts{
      .name = "h",
      .mappings = {{.ip = "127.0.0.1", .hostname = "example.com", .aliases = {"www.example.com"}},
                   {.ip = "::1", .hostname = "example.com"},
                   {.ip = "10.0.0.1", .hostname = ".corp.local"}}});
  auto r = h.current();
  EXPECT_EQ(r->lookup("example.com").size(), 2u);
  EXPECT_EQ(r->lookup("example.com", "ip6").front().to_string(), "::1");
  EXPECT_EQ(r->lookup("www.example.com").front().to_string(), "127.0.0.1");
  EXPECT_TRUE(r->lookup("a.example.com").empty());
  EXPECT_TRUE(r->lookup("EXAMPLE.COM").empty());  // as written, like GOST
  EXPECT_EQ(r->lookup("corp.local").front().to_string(), "10.0.0.1");
  EXPECT_EQ(r->lookup("a.b.corp.local").front().to_string(), "10.0.0.1");
  EXPECT_EQ(r->map_address("example.com:443"), "127.0.0.1:443");
  EXPECT_EQ(r->map_address("x.corp.local:22"), "10.0.0.1:22");
  EXPECT_FALSE(r->map_address("other.com:443"));
  EXPECT_FALSE(r->map_address("example.com"));
  Hosts v6(config::Hosts{.name = "v6", .mappings = {{.ip = "::1", .hostname = "six"}}});
  EXPECT_EQ(v6.current()->map_address("six:80"), "[::1]:80");

  auto line = parse_hosts_line("127.0.0.1\tlocalhost  alias1 # comment");
  ASSERT_EQ(line.size(), 2u);
  EXPECT_EQ(line[1], (config::HostMapping{.ip = "127.0.0.1", .hostname = "alias1"}));
  EXPECT_TRUE(parse_hosts_line("# 1.2.3.4 x").empty());
  EXPECT_TRUE(parse_hosts_line("1.2.3.4").empty());
  EXPECT_TRUE(parse_hosts_line("nope x").empty());
  EXPECT_TRUE(parse_hosts_line("").empty());

  EXPECT_EQ(h.update({{.ip = "1.2.3.4", .hostname = "new"}, {.ip = "bad", .hostname = "x"}}).size(),
            1u);
  EXPECT_EQ(h.current()->map_address("new:1"), "1.2.3.4:1");
  EXPECT_EQ(h.current()->map_address("example.com:1"), "127.0.0.1:1");
  EXPECT_FALSE(r->map_address("new:1"));  // the old snapshot is unchanged
  EXPECT_THROW(Hosts(config::Hosts{.name = "bad", .mappings = {{.ip = "x", .hostname = "y"}}}),
               config::ConfigError);
}

}  // namespace
}  // namespace gost::policy
