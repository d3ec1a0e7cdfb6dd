// Config diffing for reloads and API changes (app/runtime.hpp): which services a new
// configuration adds, rebuilds, removes and leaves running.
#include <gtest/gtest.h>

#include "app/runtime.hpp"
#include "config/loader.hpp"

namespace gost::app {
namespace {

const char* kBase = R"(
services:
  - name: a
    addr: :8001
    handler: {type: http, chain: c1, auther: users}
  - name: b
    addr: :8002
    handler: {type: socks5}
  - name: c
    addr: :8003
    handler: {type: relay}
    forwarder: {hop: fwd}
    logger: l1
chains:
  - name: c1
    hops:
      - name: h1
hops:
  - name: h1
    nodes: [{name: n1, addr: 10.0.0.1:8080}]
  - name: fwd
    nodes: [{name: t1, addr: 10.0.0.2:22}]
authers:
  - name: users
    auths: [{username: u, password: p}]
loggers:
  - name: l1
    log: {level: info}
)";

config::Config base() { return config::load_yaml(kBase); }

ServicePlan plan(const config::Config& next) { return plan_services(base(), next); }

TEST(RuntimePlan, SameConfigurationKeepsEverything) {
  EXPECT_EQ(plan(base()), (ServicePlan{{}, {}, {}, {"a", "b", "c"}}));
}

TEST(RuntimePlan, FirstStartAddsEverything) {
  EXPECT_EQ(plan_services({}, base()), (ServicePlan{{"a", "b", "c"}, {}, {}, {}}));
}

TEST(RuntimePlan, ChangedServiceEntry) {
  auto next = base();
  next.services[1].handler.metadata.set("udp", true);
  EXPECT_EQ(plan(next), (ServicePlan{{}, {"b"}, {}, {"a", "c"}}));
}

TEST(RuntimePlan, IngressChangeRebuildsTheTunnelServiceNamingIt) {
  auto before = base();
  before.services[1].handler.type = "tunnel";
  before.services[1].handler.metadata.set("ingress", std::string("ing"));
  before.ingresses.push_back(config::Ingress{.name = "ing", .rules = {{"a.example.com", "x"}}});
  before.ingresses.push_back(config::Ingress{.name = "other", .rules = {{"b.example.com", "y"}}});
  auto next = before;
  next.ingresses[1].rules[0].endpoint = "z";  // named by nobody
  EXPECT_EQ(plan_services(before, next), (ServicePlan{{}, {}, {}, {"a", "b", "c"}}));
  next.ingresses[0].rules[0].endpoint = "z";
  EXPECT_EQ(plan_services(before, next), (ServicePlan{{}, {"b"}, {}, {"a", "c"}}));
}

TEST(RuntimePlan, AddedAndRemoved) {
  auto next = base();
  next.services.erase(next.services.begin() + 1);
  next.services.push_back(config::Service{.name = "d", .addr = ":8004"});
  EXPECT_EQ(plan(next), (ServicePlan{{"d"}, {}, {"b"}, {"a", "c"}}));
}

TEST(RuntimePlan, ChainChangeRebuildsItsUsersOnly) {
  auto next = base();
  next.chains[0].metadata.set("x", 1);
  EXPECT_EQ(plan(next), (ServicePlan{{}, {"a"}, {}, {"b", "c"}}));
}

TEST(RuntimePlan, ListenerChainChangeRebuildsTheReverseService) {
  // rtcp/rudp bind through the listener's chain (docs/PROTOCOLS.md "rtcp and rudp").
  auto before = base();
  before.services[1].listener.type = "rtcp";
  before.services[1].listener.chain = "c1";
  auto next = before;
  next.hops[0].nodes[0].addr = "10.0.0.9:8080";  // h1, used by chain c1 by reference
  EXPECT_EQ(plan_services(before, next), (ServicePlan{{}, {"a", "b"}, {}, {"c"}}));
}

TEST(RuntimePlan, ReferencedTopLevelHopChange) {
  auto next = base();
  next.hops[0].nodes[0].addr = "10.0.0.9:8080";  // h1, used by chain c1 by reference
  EXPECT_EQ(plan(next), (ServicePlan{{}, {"a"}, {}, {"b", "c"}}));
  next = base();
  next.hops[1].nodes[0].addr = "10.0.0.9:22";  // fwd, the forwarder of c
  EXPECT_EQ(plan(next), (ServicePlan{{}, {"c"}, {}, {"a", "b"}}));
}

TEST(RuntimePlan, AutherAndLoggerChanges) {
  auto next = base();
  next.authers[0].auths[0].password = "q";
  EXPECT_EQ(plan(next), (ServicePlan{{}, {"a"}, {}, {"b", "c"}}));
  next = base();
  next.loggers[0].log.level = "debug";  // loggers are looked up per line, not bound
  EXPECT_EQ(plan(next), (ServicePlan{{}, {}, {}, {"a", "b", "c"}}));
}

TEST(RuntimePlan, UnrelatedSectionsKeepServices) {
  auto next = base();
  next.authers.push_back(config::Auther{.name = "other"});
  next.metrics = config::Metrics{.addr = ":9000"};
  next.api = config::Api{.addr = ":18080"};
  EXPECT_EQ(plan(next), (ServicePlan{{}, {}, {}, {"a", "b", "c"}}));
}

TEST(RuntimePlan, GlobalTlsChangesEveryService) {
  auto next = base();
  next.tls = config::TLS{.certFile = "c.pem", .keyFile = "k.pem"};
  EXPECT_EQ(plan(next), (ServicePlan{{}, {"a", "b", "c"}, {}, {}}));
}

TEST(RuntimePlan, RepeatedNamesAreToldApartByOccurrence) {
  config::Config one;
  one.services = {config::Service{.name = "x", .addr = ":1"},
                  config::Service{.name = "x", .addr = ":2"}};
  auto two = one;
  two.services[1].addr = ":3";
  EXPECT_EQ(plan_services(one, two), (ServicePlan{{}, {"x#1"}, {}, {"x"}}));
}

// docs/PROTOCOLS.md "config: controls": a service is rebuilt when a control it names changes —
// its own admission, bypass, hosts or limiters, or the bypass / hosts of a hop or node of its
// chain.
TEST(RuntimePlan, ChangedControlsRebuildTheirServices) {
  auto with_controls = [] {
    auto c = base();
    c.admissions.push_back({.name = "adm", .matchers = {"127.0.0.1"}});
    c.bypasses.push_back({.name = "byp", .matchers = {"a.com"}});
    c.bypasses.push_back({.name = "nbyp", .matchers = {"b.com"}});
    c.hosts.push_back({.name = "hs", .mappings = {{.ip = "1.2.3.4", .hostname = "x"}}});
    c.limiters.push_back({.name = "lim", .limits = {"$ 1MB"}});
    c.climiters.push_back({.name = "clim", .limits = {"$ 1"}});
    c.rlimiters.push_back({.name = "rlim", .limits = {"$ 1"}});
    c.services[1].admissions = {"adm"};
    c.services[1].bypass = "byp";
    c.services[1].hosts = "hs";
    c.services[1].handler.limiter = "lim";
    c.services[1].climiter = "clim";
    c.services[1].rlimiter = "rlim";
    c.hops[0].nodes[0].bypasses = {"nbyp"};  // h1, used by service a through chain c1
    return c;
  };
  const auto before = with_controls();
  EXPECT_EQ(plan_services(before, with_controls()), (ServicePlan{{}, {}, {}, {"a", "b", "c"}}));
  auto changed = [&](auto edit) {
    auto next = with_controls();
    edit(next);
    return plan_services(before, next);
  };
  const ServicePlan b_changed{{}, {"b"}, {}, {"a", "c"}};
  EXPECT_EQ(changed([](auto& c) { c.admissions[0].whitelist = true; }), b_changed);
  EXPECT_EQ(changed([](auto& c) { c.bypasses[0].matchers.push_back("c.com"); }), b_changed);
  EXPECT_EQ(changed([](auto& c) { c.hosts[0].mappings[0].ip = "1.2.3.5"; }), b_changed);
  EXPECT_EQ(changed([](auto& c) { c.limiters[0].limits = {"$ 2MB"}; }), b_changed);
  EXPECT_EQ(changed([](auto& c) { c.climiters[0].limits = {"$ 2"}; }), b_changed);
  EXPECT_EQ(changed([](auto& c) { c.rlimiters[0].sources.reload = std::chrono::seconds(5); }),
            b_changed);
  EXPECT_EQ(changed([](auto& c) { c.bypasses[1].whitelist = true; }),
            (ServicePlan{{}, {"a"}, {}, {"b", "c"}}));
  // An object nobody names changes nothing.
  EXPECT_EQ(changed([](auto& c) { c.bypasses.push_back({.name = "unused"}); }),
            (ServicePlan{{}, {}, {}, {"a", "b", "c"}}));
}

}  // namespace
}  // namespace gost::app
