// The plugin paths of the controls (docs/ARCHITECTURE.md "Sources"): GOST's bypass group with a
// plugin member, a hop's asynchronous selection, a hosts plugin's mapping, and the decoding of a
// hosts plugin's answer. Fake plugins answer at once and record what they were asked.
#include <gtest/gtest.h>

#include "chain/hop.hpp"
#include "source/plugin.hpp"

using namespace gost;

namespace {

struct FakeBypass : BypassPlugin {
  std::function<bool(const std::string&)> answer;  // by addr
  mutable std::vector<std::vector<std::string>> asked;
  awaitable<bool> contains(std::string network, std::string addr, std::string client,
                           std::string host, std::string path) const override {
    asked.push_back({network, addr, client, host, path});
    co_return answer(addr);
  }
};

struct FakeHosts : HostsPlugin {
  std::vector<std::string> ips;
  mutable std::vector<std::vector<std::string>> asked;
  awaitable<std::vector<std::string>> lookup(std::string network, std::string host,
                                             std::string client) const override {
    asked.push_back({network, host, client});
    co_return ips;
  }
};

template <class T>
T run(awaitable<T> a) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  io.run();
  return *out;
}

std::shared_ptr<policy::Bypass> table(bool whitelist, std::vector<std::string> matchers) {
  config::Bypass c;
  c.name = "t";
  c.whitelist = whitelist;
  c.matchers = std::move(matchers);
  return std::make_shared<policy::Bypass>(c);
}

std::shared_ptr<policy::Bypass> plugin(std::shared_ptr<FakeBypass> p) {
  config::Bypass c;
  c.name = "p";
  auto b = std::make_shared<policy::Bypass>(c);
  b->set_plugin(std::move(p));
  return b;
}

}  // namespace

TEST(PluginChecks, BypassGroupTreatsAPluginAsABlacklistAndAsksEveryMember) {
  auto fake = std::make_shared<FakeBypass>();
  fake->answer = [](const std::string& addr) { return addr == "evil.test:80"; };
  const RouteTarget evil{"tcp", "evil.test:80", {}}, good{"tcp", "good.test:80", {}};
  // A plugin alone.
  policy::Bypasses list{plugin(fake)};
  EXPECT_TRUE(policy::has_plugin(list));
  EXPECT_TRUE(run(bypasses_async(list, evil, "u1", "", "")));
  EXPECT_FALSE(run(bypasses_async(list, good, "u1", "", "")));
  ASSERT_EQ(fake->asked.size(), 2u);
  EXPECT_EQ(fake->asked[0], (std::vector<std::string>{"tcp", "evil.test:80", "u1", "", ""}));
  // With a whitelist that covers good.test only: the whitelist bypasses evil.test (a miss), and
  // the plugin, a blacklist, bypasses evil.test too; good.test passes both.
  list = {table(true, {"good.test"}), plugin(fake)};
  EXPECT_TRUE(run(bypasses_async(list, evil, "", "", "")));
  EXPECT_FALSE(run(bypasses_async(list, good, "", "", "")));
  // A table blacklist that already bypasses: the plugin is asked all the same (GOST's group).
  fake->asked.clear();
  list = {table(false, {"good.test"}), plugin(fake)};
  EXPECT_TRUE(run(bypasses_async(list, good, "", "", "")));
  EXPECT_EQ(fake->asked.size(), 1u);
  // No plugin: the same answers as the synchronous group.
  list = {table(true, {"good.test"})};
  EXPECT_FALSE(policy::has_plugin(list));
  EXPECT_EQ(run(bypasses_async(list, evil, "", "", "")),
            policy::bypasses(list, "tcp", "evil.test:80"));
}

TEST(PluginChecks, HopSelectAsyncSkipsNodesAndIsCutByItsHop) {
  auto fake = std::make_shared<FakeBypass>();
  fake->answer = [](const std::string& addr) { return addr.starts_with("skip."); };
  std::vector<std::shared_ptr<Node>> nodes;
  for (int i = 0; i < 2; ++i) {
    auto n = std::make_shared<Node>();
    n->name = "n" + std::to_string(i);
    n->addr = "10.0.0." + std::to_string(i) + ":80";
    nodes.push_back(n);
  }
  nodes[0]->bypass = {plugin(fake)};
  SelectorOptions fifo;
  fifo.strategy = Strategy::fifo;
  Hop hop("h", nodes, fifo);
  EXPECT_TRUE(hop.needs_async());
  const RouteTarget skip{"tcp", "skip.test:80", {}}, keep{"tcp", "keep.test:80", {}};
  EXPECT_EQ(run(hop.select_async("", skip, "u1")), nodes[1]);
  EXPECT_EQ(run(hop.select_async("", keep, "u1")), nodes[0]);
  // The node's plugin is told the requested address as host (the mapped one as addr).
  const RouteTarget mapped{"tcp", "skip.x:80", "skip.test:80"};
  fake->asked.clear();
  run(hop.select_async("", mapped, "u1"));
  ASSERT_EQ(fake->asked.size(), 1u);
  EXPECT_EQ(fake->asked[0],
            (std::vector<std::string>{"tcp", "skip.x:80", "u1", "skip.test:80", ""}));
  // A hop whose own plugin bypasses the target selects nothing: the chain is cut.
  Hop cut("c", nodes, fifo, {plugin(fake)});
  EXPECT_EQ(run(cut.select_async("", skip, "")), nullptr);
  EXPECT_EQ(run(cut.select_async("", keep, "")), nodes[0]);
  // Without a plugin anywhere the hop stays synchronous.
  nodes[0]->bypass = {table(false, {"skip.test"})};
  EXPECT_FALSE(Hop("s", nodes, fifo).needs_async());
}

TEST(PluginChecks, HostsPluginMapsTheHostWithTheFirstIp) {
  FakeHosts fake;
  fake.ips = {"127.0.0.1", "10.0.0.1"};
  EXPECT_EQ(run(map_address_async(fake, "made-up.test:8080", "u1")),
            std::optional<std::string>("127.0.0.1:8080"));
  EXPECT_EQ(fake.asked[0], (std::vector<std::string>{"ip", "made-up.test", "u1"}));
  fake.ips = {"::1"};
  EXPECT_EQ(run(map_address_async(fake, "[::2]:53", "")), std::optional<std::string>("[::1]:53"));
  EXPECT_EQ(fake.asked[1][1], "::2");
  fake.ips = {};
  EXPECT_EQ(run(map_address_async(fake, "other.test:80", "")), std::nullopt);
}

TEST(SourcePlugin, LookupAnswerAsGoDecodesIt) {
  using source::detail::decode_lookup_answer;
  using V = std::vector<std::string>;
  EXPECT_EQ(decode_lookup_answer(R"({"ips":["1.2.3.4","::1"],"ok":true})"), V({"1.2.3.4", "::1"}));
  // GOST's resolver uses the IPs whatever "ok" says.
  EXPECT_EQ(decode_lookup_answer(R"({"ips":["1.2.3.4"],"ok":false})"), V({"1.2.3.4"}));
  // Unparsable IPs are skipped (net.ParseIP: no zone); IPv4-mapped prints as IPv4.
  EXPECT_EQ(decode_lookup_answer(R"({"ips":["x","fe80::1%eth0","::ffff:10.0.0.1"]})"),
            V({"10.0.0.1"}));
  EXPECT_EQ(decode_lookup_answer(R"({"ok":true})"), V{});
  EXPECT_EQ(decode_lookup_answer(R"({"ips":null})"), V{});
  EXPECT_FALSE(decode_lookup_answer(R"({"ips":"1.2.3.4"})"));  // not a list: the decode fails
  EXPECT_FALSE(decode_lookup_answer(R"({"ips":[1]})"));
  EXPECT_FALSE(decode_lookup_answer(R"({"ok":"yes"})"));
  EXPECT_FALSE(decode_lookup_answer("garbage"));
}

TEST(PluginChecks, ForwarderSkipsNodesWhoseBypassCoversTheirOwnAddress) {
  // docs/PROTOCOLS.md "cli: forwarding": each forwarder node is its own target.
  std::vector<std::shared_ptr<Node>> nodes;
  for (int i = 0; i < 2; ++i) {
    auto n = std::make_shared<Node>();
    n->name = "n" + std::to_string(i);
    n->addr = "127.0.0." + std::to_string(i + 1) + ":80";
    nodes.push_back(n);
  }
  SelectorOptions round;
  nodes[0]->bypass = {table(false, {"127.0.0.1"})};
  Hop tables("forwarder", nodes, round);
  EXPECT_FALSE(tables.needs_async());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(tables.select_target("", "tcp"), nodes[1]);
  // A whitelist covering neither node bypasses both: nothing is selected.
  nodes[0]->bypass = {table(true, {"10.0.0.0/8"})};
  nodes[1]->bypass = {table(true, {"10.0.0.0/8"})};
  EXPECT_EQ(Hop("forwarder", nodes, round).select_target("", "tcp"), nullptr);
  // A plugin hears each node's own address (as addr and host) and the client.
  auto fake = std::make_shared<FakeBypass>();
  fake->answer = [](const std::string& addr) { return addr == "127.0.0.2:80"; };
  nodes[0]->bypass = {plugin(fake)};
  nodes[1]->bypass = {plugin(fake)};
  Hop plugins("forwarder", nodes, round);
  EXPECT_TRUE(plugins.needs_async());
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(run(plugins.select_target_async("", "udp", "u1")), nodes[0]);
  ASSERT_GE(fake->asked.size(), 2u);
  EXPECT_EQ(fake->asked[0],
            (std::vector<std::string>{"udp", "127.0.0.1:80", "u1", "127.0.0.1:80", ""}));
  EXPECT_EQ(fake->asked[1],
            (std::vector<std::string>{"udp", "127.0.0.2:80", "u1", "127.0.0.2:80", ""}));
}

TEST(SourcePlugin, TrafficAnswerAsGoDecodesIt) {
  using source::TrafficAnswer;
  using source::detail::decode_traffic_answer;
  EXPECT_EQ(decode_traffic_answer(R"({"in":262144,"out":1024})"), (TrafficAnswer{262144, 1024}));
  EXPECT_EQ(decode_traffic_answer(R"({"in":5})"), (TrafficAnswer{5, 0}));  // missing: zero
  EXPECT_EQ(decode_traffic_answer(R"({"in":-1,"out":null})"), (TrafficAnswer{-1, 0}));
  EXPECT_EQ(decode_traffic_answer(R"({"in":9223372036854775807})"), (TrafficAnswer{INT64_MAX, 0}));
  // Go's decode into int64 fails on these: no answer.
  EXPECT_FALSE(decode_traffic_answer(R"({"in":1.5})"));
  EXPECT_FALSE(decode_traffic_answer(R"({"in":1e3})"));
  EXPECT_FALSE(decode_traffic_answer(R"({"in":"1MB"})"));
  EXPECT_FALSE(decode_traffic_answer(R"({"in":9223372036854775808})"));
  EXPECT_FALSE(decode_traffic_answer("[]"));
  EXPECT_FALSE(decode_traffic_answer("garbage"));
}
