// Hop node selection and failure marking (docs/PROTOCOLS.md "core: selection").
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "chain/hop.hpp"

using namespace gost;

namespace {

std::vector<std::shared_ptr<Node>> nodes(int n) {
  std::vector<std::shared_ptr<Node>> out;
  for (int i = 0; i < n; ++i) {
    auto node = std::make_shared<Node>();
    node->name = "node-" + std::to_string(i);
    node->addr = "10.0.0." + std::to_string(i) + ":80";
    out.push_back(node);
  }
  return out;
}

SelectorOptions with(Strategy s, int max_fails = 1,
                     std::chrono::nanoseconds fail_timeout = std::chrono::seconds(10)) {
  SelectorOptions o;
  o.strategy = s;
  o.max_fails = max_fails;
  o.fail_timeout = fail_timeout;
  return o;
}

}  // namespace

TEST(Selector, StrategyNames) {
  EXPECT_EQ(parse_strategy("round"), Strategy::round);
  EXPECT_EQ(parse_strategy("rr"), Strategy::round);
  EXPECT_EQ(parse_strategy("rand"), Strategy::random);
  EXPECT_EQ(parse_strategy("random"), Strategy::random);
  EXPECT_EQ(parse_strategy("fifo"), Strategy::fifo);
  EXPECT_EQ(parse_strategy("ha"), Strategy::fifo);
  EXPECT_EQ(parse_strategy("hash"), Strategy::hash);
  EXPECT_EQ(parse_strategy("whatever"), Strategy::round);  // GOST: unknown → round robin
  EXPECT_THROW(selector_options(config::Selector{"parallel", 1, {}}, "x"), config::ConfigError);
  auto d = selector_options(config::Selector{"fifo", 0, {}}, "x");
  EXPECT_EQ(d.max_fails, 1);
  EXPECT_EQ(d.fail_timeout, std::chrono::seconds(10));
}

TEST(Selector, RoundRobinStartsAtFirstAndCycles) {
  auto ns = nodes(3);
  Hop hop("h", ns, with(Strategy::round));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(hop.select(), ns[i % 3]);
}

TEST(Selector, FifoPrefersFirstLiveNode) {
  auto ns = nodes(3);
  Hop hop("h", ns, with(Strategy::fifo));
  EXPECT_EQ(hop.select(), ns[0]);
  ns[0]->marker.mark();
  EXPECT_EQ(hop.select(), ns[1]);
  ns[1]->marker.mark();
  EXPECT_EQ(hop.select(), ns[2]);
  ns[0]->marker.reset();
  EXPECT_EQ(hop.select(), ns[0]);
}

TEST(Selector, EveryNodeFailedFallsBackToFirst) {
  auto ns = nodes(2);
  Hop hop("h", ns, with(Strategy::round));
  ns[0]->marker.mark();
  ns[1]->marker.mark();
  EXPECT_EQ(hop.select(), ns[0]);
}

TEST(Selector, MaxFailsAndFailTimeout) {
  auto ns = nodes(2);
  Hop hop("h", ns, with(Strategy::fifo, 2, std::chrono::seconds(1)));
  ns[0]->marker.mark();
  EXPECT_FALSE(hop.is_failed(*ns[0]));  // 1 < maxFails
  ns[0]->marker.mark();
  EXPECT_TRUE(hop.is_failed(*ns[0]));
  EXPECT_EQ(hop.select(), ns[1]);
  // Per-node overrides win over the hop's selector.
  ns[0]->max_fails = 5;
  EXPECT_FALSE(hop.is_failed(*ns[0]));
  ns[0]->max_fails = 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // 1-s resolution, as GOST
  EXPECT_FALSE(hop.is_failed(*ns[0]));
  EXPECT_EQ(hop.select(), ns[0]);
}

TEST(Selector, BackupNodesOnlyWhenNoPrimaryIsLive) {
  auto ns = nodes(3);
  ns[0]->backup = true;
  Hop hop("h", ns, with(Strategy::round));
  for (int i = 0; i < 10; ++i) EXPECT_NE(hop.select(), ns[0]);
  ns[1]->marker.mark();
  ns[2]->marker.mark();
  EXPECT_EQ(hop.select(), ns[0]);
}

TEST(Selector, HashIsStablePerKeyAndSpreads) {
  auto ns = nodes(4);
  Hop hop("h", ns, with(Strategy::hash));
  std::map<Node*, int> seen;
  for (int i = 0; i < 64; ++i) {
    std::string key = "192.0.2." + std::to_string(i);
    auto a = hop.select(key);
    EXPECT_EQ(hop.select(key), a);
    seen[a.get()]++;
  }
  EXPECT_GE(seen.size(), 3u);
}

TEST(Selector, RandomHonoursWeights) {
  auto ns = nodes(2);
  ns[0]->weight = 9;
  ns[1]->weight = 1;
  Hop hop("h", ns, with(Strategy::random));
  int first = 0;
  for (int i = 0; i < 2000; ++i) first += hop.select() == ns[0];
  EXPECT_GT(first, 1600);
  EXPECT_LT(first, 1950);
}

TEST(Selector, EmptyHopSelectsNothing) {
  Hop hop("h", {}, with(Strategy::round));
  EXPECT_EQ(hop.select(), nullptr);
}
