// YAML/JSON configuration files: docs/PROTOCOLS.md "config: reading rules",
// "config: reference example", round trips.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/loader.hpp"
#include "config/printer.hpp"
#include "config/url_parser.hpp"

namespace gost::config {
namespace {

using namespace std::chrono_literals;

std::string error_of(std::string_view yaml) {
  try {
    load_yaml(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

// Metadata is a map: its entry order is not part of the value (the printer sorts keys).
void sort_metadata(Metadata& md) {
  std::sort(md.entries.begin(), md.entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
}

Config normalized(Config cfg) {
  for (auto& s : cfg.services) {
    sort_metadata(s.metadata);
    sort_metadata(s.handler.metadata);
    sort_metadata(s.listener.metadata);
    if (s.forwarder) {
      for (auto& n : s.forwarder->nodes) sort_metadata(n.metadata);
    }
  }
  auto hop_fix = [](Hop& h) {
    sort_metadata(h.metadata);
    for (auto& n : h.nodes) {
      sort_metadata(n.metadata);
      sort_metadata(n.connector.metadata);
      sort_metadata(n.dialer.metadata);
    }
  };
  for (auto& c : cfg.chains) {
    sort_metadata(c.metadata);
    for (auto& h : c.hops) hop_fix(h);
  }
  for (auto& h : cfg.hops) hop_fix(h);
  return cfg;
}

// GOST's reference example (docs/PROTOCOLS.md "config: reference example") without its bypass
// parts.
constexpr const char* kReference = R"(services:
  - name: proxy
    addr: :8080
    handler:
      type: socks5
      auther: users
      chain: upstream
      retries: 1
      metadata:
        udp: true
        readTimeout: 10s
    listener:
      type: tcp
chains:
  - name: upstream
    hops:
      - name: hop-0
        selector:
          strategy: fifo
          maxFails: 2
          failTimeout: 30s
        nodes:
          - name: a
            addr: 10.0.0.1:8420
            connector: {type: relay, auth: {username: u, password: p}}
            dialer: {type: tls, tls: {serverName: relay.example.com, secure: true}}
          - name: b
            addr: 10.0.0.2:8420
            connector: {type: relay}
            dialer: {type: tcp}
            metadata: {backup: true}
authers:
  - name: users
    auths:
      - {username: alice, password: secret}
log:
  level: info
  format: json
)";

constexpr const char* kReferencePrinted = R"(services:
  - name: proxy
    addr: :8080
    handler:
      type: socks5
      retries: 1
      chain: upstream
      auther: users
      metadata:
        readtimeout: 10s
        udp: true
    listener:
      type: tcp
chains:
  - name: upstream
    hops:
      - name: hop-0
        selector:
          strategy: fifo
          maxFails: 2
          failTimeout: 30s
        nodes:
          - name: a
            addr: 10.0.0.1:8420
            connector:
              type: relay
              auth:
                username: u
                password: p
            dialer:
              type: tls
              tls:
                secure: true
                serverName: relay.example.com
          - name: b
            addr: 10.0.0.2:8420
            connector:
              type: relay
            dialer:
              type: tcp
            metadata:
              backup: true
authers:
  - name: users
    auths:
      - username: alice
        password: secret
log:
  level: info
  format: json
)";

TEST(ConfigLoader, ReferenceExampleLoads) {
  const Config cfg = load_yaml(kReference);
  ASSERT_EQ(cfg.services.size(), 1u);
  const Service& s = cfg.services[0];
  EXPECT_EQ(s.handler.type, "socks5");
  EXPECT_EQ(s.handler.retries, 1);
  EXPECT_EQ(s.handler.auther, "users");
  EXPECT_EQ(*s.handler.metadata.find("udp"), Value(true));
  EXPECT_EQ(s.handler.metadata.entries[1].first, "readtimeout");
  EXPECT_EQ(s.handler.metadata.get_duration("readTimeout"), 10s);
  const Hop& hop = cfg.chains[0].hops[0];
  EXPECT_EQ(hop.selector->failTimeout, 30s);
  EXPECT_EQ(hop.nodes[0].dialer.tls->serverName, "relay.example.com");
  EXPECT_TRUE(hop.nodes[0].dialer.tls->secure);
  EXPECT_EQ(hop.nodes[0].connector.auth->password, "p");
  EXPECT_EQ(cfg.authers[0].auths[0].username, "alice");
  EXPECT_EQ(cfg.log->format, "json");
}

TEST(ConfigLoader, ReferenceExamplePrintsLikeGost) {
  EXPECT_EQ(to_yaml(load_yaml(kReference)), kReferencePrinted);
}

TEST(ConfigLoader, ReferenceExampleWithBypassPrintsLikeGost) {
  std::string with_bypass = std::string(kReference);
  with_bypass.replace(with_bypass.find("    handler:"), 0, "    bypass: internal\n");
  with_bypass.replace(
      with_bypass.find("log:"), 0,
      "bypasses:\n  - name: internal\n    matchers: [\"10.0.0.0/8\", \"*.local\"]\n");
  std::string printed = kReferencePrinted;
  printed.replace(printed.find("    handler:"), 0, "    bypass: internal\n");
  printed.replace(printed.find("log:"), 0,
                  "bypasses:\n  - name: internal\n    matchers:\n      - 10.0.0.0/8\n      - "
                  "'*.local'\n");
  EXPECT_EQ(to_yaml(load_yaml(with_bypass)), printed);
}

// docs/PROTOCOLS.md "config: controls": every key of admissions, bypasses, hosts and the three
// limiter kinds, their dynamic sources, and the references from services, hops and nodes.
TEST(ConfigLoader, ControlsRoundTrip) {
  const char* yaml = R"(services:
  - name: s
    addr: :8080
    admission: adm
    admissions:
      - adm2
    bypass: byp
    bypasses:
      - byp2
    hosts: hs
    limiter: lim
    climiter: clim
    rlimiter: rlim
    handler:
      type: http
      limiter: lim
    listener:
      type: tcp
chains:
  - name: c
    hops:
      - name: h
        bypass: byp
        bypasses:
          - byp2
        hosts: hs
        nodes:
          - name: node-a
            addr: a.example:1
            bypass: byp2
            hosts: hs
            connector:
              type: http
            dialer:
              type: tcp
authers:
  - name: au
    reload: 10s
    file:
      path: /etc/users
admissions:
  - name: adm
    reverse: true
    whitelist: true
    matchers:
      - 127.0.0.1
      - 10.0.0.0/8
  - name: adm2
    redis:
      addr: 127.0.0.1:6379
      db: 2
      username: u
      password: p
      key: gost:admission
      type: list
bypasses:
  - name: byp
    network: tcp
    matchers:
      - '*.example.com'
      - .example.org
    reload: 1m0s
    http:
      url: http://127.0.0.1/bypass
      timeout: 5s
  - name: byp2
    plugin:
      type: grpc
      addr: 127.0.0.1:8000
      tls:
        secure: true
      timeout: 3s
      token: t
hosts:
  - name: hs
    mappings:
      - ip: 127.0.0.1
        hostname: example.com
        aliases:
          - www.example.com
      - ip: 2001:db8::1
        hostname: v6.example.com
limiters:
  - name: lim
    limits:
      - $ 100MB 200MB
      - $$ 10MB
climiters:
  - name: clim
    limits:
      - $ 1000
rlimiters:
  - name: rlim
    limits:
      - $ 10
)";
  const Config cfg = load_yaml(yaml);
  EXPECT_EQ(to_yaml(cfg), yaml);
  EXPECT_EQ(load_json(to_json(cfg)), cfg);
  EXPECT_EQ(cfg.bypasses[0].sources.reload, std::chrono::minutes(1));
  EXPECT_EQ(cfg.admissions[1].sources.redis->db, 2);
  EXPECT_EQ(cfg.hosts[0].mappings[0].aliases, std::vector<std::string>{"www.example.com"});
  // A single string where a list is expected is a one-element list (GOST's weak typing).
  EXPECT_EQ(load_yaml("bypasses: [{name: b, matchers: \"10.0.0.0/8\"}]").bypasses[0].matchers,
            std::vector<std::string>{"10.0.0.0/8"});
  // JSON: a duration is an integer of nanoseconds.
  EXPECT_NE(to_json(cfg).find("\"reload\": 60000000000"), std::string::npos);
}

TEST(ConfigLoader, YamlRoundTrip) {
  const Config cfg = load_yaml(kReference);
  EXPECT_EQ(normalized(load_yaml(to_yaml(cfg))), normalized(cfg));
  const Config cli = parse_command_line(
      {"tls://u:p@:443/a:1,b:2?strategy=hash&x=1&certFile=c&dns=a,b", "socks5+ws://:1080"},
      {"https://h:1,g:2?secure=true&hop.k=v&node.n=yes"});
  const Config reloaded = load_yaml(to_yaml(cli));
  EXPECT_EQ(to_yaml(reloaded), to_yaml(cli));
  EXPECT_EQ(normalized(reloaded), normalized(cli));
}

TEST(ConfigLoader, JsonRoundTrip) {
  const Config cfg = load_yaml(kReference);
  const std::string json = to_json(cfg);
  EXPECT_NE(json.find("\"failTimeout\": 30000000000"), std::string::npos) << json;
  EXPECT_EQ(normalized(load_json(json)), normalized(cfg));
  const Config cli = parse_command_line({"relay+pht://:8080/h:80?failTimeout=90s"},
                                        {"http://user:pass@10.0.0.1:8080"});
  EXPECT_EQ(normalized(load_json(to_json(cli))), normalized(cli));
}

TEST(ConfigLoader, JsonDocument) {
  const Config cfg = load_json(R"({
    "services": [{"name": "s", "addr": ":1", "handler": {"type": "http", "metadata":
      {"Knock": "a<b", "n": 3, "f": 1.5, "b": false, "l": [1, "x"], "m": {"K": null}}}}],
    "chains": [{"name": "c", "hops": [{"name": "h", "selector": {"strategy": "rr",
      "maxFails": 1, "failTimeout": 1500000000}, "nodes": [{"name": "n", "addr": "x:1"}]}]}]
  })");
  const Metadata& md = cfg.services[0].handler.metadata;
  EXPECT_EQ(*md.find("knock"), Value("a<b"));
  EXPECT_EQ(md.entries[0].first, "knock");
  EXPECT_EQ(*md.find("n"), Value(3));
  EXPECT_EQ(*md.find("f"), Value(1.5));
  EXPECT_EQ(*md.find("b"), Value(false));
  EXPECT_EQ(*md.find("l"), Value(ValueList{Value(1), Value("x")}));
  EXPECT_EQ(*md.find("m"), Value(ValueMap{{"k", Value()}}));
  EXPECT_EQ(cfg.services[0].listener.type, "tcp");  // defaults applied at load
  EXPECT_EQ(cfg.chains[0].hops[0].selector->failTimeout, 1500ms);
  EXPECT_EQ(cfg.chains[0].hops[0].nodes[0].connector.type, "http");
  EXPECT_EQ(cfg.chains[0].hops[0].nodes[0].dialer.type, "tcp");
}

TEST(ConfigLoader, InlineJsonKeepsMetadataCase) {
  const Config cfg = load_source(R"({"services":[{"name":"s","metadata":{"readTimeout":"5s"}}]})");
  EXPECT_EQ(cfg.services[0].metadata.entries[0].first, "readTimeout");
}

TEST(ConfigLoader, KeysAreCaseInsensitive) {
  const Config cfg = load_yaml(R"(SERVICES:
  - NAME: s
    ADDR: :1
    Handler: {TYPE: http, Chain: c}
CHAINS:
  - Name: c
    Hops:
      - name: h
        SELECTOR: {Strategy: fifo, MAXFAILS: "3", failtimeout: 30}
        Nodes:
          - Name: n
            Addr: a:1
            Dialer: {Type: tls, TLS: {ServerName: x, SECURE: "true"}}
)");
  EXPECT_EQ(cfg.services[0].addr, ":1");
  EXPECT_EQ(cfg.services[0].handler.type, "http");
  EXPECT_EQ(cfg.services[0].handler.chain, "c");
  const Hop& hop = cfg.chains[0].hops[0];
  EXPECT_EQ(hop.selector->strategy, "fifo");
  EXPECT_EQ(hop.selector->maxFails, 3);
  EXPECT_EQ(hop.selector->failTimeout, 30ns);
  EXPECT_EQ(hop.nodes[0].dialer.tls->serverName, "x");
  EXPECT_TRUE(hop.nodes[0].dialer.tls->secure);
  EXPECT_NE(to_yaml(cfg).find("failTimeout: 30ns"), std::string::npos);
}

TEST(ConfigLoader, SnakeCaseStructKeysAreIgnored) {
  const Config cfg = load_yaml("hops:\n  - name: h\n    selector: {fail_timeout: 5s}\n");
  EXPECT_EQ(cfg.hops[0].selector->failTimeout, 0ns);
}

TEST(ConfigLoader, WeakTyping) {
  const Config cfg = load_yaml(R"(services:
  name: 123
  handler:
    retries: "2"
    authers: a,b
    tls: {secure: 1}
  listener:
    authers: single
authers:
  name: x
  auths: {username: u}
log: {level: true}
)");
  ASSERT_EQ(cfg.services.size(), 1u);
  EXPECT_EQ(cfg.services[0].name, "123");
  EXPECT_EQ(cfg.services[0].handler.retries, 2);
  EXPECT_EQ(cfg.services[0].handler.authers, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(cfg.services[0].handler.tls->secure);
  EXPECT_EQ(cfg.services[0].listener.authers, (std::vector<std::string>{"single"}));
  ASSERT_EQ(cfg.authers.size(), 1u);
  EXPECT_EQ(cfg.authers[0].auths[0].username, "u");
  EXPECT_EQ(cfg.log->level, "1");
}

TEST(ConfigLoader, MetadataKeepsYamlTypes) {
  const Config cfg = load_yaml(R"(services:
  - name: s
    metadata:
      Bool: true
      int: 10
      hex: 0x10
      float: 1.5
      str: "10"
      single: 'true'
      plain: abc
      nul: ~
      list: [a, 1]
      map: {Inner: v}
      block: |
        x
)");
  const Metadata& md = cfg.services[0].metadata;
  EXPECT_EQ(md.entries[0].first, "bool");
  EXPECT_EQ(*md.find("bool"), Value(true));
  EXPECT_EQ(*md.find("int"), Value(10));
  EXPECT_EQ(*md.find("hex"), Value(16));
  EXPECT_EQ(*md.find("float"), Value(1.5));
  EXPECT_EQ(*md.find("str"), Value("10"));
  EXPECT_EQ(*md.find("single"), Value("true"));
  EXPECT_EQ(*md.find("plain"), Value("abc"));
  EXPECT_TRUE(md.find("nul")->is_null());
  EXPECT_EQ(*md.find("list"), Value(ValueList{Value("a"), Value(1)}));
  EXPECT_EQ(*md.find("map"), Value(ValueMap{{"inner", Value("v")}}));
  EXPECT_EQ(*md.find("block"), Value("x\n"));
}

TEST(ConfigLoader, Durations) {
  auto timeout = [](const std::string& v) {
    return load_yaml("hops:\n  - name: h\n    selector: {failTimeout: " + v + "}\n")
        .hops[0]
        .selector->failTimeout;
  };
  EXPECT_EQ(timeout("1m30s"), 90s);
  EXPECT_EQ(timeout("\"300ms\""), 300ms);
  EXPECT_EQ(timeout("30"), 30ns);
  EXPECT_EQ(timeout("0"), 0ns);
  EXPECT_EQ(error_of("hops:\n  - name: h\n    selector: {failTimeout: 10 seconds}\n"),
            "hops[0].selector.failTimeout: invalid duration \"10 seconds\"");
  EXPECT_EQ(load_yaml("tls: {validity: 8760h}").tls->validity, 8760h);
  EXPECT_EQ(timeout("1.5e9"), 1500000000ns);
  // Floats that no int64 holds are refused (the conversion was undefined behaviour; found by
  // fuzzing the web API's bodies).
  EXPECT_EQ(error_of("hops:\n  - name: h\n    selector: {failTimeout: 1e35}\n"),
            "hops[0].selector.failTimeout: duration out of range: 1e+35");
  EXPECT_EQ(error_of("hops:\n  - name: h\n    selector: {failTimeout: -9.3e18}\n"),
            "hops[0].selector.failTimeout: duration out of range: -9.3e+18");
  EXPECT_EQ(error_of("hops:\n  - name: h\n    selector: {failTimeout: .nan}\n"),
            "hops[0].selector.failTimeout: duration out of range: NaN");
  EXPECT_EQ(error_of("services: [{handler: {retries: 1e19}}]"),
            "services[0].handler.retries: integer out of range: 1e+19");
}

TEST(ConfigLoader, BadInput) {
  EXPECT_NE(error_of("services: [\n").find("invalid configuration"), std::string::npos);
  EXPECT_EQ(error_of("services: 5"), "services: expected a list");
  EXPECT_EQ(error_of("services: [5]"), "services[0]: expected a mapping");
  EXPECT_EQ(error_of("services: [{name: [a]}]"), "services[0].name: expected a string");
  EXPECT_EQ(error_of("services: [{handler: {retries: x}}]"),
            "services[0].handler.retries: invalid integer \"x\"");
  EXPECT_EQ(error_of("chains: [{hops: [{nodes: [{dialer: {tls: {secure: maybe}}}]}]}]"),
            "chains[0].hops[0].nodes[0].dialer.tls.secure: invalid boolean \"maybe\"");
  EXPECT_EQ(error_of("services: [{metadata: [a]}]"), "services[0].metadata: expected a mapping");
  EXPECT_EQ(error_of("- a"), "configuration: expected a mapping at the top level");
}

TEST(ConfigLoader, UnknownKeysAreIgnored) {
  const Config cfg = load_yaml(
      "foo: bar\nservices:\n  - name: s\n    whatever: 1\n    status: {state: ready}\n"
      "chains:\n  - name: c\n    selector: {strategy: fifo}\n    hops: []\n");
  EXPECT_EQ(cfg.services[0].name, "s");
  EXPECT_EQ(cfg.chains[0].name, "c");
  EXPECT_EQ(load_yaml(""), Config{});
}

// The operations sections (docs/PROTOCOLS.md "config: operations"): loaded, and printed back in
// GOST's order.
TEST(ConfigLoader, ApiLogAndLoggersRoundTrip) {
  const char* yaml = R"(services:
  - name: s
    addr: :8080
    logger: l1
    loggers:
      - l1
      - l2
    handler:
      type: http
    listener:
      type: tcp
loggers:
  - name: l1
    log:
      output: /tmp/x.log
      level: debug
      format: text
      rotation:
        maxSize: 5
        maxAge: 2
        maxBackups: 3
        localTime: true
        compress: true
  - name: l2
    log:
      level: warn
log:
  output: stderr
  level: info
api:
  addr: :18080
  pathPrefix: /api
  accesslog: true
  auth:
    username: u
    password: p
  auther: a1
metrics:
  addr: :9000
  userLabel: true
)";
  Config cfg = load_yaml(yaml);
  ASSERT_EQ(cfg.loggers.size(), 2u);
  EXPECT_EQ(cfg.loggers[0].log.rotation->maxBackups, 3);
  EXPECT_TRUE(cfg.loggers[0].log.rotation->compress);
  EXPECT_EQ(cfg.services[0].loggers, (std::vector<std::string>{"l1", "l2"}));
  ASSERT_TRUE(cfg.api);
  EXPECT_EQ(cfg.api->pathPrefix, "/api");
  EXPECT_TRUE(cfg.api->accesslog);
  EXPECT_EQ(to_yaml(cfg), yaml);
  Config merged = load_yaml("api: {addr: :1}\nloggers: [{name: a}]\n");
  merged.merge(load_yaml("api: {addr: :2}\nloggers: [{name: b}]\n"));
  EXPECT_EQ(merged.api->addr, ":2");  // single sections are replaced, lists appended
  EXPECT_EQ(merged.loggers.size(), 2u);
}

// Web API request bodies: one JSON object, metadata keys keep their case, durations may be
// integer nanoseconds; a body that is not an object counts as an empty one (GOST).
TEST(ConfigLoader, ApiObjects) {
  auto s = load_service_object(
      R"({"name":"s1","addr":":8081","handler":{"type":"http","metadata":{"readTimeout":"5s"}},"listener":{"type":"tcp"}})");
  EXPECT_EQ(s.name, "s1");
  EXPECT_EQ(s.handler.type, "http");
  EXPECT_EQ(s.handler.metadata.entries.at(0).first, "readTimeout");
  EXPECT_EQ(load_service_object("not json{").name, "");
  EXPECT_EQ(load_service_object("[1,2]").name, "");
  auto h = load_hop_object(
      R"({"name":"h","selector":{"strategy":"fifo","failTimeout":10000000000},"nodes":[{"name":"n","addr":"1.2.3.4:80"}]})");
  EXPECT_EQ(h.selector->failTimeout, std::chrono::seconds(10));
  EXPECT_EQ(h.nodes.at(0).addr, "1.2.3.4:80");
  EXPECT_EQ(to_compact_json(
                load_auther_object(R"({"name":"a1","auths":[{"username":"u","password":"p"}]})")),
            R"({"name":"a1","auths":[{"username":"u","password":"p"}]})");
  EXPECT_EQ(load_service_object(R"({"name":"s","bypass":"b"})").bypass, "b");
  EXPECT_THROW(load_service_object(R"({"name":"s","resolver":"r"})"), ConfigError);
  EXPECT_EQ(to_compact_json(load_bypass_object(
                R"({"name":"b","whitelist":true,"matchers":["a.com"],"file":{"path":"/x"}})")),
            R"({"name":"b","whitelist":true,"matchers":["a.com"],"file":{"path":"/x"}})");
  EXPECT_EQ(to_compact_json(
                load_hosts_object(R"({"name":"h","mappings":[{"ip":"1.2.3.4","hostname":"a"}]})")),
            R"({"name":"h","mappings":[{"ip":"1.2.3.4","hostname":"a"}]})");
  EXPECT_EQ(to_compact_json(load_admission_object(R"({"name":"a","matchers":"127.0.0.1"})")),
            R"({"name":"a","matchers":["127.0.0.1"]})");
  EXPECT_EQ(to_compact_json(load_limiter_object(R"({"name":"l","limits":["$ 10"]})")),
            R"({"name":"l","limits":["$ 10"]})");
}

TEST(ConfigLoader, UnsupportedKeysNameTheirPath) {
  const std::pair<const char*, const char*> cases[] = {
      {"resolvers: [{name: r}]", "resolvers: not supported"},
      {"profiling: {addr: :6060}", "profiling: not supported"},
      {"services: [{resolver: a}]", "services[0].resolver: not supported"},
      {"services: [{Sockopts: {mark: 1}}]", "services[0].sockopts: not supported"},
      {"services: [{handler: {chainGroup: {chains: [a]}}}]",
       "services[0].handler.chainGroup: not supported"},
      {"services: [{handler: {auth: {username: u, file: f}}}]",
       "services[0].handler.auth.file: not supported"},
      {"services: [{listener: {chainGroup: {chains: [a]}}}]",
       "services[0].listener.chainGroup: not supported"},
      {"services: [{forwarder: {hopGroup: {hops: [a]}}}]",
       "services[0].forwarder.hopGroup: not supported"},
      {"hops: [{name: h, file: {path: x}}]", "hops[0].file: not supported"},
      {"chains: [{hops: [{nodes: [{resolver: b}]}]}]",
       "chains[0].hops[0].nodes[0].resolver: not supported"},
      {"chains: [{hops: [{nodes: [{tls: {secure: true}}]}]}]",
       "chains[0].hops[0].nodes[0].tls: not supported"},
      {"services: [{forwarder: {nodes: [{filter: {host: a}}]}}]",
       "services[0].forwarder.nodes[0].filter: not supported"},
  };
  for (const auto& [yaml, want] : cases) EXPECT_EQ(error_of(yaml), want) << yaml;
  EXPECT_EQ(error_of("bypasses: []\nservices: [{bypass: \"\"}]"), "no error");
}

// ---- sources -------------------------------------------------------------------------------

class ConfigSource : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("gost_config_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }
  static std::string error_of_source(const std::string& source) {
    try {
      load_source(source);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no error";
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigSource, FileFormatsByExtension) {
  EXPECT_EQ(load_source(write("a.yaml", "services: [{name: y}]")).services[0].name, "y");
  EXPECT_EQ(load_source(write("a.yml", "services: [{name: z}]")).services[0].name, "z");
  const Config json =
      load_source(write("a.json", R"({"services":[{"name":"j","metadata":{"A":1}}]})"));
  EXPECT_EQ(json.services[0].metadata.entries[0].first, "a");
}

TEST_F(ConfigSource, ErrorsNameTheSource) {
  const std::string toml = write("a.toml", "x = 1");
  EXPECT_NE(error_of_source(toml).find(toml), std::string::npos);
  const std::string noext = write("gostconf", "services: []");
  EXPECT_NE(error_of_source(noext).find(noext), std::string::npos);
  const std::string missing = (dir_ / "missing.yaml").string();
  EXPECT_NE(error_of_source(missing).find(missing), std::string::npos);
  const std::string bad = write("bad.yaml", "services: [{resolver: x}]");
  EXPECT_EQ(error_of_source(bad),
            "config file \"" + bad + "\": services[0].resolver: not supported");
  EXPECT_EQ(error_of_source("https://example.com/gost.yaml")
                .rfind("remote configuration (URL) is not supported", 0),
            0u);
}

TEST_F(ConfigSource, DefaultConfigSearch) {
  for (const char* ext : {"json", "yaml", "yml"}) {
    if (std::filesystem::exists(std::string("/etc/gost/gost.") + ext)) GTEST_SKIP();
  }
  const char* old_home = std::getenv("HOME");
  const std::string saved = old_home ? old_home : "";
  ::setenv("HOME", dir_.c_str(), 1);
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  EXPECT_EQ(find_default_config(), std::nullopt);
  write("gost.yaml", "services: []");
  EXPECT_EQ(find_default_config(), "./gost.yaml");
  write(".gost/gost.yml", "services: []");
  EXPECT_EQ(find_default_config(), (dir_ / ".gost/gost.yml").string());
  write(".gost/gost.json", "{}");
  EXPECT_EQ(find_default_config(), (dir_ / ".gost/gost.json").string());
  std::filesystem::current_path(cwd);
  if (old_home) {
    ::setenv("HOME", saved.c_str(), 1);
  } else {
    ::unsetenv("HOME");
  }
}

}  // namespace
}  // namespace gost::config

namespace gost::config {
namespace {

// An ingress takes GOST's file/redis/http sources and `reload`, or its plugin.
TEST(ConfigLoader, IngressSources) {
  const Config cfg = load_yaml(
      "ingresses: [{name: i, reload: 5s, file: {path: /tmp/rules.txt}, "
      "redis: {addr: \"127.0.0.1:6379\", type: set}}]");
  ASSERT_EQ(cfg.ingresses.size(), 1u);
  EXPECT_EQ(cfg.ingresses[0].sources.reload, 5s);
  ASSERT_TRUE(cfg.ingresses[0].sources.file);
  EXPECT_EQ(cfg.ingresses[0].sources.file->path, "/tmp/rules.txt");
  ASSERT_TRUE(cfg.ingresses[0].sources.redis);
  EXPECT_EQ(cfg.ingresses[0].sources.redis->type, "set");
  const Config p = load_yaml(
      "ingresses: [{name: i, plugin: {type: http, addr: \"http://127.0.0.1:8000/ingress\"}}]");
  ASSERT_TRUE(p.ingresses[0].sources.plugin);
  EXPECT_EQ(p.ingresses[0].sources.plugin->addr, "http://127.0.0.1:8000/ingress");
}

}  // namespace
}  // namespace gost::config
