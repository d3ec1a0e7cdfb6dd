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

}  // namespace
}  // namespace gost::app
