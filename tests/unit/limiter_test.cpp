// policy/limiter: GOST's limit lines, units and token buckets, with a fake clock.
#include "policy/limiter.hpp"

#include <gtest/gtest.h>

using namespace gost::policy;
using namespace std::chrono_literals;

namespace {

const Clock::time_point t0 = Clock::time_point(1000s);

std::vector<double> rates(const gost::ThrottlePtr& t) {
  std::vector<double> out;
  if (!t) return out;
  auto* b = dynamic_cast<BucketThrottle*>(t.get());
  EXPECT_NE(b, nullptr);
  for (const auto& x : b->buckets()) out.push_back(x->rate());
  std::sort(out.begin(), out.end());
  return out;
}

constexpr double KiB = 1024, MiB = 1024 * 1024;

}  // namespace

TEST(LimiterUnits, Base2BytesLikeGost) {
  EXPECT_EQ(parse_base2_bytes("1MB"), 1048576);
  EXPECT_EQ(parse_base2_bytes("1MiB"), 1048576);
  EXPECT_EQ(parse_base2_bytes("512KB"), 524288);
  EXPECT_EQ(parse_base2_bytes("512KiB"), 524288);
  EXPECT_EQ(parse_base2_bytes("100B"), 100);
  EXPECT_EQ(parse_base2_bytes("1GB"), 1073741824);
  EXPECT_EQ(parse_base2_bytes("1.5MB"), 1572864);
  EXPECT_EQ(parse_base2_bytes(".5KB"), 512);
  EXPECT_EQ(parse_base2_bytes("1MB512KB"), 1572864);  // a sequence, as time.ParseDuration
  EXPECT_EQ(parse_base2_bytes("0"), 0);
  EXPECT_EQ(parse_base2_bytes("-1KB"), -1024);
  // No unit, wrong case, mixed unit families, junk: not a size (GOST then sets no limit).
  for (const char* bad : {"100", "1mb", "1kb", "1Mb", "1MiB512KB", "MB", "", "1 MB", "1.MBx", "."})
    EXPECT_EQ(parse_base2_bytes(bad), std::nullopt) << bad;
}

TEST(LimiterLines, SplitsFieldsAndDropsComments) {
  auto l = split_limit_line("  $ \t100MB   200MB  # service");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->key, "$");
  EXPECT_EQ(l->values, (std::vector<std::string>{"100MB", "200MB"}));
  EXPECT_FALSE(split_limit_line("$"));
  EXPECT_FALSE(split_limit_line("# $ 1MB"));
  EXPECT_FALSE(split_limit_line(""));
}

TEST(LimiterLines, IpNetworks) {
  auto n = IpNetwork::parse_cidr("192.168.0.0/16");
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->contains("192.168.3.4"));
  EXPECT_TRUE(n->contains("::ffff:192.168.3.4"));
  EXPECT_FALSE(n->contains("192.169.0.1"));
  EXPECT_FALSE(n->contains("::1"));
  EXPECT_FALSE(n->contains("not-an-ip"));
  auto host = IpNetwork::parse_cidr("10.1.2.3/8");  // masked like Go's ParseCIDR
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains("10.200.0.1"));
  auto v6 = IpNetwork::parse_cidr("fd00::/8");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains("fd12::1"));
  EXPECT_FALSE(v6->contains("10.0.0.1"));
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "x/8", "::/129"})
    EXPECT_FALSE(IpNetwork::parse_cidr(bad)) << bad;
  EXPECT_EQ(canonical_ip("::ffff:1.2.3.4"), "1.2.3.4");
  EXPECT_EQ(canonical_ip("::1"), "::1");
  EXPECT_EQ(canonical_ip("1.2.3"), std::nullopt);
}

TEST(TokenBucket, StartsFullRefillsAtItsRateAndCarriesDebt) {
  TokenBucket b(1000, 1000);  // 1000 tokens/s, burst 1000
  EXPECT_EQ(b.available(t0), 1000);
  EXPECT_TRUE(b.full(t0));
  b.charge(1000, t0);
  EXPECT_EQ(b.available(t0), 0);
  EXPECT_EQ(b.available(t0 + 250ms), 250);
  EXPECT_EQ(b.until(500, t0), 500ms);
  EXPECT_EQ(b.available(t0 + 5s), 1000);  // never more than the burst
  b.charge(1500, t0 + 5s);                // 500 in debt
  EXPECT_EQ(b.available(t0 + 5s), 0);
  EXPECT_EQ(b.until(1, t0 + 5s), 501ms);
  EXPECT_EQ(b.available(t0 + 5s + 600ms), 100);
}

TEST(TokenBucket, TryTakeIsAllowN) {
  TokenBucket b(2, 3);  // GOST's request limiter for "$ 2": burst int(2)+1
  EXPECT_TRUE(b.try_take(1, t0));
  EXPECT_TRUE(b.try_take(1, t0));
  EXPECT_TRUE(b.try_take(1, t0));
  EXPECT_FALSE(b.try_take(1, t0));
  EXPECT_FALSE(b.try_take(1, t0 + 499ms));
  EXPECT_TRUE(b.try_take(1, t0 + 500ms));
  EXPECT_FALSE(b.try_take(1, t0 + 500ms));
}

TEST(TokenBucket, HostileRatesStayFinite) {
  RateLimiter tiny({"$ 1e-300"});  // one request, then (almost) never again
  EXPECT_TRUE(tiny.allow("10.0.0.1", t0));
  EXPECT_FALSE(tiny.allow("10.0.0.1", t0 + 1000s));
  RateLimiter huge({"$ 1e300"});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(huge.allow("10.0.0.1", t0));
  TrafficLimiter big({"$ 7EB 6EB", "$$ 8EB"});  // 8 EiB = 2^63: overflows int64, ignored
  EXPECT_EQ(big.ignored(), (std::vector<std::string>{"$$ 8EB"}));
  auto t = big.for_connection("10.0.0.1", t0);
  ASSERT_TRUE(t.in);
  auto g = t.in->check(64 * 1024, t0);
  EXPECT_EQ(g.bytes, 64u * 1024);
  t.in->charge(g.bytes, t0);
  EXPECT_EQ(t.in->check(64 * 1024, t0).bytes, 64u * 1024);
  TrafficLimiter one({"$ 1B"});  // one byte a second: a quantum of one byte
  auto o = one.for_connection("10.0.0.1", t0);
  EXPECT_EQ(o.in->check(100, t0).bytes, 1u);
  o.in->charge(1, t0);
  auto w = o.in->check(100, t0);
  EXPECT_EQ(w.bytes, 0u);
  EXPECT_EQ(w.wait, 1s);
}

TEST(BucketThrottle, GrantsWhatAllBucketsAllowAndWaitsForAQuantum) {
  auto a = std::make_shared<TokenBucket>(1 * MiB, 1 * MiB);
  auto b = std::make_shared<TokenBucket>(64 * KiB, 64 * KiB);
  BucketThrottle t({a, b});
  auto g = t.check(1 << 20, t0);
  EXPECT_EQ(g.bytes, 64 * 1024u);  // the smaller bucket's burst
  t.charge(g.bytes, t0);
  g = t.check(1 << 20, t0);
  EXPECT_EQ(g.bytes, 0u);
  EXPECT_EQ(g.wait, 250ms);    // 16 KiB at 64 KiB/s
  g = t.check(100, t0 + 1ms);  // a small want needs only itself: 65 bytes are not enough
  EXPECT_EQ(g.bytes, 0u);
  EXPECT_EQ(g.wait, std::chrono::nanoseconds(1525879) - 1ms);  // 100 B at 64 KiB/s, less 1 ms
  g = t.check(100, t0 + 2ms);
  EXPECT_EQ(g.bytes, 100u);
}

// A reader that always asks for 64 KiB, sleeping as told: the steady rate is the bucket's.
TEST(BucketThrottle, SteadyRateMatchesTheLimit) {
  for (double rate : {100.0, 10 * KiB, 512 * KiB, 1 * MiB, 50 * MiB}) {
    BucketThrottle t({std::make_shared<TokenBucket>(rate, rate)});
    auto now = t0;
    double moved = 0;
    // Drain the initial burst, then measure 20 s.
    while (now < t0 + 1s) {
      auto g = t.check(64 * 1024, now);
      if (g.bytes) {
        t.charge(g.bytes, now);
      } else {
        now += std::max<Clock::duration>(g.wait, 1ms);
      }
    }
    auto start = now;
    while (now < start + 20s) {
      auto g = t.check(64 * 1024, now);
      if (g.bytes) {
        t.charge(g.bytes, now);
        moved += static_cast<double>(g.bytes);
      } else {
        now += std::max<Clock::duration>(g.wait, 1ms);
      }
    }
    double measured = moved / std::chrono::duration<double>(now - start).count();
    EXPECT_NEAR(measured / rate, 1.0, 0.02) << rate;
  }
}

// GOST's example (docs: "Traffic limiter"): a service limit, a per-connection limit, one IP and
// one network.
TEST(TrafficLimiter, GostExampleScopes) {
  TrafficLimiter l(
      {"$ 100MB  200MB", "$$ 10MB", "192.168.1.1  1MB 10MB", "192.168.0.0/16  512KB  1MB"});
  EXPECT_TRUE(l.ignored().empty());
  auto c1 = l.for_connection("192.168.1.1", t0);
  EXPECT_EQ(rates(c1.in), (std::vector<double>{1 * MiB, 10 * MiB, 100 * MiB}));
  EXPECT_EQ(rates(c1.out), (std::vector<double>{10 * MiB, 200 * MiB}));
  auto c2 = l.for_connection("192.168.2.3", t0);
  EXPECT_EQ(rates(c2.in), (std::vector<double>{512 * KiB, 10 * MiB, 100 * MiB}));
  EXPECT_EQ(rates(c2.out), (std::vector<double>{1 * MiB, 200 * MiB}));
  auto c3 = l.for_connection("10.0.0.1", t0);
  EXPECT_EQ(rates(c3.in), (std::vector<double>{10 * MiB, 100 * MiB}));
  EXPECT_EQ(rates(c3.out), (std::vector<double>{200 * MiB}));

  // `$` is one bucket for all connections, `$$` one per connection, an IP's one per IP.
  auto again = l.for_connection("192.168.2.3", t0);
  auto buckets = [](const gost::ThrottlePtr& t) {
    return dynamic_cast<BucketThrottle*>(t.get())->buckets();
  };
  auto find = [&](const gost::ThrottlePtr& t, double rate) {
    for (const auto& b : buckets(t))
      if (b->rate() == rate) return b;
    return std::shared_ptr<TokenBucket>();
  };
  EXPECT_EQ(find(c2.in, 100 * MiB), find(c3.in, 100 * MiB));
  EXPECT_NE(find(c2.in, 10 * MiB), find(again.in, 10 * MiB));
  EXPECT_EQ(find(c2.in, 512 * KiB), find(again.in, 512 * KiB));
}

TEST(TrafficLimiter, OnlyWhatIsLimitedIsThrottled) {
  TrafficLimiter in_only({"$ 1MB"});
  auto t = in_only.for_connection("127.0.0.1", t0);
  EXPECT_TRUE(t.in);
  EXPECT_FALSE(t.out);
  TrafficLimiter other_ip({"10.0.0.0/8 1MB 1MB"});
  auto u = other_ip.for_connection("127.0.0.1", t0);
  EXPECT_FALSE(u.in);
  EXPECT_FALSE(u.out);
  EXPECT_FALSE(other_ip.empty());
}

TEST(TrafficLimiter, WidestNetworkAndOwnIpLine) {
  TrafficLimiter l({"10.1.0.0/16 2KB", "10.0.0.0/8 1KB 3KB", "10.1.2.3 0 5KB"});
  // Widest network first (cidranger's order); an IP line wins per direction where it limits.
  EXPECT_EQ(rates(l.for_connection("10.1.9.9", t0).in), (std::vector<double>{1 * KiB}));
  auto own = l.for_connection("10.1.2.3", t0);
  EXPECT_EQ(rates(own.in), (std::vector<double>{1 * KiB}));
  EXPECT_EQ(rates(own.out), (std::vector<double>{5 * KiB}));
}

TEST(TrafficLimiter, IgnoresWhatGostIgnores) {
  TrafficLimiter l(
      {"$ 100", "$$ 1XB 1KB", "example.com 1MB", "$", "  # only a comment", "", "10.0.0.0/8 0 0"});
  EXPECT_EQ(l.ignored(), (std::vector<std::string>{"$ 100", "$$ 1XB 1KB", "example.com 1MB", "$",
                                                   "10.0.0.0/8 0 0"}));
  auto t = l.for_connection("10.0.0.1", t0);
  EXPECT_FALSE(t.in);                                       // "$ 100": no unit, no limit
  EXPECT_EQ(rates(t.out), (std::vector<double>{1 * KiB}));  // "$$ 1XB 1KB": out still applies
}

TEST(TrafficLimiter, PerIpStateIsBounded) {
  TrafficLimiter l({"0.0.0.0/0 1MB"});
  auto held = l.for_connection("192.168.0.1", t0);  // in use: never forgotten
  for (int i = 0; i < 5000; ++i) {
    std::string ip = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    auto t = l.for_connection(ip, t0);
    ASSERT_TRUE(t.in);
  }
  EXPECT_LE(l.tracked_ips(), 2048u);
  auto again = l.for_connection("192.168.0.1", t0);
  EXPECT_EQ(dynamic_cast<BucketThrottle*>(held.in.get())->buckets()[0],
            dynamic_cast<BucketThrottle*>(again.in.get())->buckets()[0]);
}

TEST(ConnLimiter, ServiceEachIpAndNetwork) {
  ConnLimiter l({"$ 4", "$$ 2", "10.0.0.1 1", "172.16.0.0/12 3"});
  EXPECT_TRUE(l.ignored().empty());
  auto a = l.admit("10.0.0.1");
  ASSERT_TRUE(a);
  EXPECT_FALSE(l.admit("10.0.0.1"));  // its own line: 1
  auto b1 = l.admit("10.0.0.2");
  auto b2 = l.admit("10.0.0.2");
  ASSERT_TRUE(b1 && b2);
  EXPECT_FALSE(l.admit("10.0.0.2"));  // `$$`: 2 per IP
  auto c = l.admit("172.16.5.5");
  ASSERT_TRUE(c);
  EXPECT_FALSE(l.admit("172.16.5.6"));  // `$`: 4 in all
  b1.reset();                           // a connection ends: its places are given back
  EXPECT_TRUE(l.admit("172.16.5.6"));
  EXPECT_TRUE(l.admit("10.0.0.2"));
}

TEST(ConnLimiter, LimitsForAClientAsAdmitUsesThem) {
  ConnLimiter l({"$ 10", "$$ 2", "10.0.0.0/8 5", "10.1.2.3 7"});
  EXPECT_EQ(l.limits_for("10.1.2.3").client, 7);
  EXPECT_EQ(l.limits_for("10.9.9.9").client, 5);
  EXPECT_EQ(l.limits_for("::ffff:10.9.9.9").client, 5);  // IPv4-mapped is its IPv4
  EXPECT_EQ(l.limits_for("192.0.2.1").client, 2);
  EXPECT_EQ(l.limits_for("192.0.2.1").service, 10);
  ConnLimiter none({"10.0.0.0/8 1"});
  EXPECT_EQ(none.limits_for("192.0.2.1").client, 0);
  EXPECT_EQ(none.limits_for("192.0.2.1").service, 0);
  // A slot keeps what rides on it until it is given back.
  auto kept = std::make_shared<int>(1);
  std::weak_ptr<int> watch = kept;
  {
    auto slot = l.admit("192.0.2.1");
    ASSERT_TRUE(slot);
    slot->keep(std::move(kept));
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired());
}

TEST(ConnLimiter, RefusalTakesNothing) {
  ConnLimiter l({"$ 2", "$$ 1"});
  auto a = l.admit("10.0.0.1");
  ASSERT_TRUE(a);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(l.admit("10.0.0.1"));  // refused by `$$` ...
  auto b = l.admit("10.0.0.2");                                   // ... without using up `$`
  EXPECT_TRUE(b);
  EXPECT_FALSE(l.admit("10.0.0.3"));
}

TEST(ConnLimiter, IgnoredLines) {
  ConnLimiter l({"$ 0", "$$ x", "$ 2.5", "host 3", "$ -1"});
  EXPECT_EQ(l.ignored().size(), 5u);
  EXPECT_TRUE(l.empty());
}

TEST(ConnLimiter, ForgetsIdleIps) {
  ConnLimiter l({"$$ 1"});
  for (int i = 0; i < 3000; ++i) {
    std::string ip = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    EXPECT_TRUE(l.admit(ip));  // admitted and released at once
  }
  EXPECT_LE(l.tracked_ips(), 2048u);
}

TEST(RateLimiter, PerIpBurstIsIntRPlusOne) {
  RateLimiter l({"$$ 2"});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.allow("10.0.0.1", t0)) << i;
  EXPECT_FALSE(l.allow("10.0.0.1", t0));
  EXPECT_TRUE(l.allow("10.0.0.2", t0));  // another client has its own
  EXPECT_TRUE(l.allow("10.0.0.1", t0 + 500ms));
  EXPECT_FALSE(l.allow("10.0.0.1", t0 + 500ms));
}

TEST(RateLimiter, FractionalServiceRate) {
  RateLimiter l({"$ 0.5"});  // burst int(0.5)+1 = 1: one request per 2 s
  EXPECT_TRUE(l.allow("10.0.0.1", t0));
  EXPECT_FALSE(l.allow("10.0.0.2", t0 + 1s));
  EXPECT_TRUE(l.allow("10.0.0.2", t0 + 2s));
}

TEST(RateLimiter, EveryBucketIsAsked) {
  // GOST's group asks every limiter, so a refused request still uses up the others' tokens.
  RateLimiter l({"$ 100", "$$ 1"});  // `$` burst 101, each IP burst 2
  int allowed = 0;
  for (int i = 0; i < 101; ++i) allowed += l.allow("10.0.0.1", t0);
  EXPECT_EQ(allowed, 2);
  EXPECT_FALSE(l.allow("10.0.0.2", t0));  // `$` is empty now
  EXPECT_TRUE(l.allow("10.0.0.2", t0 + 10ms));
}

// ---- LimiterHolder (a limiter's inline lines plus its sources' lines) ------------------------

TEST(LimiterHolder, LoadedLinesFollowInlineOnesAndSwap) {
  TrafficLimiters h({"$ 1MB"});
  auto first = h.current();
  ASSERT_TRUE(first);
  auto t = first->for_connection("10.0.0.1", t0);
  ASSERT_TRUE(t.in);
  // A source's line for the same key comes after the inline one and wins (GOST's load()).
  EXPECT_TRUE(h.update({"$ 128KB", "# comment", "nonsense 1KB"}) ==
              std::vector<std::string>{"nonsense 1KB"});
  auto second = h.current();
  ASSERT_TRUE(second);
  EXPECT_NE(first, second);
  auto u = second->for_connection("10.0.0.1", t0);
  auto* b = dynamic_cast<BucketThrottle*>(u.in.get());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->buckets().front()->rate(), 128 * 1024);
  // The running connection keeps its bucket.
  EXPECT_EQ(dynamic_cast<BucketThrottle*>(t.in.get())->buckets().front()->rate(), 1024 * 1024);
}

TEST(LimiterHolder, EmptyUntilALineHasAnEffect) {
  RateLimiters h({});
  EXPECT_FALSE(h.current());
  h.update({"$ 1"});
  ASSERT_TRUE(h.current());
  EXPECT_TRUE(h.current()->allow("10.0.0.1", t0));
  h.update({});
  EXPECT_FALSE(h.current());
}

TEST(LimiterHolder, ConnectionCountsCarryOverAChange) {
  ConnLimiters h({});
  h.update({"$ 1", "$$ 1"});
  auto a = h.current()->admit("10.0.0.1");
  ASSERT_TRUE(a);
  EXPECT_FALSE(h.current()->admit("10.0.0.2"));  // `$` is full
  // The service may have 3 now, each IP 2: the open connection still counts in both.
  h.update({"$ 3", "$$ 2"});
  auto b = h.current()->admit("10.0.0.1");
  ASSERT_TRUE(b);
  EXPECT_FALSE(h.current()->admit("10.0.0.1"));  // 10.0.0.1 holds 2 of 2
  auto c = h.current()->admit("10.0.0.2");
  ASSERT_TRUE(c);
  EXPECT_FALSE(h.current()->admit("10.0.0.3"));  // `$` holds 3 of 3
  a.reset();  // an old connection ends: its place is given back to the shared counters
  EXPECT_TRUE(h.current()->admit("10.0.0.3"));
}
