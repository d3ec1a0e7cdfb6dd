// Command line (-L/-F) -> model -> -O output, against the examples of docs/PROTOCOLS.md "cli".
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/printer.hpp"
#include "config/url_parser.hpp"

namespace gost::config {
namespace {

using Args = std::vector<std::string>;

std::string yaml(const Args& l, const Args& f = {}) { return to_yaml(parse_command_line(l, f)); }
std::string json(const Args& l, const Args& f = {}) { return to_json(parse_command_line(l, f)); }

std::string error_of(const Args& l, const Args& f = {}) {
  try {
    parse_command_line(l, f);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

// ---- "cli: output" examples (verified against GOST 3.2.6) ---------------------------------------

TEST(ConfigCli, Section7_1_UserPassYaml) {
  EXPECT_EQ(yaml({"http://user:pass@:8080"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: http
      auth:
        username: user
        password: pass
    listener:
      type: tcp
)");
}

TEST(ConfigCli, Section7_1_UserPassJson) {
  EXPECT_EQ(json({"http://user:pass@:8080"}), R"({
  "services": [
    {
      "name": "service-0",
      "addr": ":8080",
      "handler": {
        "type": "http",
        "auth": {
          "username": "user",
          "password": "pass"
        }
      },
      "listener": {
        "type": "tcp"
      }
    }
  ]
}
)");
}

TEST(ConfigCli, Section7_2_ChainYaml) {
  EXPECT_EQ(yaml({"http://:8000"}, {"http://user:pass@:8080"}), R"(services:
  - name: service-0
    addr: :8000
    handler:
      type: http
      chain: chain-0
    listener:
      type: tcp
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: :8080
            connector:
              type: http
              auth:
                username: user
                password: pass
            dialer:
              type: tcp
)");
}

TEST(ConfigCli, Section7_2_ServerNameDefaultsToHost) {
  const std::string out = yaml({"http://:8000"}, {"http://user:pass@10.0.0.1:8080"});
  EXPECT_NE(out.find(R"(            dialer:
              type: tcp
              tls:
                serverName: 10.0.0.1
)"),
            std::string::npos)
      << out;
}

TEST(ConfigCli, Section7_3_RelayPht) {
  EXPECT_EQ(yaml({"relay+pht://:8080?authorizePath=/authorize&pushPath=/push&pullPath=/pull"}),
            R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: relay
      metadata:
        authorizePath: /authorize
        pullPath: /pull
        pushPath: /push
    listener:
      type: pht
      metadata:
        authorizePath: /authorize
        pullPath: /pull
        pushPath: /push
    metadata:
      authorizePath: /authorize
      pullPath: /pull
      pushPath: /push
)");
}

TEST(ConfigCli, Section7_4_Socks5Ws) {
  EXPECT_EQ(yaml({"socks5+ws://user:pass@:1080"}), R"(services:
  - name: service-0
    addr: :1080
    handler:
      type: socks5
      auth:
        username: user
        password: pass
    listener:
      type: ws
)");
}

// A deliberate difference from GOST 3.2.6 (which builds its HTTP/3 reverse proxy, handler http3):
// `-L http3://` is the seed's PHT over HTTP/3 with handler auto (docs/PROTOCOLS.md "http3: names",
// issue 9).
TEST(ConfigCli, Section7_5_Http3IsPhtOverHttp3) {
  EXPECT_EQ(yaml({"http3://:8443"}), R"(services:
  - name: service-0
    addr: :8443
    handler:
      type: auto
    listener:
      type: http3
)");
}

TEST(ConfigCli, Section7_5_H3Tunnel) {
  EXPECT_EQ(yaml({"h3://:8443?authorizePath=/authorize&pushPath=/push&pullPath=/pull"}),
            R"(services:
  - name: service-0
    addr: :8443
    handler:
      type: auto
      metadata:
        authorizePath: /authorize
        pullPath: /pull
        pushPath: /push
    listener:
      type: h3
      metadata:
        authorizePath: /authorize
        pullPath: /pull
        pushPath: /push
    metadata:
      authorizePath: /authorize
      pullPath: /pull
      pushPath: /push
)");
}

TEST(ConfigCli, Section7_6_HopSelectorAndServerNameQuirk) {
  EXPECT_EQ(yaml({}, {"http://a:1,b:2?strategy=rand&maxFails=3&failTimeout=60s"}),
            R"(services: []
chains:
  - name: chain-0
    hops:
      - name: hop-0
        selector:
          strategy: rand
          maxFails: 3
          failTimeout: 1m0s
        nodes:
          - name: node-0
            addr: a:1
            connector:
              type: http
            dialer:
              type: tcp
              tls:
                serverName: a:1,b
          - name: node-1
            addr: b:2
            connector:
              type: http
            dialer:
              type: tcp
              tls:
                serverName: a:1,b
)");
}

TEST(ConfigCli, Section7_6_NoServicesJsonIsNull) {
  EXPECT_EQ(json({}), "{\n  \"services\": null\n}\n");
  EXPECT_EQ(yaml({}), "services: []\n");
}

TEST(ConfigCli, Section7_DurationsAreNanosecondsInJson) {
  const std::string out = json({}, {"http://a:1?failTimeout=90s"});
  EXPECT_NE(out.find(R"("selector": {
            "strategy": "round",
            "maxFails": 1,
            "failTimeout": 90000000000
          },)"),
            std::string::npos)
      << out;
}

// go-gost/x config/cmd: `?bypass=` becomes a named top-level bypass; '~' = whitelist.
TEST(ConfigCli, Section7_6_BypassBecomesAnObject) {
  EXPECT_EQ(yaml({"http://:8080?bypass=~example.com,10.0.0.0/8"}), R"(services:
  - name: service-0
    addr: :8080
    bypass: bypass-0
    handler:
      type: http
    listener:
      type: tcp
      metadata:
        bypass: ~example.com,10.0.0.0/8
    metadata:
      bypass: ~example.com,10.0.0.0/8
bypasses:
  - name: bypass-0
    whitelist: true
    matchers:
      - example.com
      - 10.0.0.0/8
)");
}

// ---- "cli: URLs": normalisation -----------------------------------------------------------------

TEST(ConfigCli, BarePortAndUserinfoMeanAuto) {
  EXPECT_EQ(yaml({":8080"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: auto
    listener:
      type: tcp
)");
  EXPECT_EQ(yaml({"user:pass@:8080"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: auto
      auth:
        username: user
        password: pass
    listener:
      type: tcp
)");
  auto cfg = parse_command_line({"1.2.3.4:1080", "  socks5://:1081  "}, {});
  ASSERT_EQ(cfg.services.size(), 2u);
  EXPECT_EQ(cfg.services[0].addr, "1.2.3.4:1080");
  EXPECT_EQ(cfg.services[0].handler.type, "auto");
  EXPECT_EQ(cfg.services[1].addr, ":1081");
  EXPECT_EQ(cfg.services[1].handler.type, "socks5");
}

TEST(ConfigCli, UserinfoSplitsAtLastAtAndFirstColon) {
  auto cfg = parse_command_line({"http://us@er:p:a@ss@:8080", "http://alice@:8081"}, {});
  ASSERT_TRUE(cfg.services[0].handler.auth);
  EXPECT_EQ(cfg.services[0].handler.auth->username, "us@er");
  EXPECT_EQ(cfg.services[0].handler.auth->password, "p:a@ss");
  EXPECT_EQ(cfg.services[1].handler.auth->username, "alice");
  EXPECT_EQ(cfg.services[1].handler.auth->password, "");
  auto pct = parse_command_line({"http://a%40b:c%3Ad@:1"}, {});
  EXPECT_EQ(pct.services[0].handler.auth->username, "a@b");
  EXPECT_EQ(pct.services[0].handler.auth->password, "c:d");
}

TEST(ConfigCli, SchemeIsLowercasedAndHttpsBecomesHttpTls) {
  auto cfg = parse_command_line({"HTTPS://:443"}, {"HTTPS://h:443"});
  EXPECT_EQ(cfg.services[0].handler.type, "http");
  EXPECT_EQ(cfg.services[0].listener.type, "tls");
  const Node& node = cfg.chains[0].hops[0].nodes[0];
  EXPECT_EQ(node.connector.type, "http");
  EXPECT_EQ(node.dialer.type, "tls");
}

TEST(ConfigCli, QueryFirstValueWinsSemicolonDroppedValuesQuoted) {
  EXPECT_EQ(yaml({"http://:8080?a=1&a=2&b=x;y&c=true&d=a+b%21"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: http
      metadata:
        a: "1"
        c: "true"
        d: a b!
    listener:
      type: tcp
      metadata:
        a: "1"
        c: "true"
        d: a b!
    metadata:
      a: "1"
      c: "true"
      d: a b!
)");
  auto cfg = parse_command_line({"http://:8080?a=1&a=2&b=x;y&c=true&d=a+b%21"}, {});
  const Metadata& md = cfg.services[0].handler.metadata;
  EXPECT_EQ(md.get_string("a"), "1");
  EXPECT_FALSE(md.contains("b"));
  EXPECT_EQ(md.get_string("d"), "a b!");
  EXPECT_EQ(*md.find("c"), Value("true"));  // query values stay strings
  EXPECT_EQ(md.get_bool("C"), true);        // lookups are case-insensitive
}

TEST(ConfigCli, PortRangeGivesSeveralServices) {
  auto cfg = parse_command_line({"tcp://:8000-8002"}, {});
  ASSERT_EQ(cfg.services.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(cfg.services[i].name, "service-" + std::to_string(i));
    EXPECT_EQ(cfg.services[i].addr, ":" + std::to_string(8000 + i));
  }
}

TEST(ConfigCli, NonNumericPortAndHostWithoutPort) {
  auto cfg = parse_command_line({"tcp://:abc", "tcp://localhost", "tcp://[::1]:53"}, {});
  EXPECT_EQ(cfg.services[0].addr, ":0");
  EXPECT_EQ(cfg.services[1].addr, "localhost");
  EXPECT_EQ(cfg.services[2].addr, "[::1]:53");
}

TEST(ConfigCli, PathBasedListenersAndDialers) {
  auto cfg =
      parse_command_line({"unix:///run/x.sock", "unix://a.sock/b.sock"}, {"unix:///run/y.sock"});
  EXPECT_EQ(cfg.services[0].addr, "/run/x.sock");
  EXPECT_EQ(cfg.services[0].handler.type, "unix");
  EXPECT_FALSE(cfg.services[0].forwarder);
  EXPECT_EQ(cfg.services[1].addr, "a.sock");
  ASSERT_TRUE(cfg.services[1].forwarder);
  EXPECT_EQ(cfg.services[1].forwarder->nodes[0].addr, "b.sock");
  EXPECT_EQ(cfg.chains[0].hops[0].nodes[0].addr, "/run/y.sock");
  EXPECT_EQ(cfg.chains[0].hops[0].nodes[0].dialer.type, "unix");
}

// ---- "cli: schemes" ----------------------------------------------------------------------------

struct SchemeRow {
  const char* scheme;
  const char* first;
  const char* second;
};

TEST(ConfigCli, ServiceSchemeTable) {
  const SchemeRow rows[] = {
      {"auto", "auto", "tcp"},       {"http", "http", "tcp"},     {"https", "http", "tls"},
      {"socks5", "socks5", "tcp"},   {"socks", "socks", "tcp"},   {"socks4", "socks4", "tcp"},
      {"socks4a", "socks4a", "tcp"}, {"relay", "relay", "tcp"},   {"socks5+ws", "socks5", "ws"},
      {"relay+ws", "relay", "ws"},   {"ws", "auto", "ws"},        {"wss", "auto", "wss"},
      {"mws", "auto", "mws"},        {"mwss", "auto", "mwss"},    {"relay+pht", "relay", "pht"},
      {"pht", "auto", "pht"},        {"phts", "auto", "phts"},    {"tls", "auto", "tls"},
      {"mtls", "auto", "mtls"},      {"http2", "http2", "http2"}, {"h2", "auto", "h2"},
      {"h2c", "auto", "h2c"},        {"grpc", "auto", "grpc"},    {"quic", "auto", "quic"},
      {"http3", "auto", "http3"},    {"h3", "auto", "h3"},        {"wt", "auto", "wt"},
      {"dtls", "auto", "dtls"},      {"kcp", "auto", "kcp"},      {"ohttp", "auto", "ohttp"},
      {"otls", "auto", "otls"},      {"ssh", "auto", "ssh"},      {"sshd", "sshd", "sshd"},
      {"ss", "ss", "tcp"},           {"ssu", "ssu", "udp"},       {"tcp", "tcp", "tcp"},
      {"udp", "udp", "udp"},         {"rtcp", "rtcp", "rtcp"},    {"rudp", "rudp", "rudp"},
      {"red", "red", "red"},         {"redu", "redu", "redu"},    {"tun", "tun", "tun"},
      {"tap", "tap", "tap"},         {"dns", "dns", "dns"},
  };
  for (const auto& row : rows) {
    auto cfg = parse_command_line({std::string(row.scheme) + "://:8080"}, {});
    EXPECT_EQ(cfg.services[0].handler.type, row.first) << row.scheme;
    EXPECT_EQ(cfg.services[0].listener.type, row.second) << row.scheme;
  }
  // GOST falls back to auto/tcp for names it does not know; we refuse them, naming the part.
  for (auto [scheme, part] : {std::pair{"socks5+ws+tls", "socks5+ws+tls"},
                              {"foo", "foo"},
                              {"http+bar", "bar"},
                              {"sock5", "sock5"},
                              {"bar+tcp", "bar"}}) {
    try {
      parse_command_line({std::string(scheme) + "://:8080"}, {});
      ADD_FAILURE() << scheme << " was accepted";
    } catch (const UnknownSchemeError& e) {
      EXPECT_EQ(e.part, part);
      EXPECT_TRUE(e.service);
    }
  }
}

TEST(ConfigCli, NodeSchemeTable) {
  const SchemeRow rows[] = {
      {"http", "http", "tcp"},
      {"https", "http", "tls"},
      {"tls", "http", "tls"},
      {"socks5", "socks5", "tcp"},
      {"socks", "socks", "tcp"},
      {"relay", "relay", "tcp"},
      {"relay+tls", "relay", "tls"},
      {"relay+ws", "relay", "ws"},
      {"relay+wss", "relay", "wss"},
      {"relay+pht", "relay", "pht"},
      {"relay+grpc", "relay", "grpc"},
      {"socks5+ws", "socks5", "ws"},
      {"http2", "http2", "http2"},
      {"h2", "http", "h2"},
      {"grpc", "http", "grpc"},
      {"quic", "http", "quic"},
      {"ws", "http", "ws"},
      {"wss", "http", "wss"},
      {"pht", "http", "pht"},
      {"phts", "http", "phts"},
      {"http3", "http", "http3"},
      {"h3", "http", "h3"},
      {"ss", "ss", "tcp"},
      {"ssu", "ssu", "udp"},
  };
  for (const auto& row : rows) {
    auto cfg = parse_command_line({}, {std::string(row.scheme) + "://h:1"});
    const Node& node = cfg.chains[0].hops[0].nodes[0];
    EXPECT_EQ(node.connector.type, row.first) << row.scheme;
    EXPECT_EQ(node.dialer.type, row.second) << row.scheme;
  }
  for (auto [scheme, part] :
       {std::pair{"x+y+z", "x+y+z"}, {"foo", "foo"}, {"http+tlz", "tlz"}, {"sock5+tcp", "sock5"}}) {
    try {
      parse_command_line({}, {std::string(scheme) + "://h:1"});
      ADD_FAILURE() << scheme << " was accepted";
    } catch (const UnknownSchemeError& e) {
      EXPECT_EQ(e.part, part);
      EXPECT_FALSE(e.service);
    }
  }
  auto plain = parse_command_line({}, {"h:1"});
  EXPECT_EQ(plain.chains[0].hops[0].nodes[0].connector.type, "http");
  EXPECT_EQ(plain.chains[0].hops[0].nodes[0].dialer.type, "tcp");
}

// ---- "cli: query keys" ---------------------------------------------------------------------

TEST(ConfigCli, ServiceScopePrefixes) {
  EXPECT_EQ(yaml({"http://:8080?service.a=1&handler.b=2&listener.c=3&d=x"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: http
      metadata:
        b: "2"
        d: x
    listener:
      type: tcp
      metadata:
        c: "3"
        d: x
    metadata:
      a: "1"
      d: x
)");
}

TEST(ConfigCli, NodeScopePrefixes) {
  EXPECT_EQ(yaml({}, {"http://:1?hop.a=1&node.b=2&connector.c=3&dialer.d=4&udp.bufferSize=9"}),
            R"(services: []
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: :1
            connector:
              type: http
              metadata:
                c: "3"
                udp.bufferSize: "9"
            dialer:
              type: tcp
              metadata:
                d: "4"
                udp.bufferSize: "9"
            metadata:
              b: "2"
              udp.bufferSize: "9"
        metadata:
          a: "1"
          udp.bufferSize: "9"
)");
}

TEST(ConfigCli, ServiceSpecialKeys) {
  EXPECT_EQ(yaml({"tls://:443?auth=dXNlcjpwYXNz&certFile=c.pem&key=k.pem&tls.caFile=ca.pem"
                  "&interface=eth0&so_mark=5&proxyProtocol=1&netns=ns1&dns=1.1.1.1,8.8.8.8"
                  "&retries=3"}),
            R"(services:
  - name: service-0
    addr: :443
    handler:
      type: auto
      retries: 3
      auth:
        username: user
        password: pass
      metadata:
        dns:
          - 1.1.1.1
          - 8.8.8.8
    listener:
      type: tls
      tls:
        certFile: c.pem
        keyFile: k.pem
        caFile: ca.pem
      metadata:
        dns:
          - 1.1.1.1
          - 8.8.8.8
        retries: "3"
    metadata:
      dns:
        - 1.1.1.1
        - 8.8.8.8
      interface: eth0
      netns: ns1
      proxyProtocol: 1
      retries: "3"
      so_mark: 5
)");
}

TEST(ConfigCli, TlsBlockOnlyWithCertFile) {
  auto cfg = parse_command_line({"tls://:443?keyFile=k.pem"}, {});
  EXPECT_FALSE(cfg.services[0].listener.tls);
  EXPECT_FALSE(cfg.services[0].listener.metadata.contains("keyFile"));
}

TEST(ConfigCli, AuthKeyIgnoredWithUserinfoAndStdBase64Accepted) {
  auto cfg = parse_command_line({"http://a:b@:1?auth=dXNlcjpwYXNz", "http://:2?auth=YWRtaW4="}, {});
  EXPECT_EQ(cfg.services[0].handler.auth->username, "a");
  EXPECT_FALSE(cfg.services[0].handler.metadata.contains("auth"));
  EXPECT_EQ(cfg.services[1].handler.auth->username, "admin");
  EXPECT_EQ(cfg.services[1].handler.auth->password, "");
}

TEST(ConfigCli, BadBase64AuthIsAnError) {
  EXPECT_EQ(error_of({"http://:1?auth=%%%"}), "no error");  // bad escape: pair dropped
  EXPECT_NE(error_of({"http://:1?auth=!!!"}).find("base64"), std::string::npos);
  EXPECT_NE(error_of({}, {"http://h:1?auth=!!!"}).find("base64"), std::string::npos);
}

TEST(ConfigCli, SshAuthGoesToListenerAndDialer) {
  auto cfg = parse_command_line({"sshd://u:p@:2222"}, {"ssh://u:p@h:22"});
  EXPECT_FALSE(cfg.services[0].handler.auth);
  ASSERT_TRUE(cfg.services[0].listener.auth);
  EXPECT_EQ(cfg.services[0].listener.auth->username, "u");
  const Node& node = cfg.chains[0].hops[0].nodes[0];
  EXPECT_FALSE(node.connector.auth);
  ASSERT_TRUE(node.dialer.auth);
  EXPECT_EQ(node.dialer.auth->password, "p");
}

TEST(ConfigCli, ShadowsocksSip002Userinfo) {
  auto cfg = parse_command_line({"ss://YWVzLTEyOC1nY206cGFzcw@:8338"}, {});
  EXPECT_EQ(cfg.services[0].handler.auth->username, "aes-128-gcm");
  EXPECT_EQ(cfg.services[0].handler.auth->password, "pass");
}

TEST(ConfigCli, ServiceSelectorDefaultsAndOnlyWithTargets) {
  auto cfg = parse_command_line({"tcp://:1/a:80?maxFails=2", "http://:2?strategy=fifo"}, {});
  ASSERT_TRUE(cfg.services[0].forwarder->selector);
  EXPECT_EQ(cfg.services[0].forwarder->selector->strategy, "round");
  EXPECT_EQ(cfg.services[0].forwarder->selector->maxFails, 2);
  EXPECT_EQ(cfg.services[0].forwarder->selector->failTimeout, std::chrono::seconds(30));
  EXPECT_FALSE(cfg.services[1].forwarder);
  EXPECT_FALSE(cfg.services[1].handler.metadata.contains("strategy"));
}

TEST(ConfigCli, NodeSpecialKeysAndServerNameQuirk) {
  EXPECT_EQ(yaml({}, {"http://u:p@h:1?secure=true&servername=x&interface=eth0&so_mark=7"}),
            R"(services: []
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: h:1
            connector:
              type: http
              auth:
                username: u
                password: p
              metadata:
                servername: x
            dialer:
              type: tcp
              tls:
                secure: true
                serverName: x
              metadata:
                servername: x
            metadata:
              servername: x
        metadata:
          interface: eth0
          secure: "true"
          servername: x
          so_mark: 7
)");
  auto cfg = parse_command_line({}, {"http://h:1?serverName=a&tls.servername=b&auth=dXNlcjpwYXNz"});
  const Hop& hop = cfg.chains[0].hops[0];
  EXPECT_EQ(hop.nodes[0].dialer.tls->serverName, "b");
  EXPECT_FALSE(hop.nodes[0].metadata.contains("tls.servername"));
  EXPECT_TRUE(hop.metadata.contains("auth"));  // hop copy taken before auth is removed
  EXPECT_FALSE(hop.nodes[0].connector.metadata.contains("auth"));
  EXPECT_EQ(hop.nodes[0].connector.auth->username, "user");
}

TEST(ConfigCli, ObjectKeysBecomeNamedObjects) {
  auto cfg = parse_command_line(
      {"http://:8080?admission=127.0.0.1,,10.0.0.0/8&bypass=a.com&hosts=a.com:1.2.3.4,bad,"
       "b:::1&limiter.in=1MB&limiter.conn.out=2KB&climiter=10&rlimiter=1.5",
       "socks5://:1080?admission=~1.2.3.4&bypass=~b.com"},
      {"http://h:1?bypass=c.com&hosts=h:127.0.0.1", "http://i:2"});
  ASSERT_EQ(cfg.admissions.size(), 2u);
  EXPECT_EQ(cfg.admissions[0].name, "admission-0");
  EXPECT_FALSE(cfg.admissions[0].whitelist);
  EXPECT_EQ(cfg.admissions[0].matchers, (std::vector<std::string>{"127.0.0.1", "10.0.0.0/8"}));
  EXPECT_TRUE(cfg.admissions[1].whitelist);
  // The hop's objects come first: -F is read before -L.
  ASSERT_EQ(cfg.bypasses.size(), 3u);
  EXPECT_EQ(cfg.chains[0].hops[0].bypass, "bypass-0");
  EXPECT_EQ(cfg.bypasses[0].matchers, std::vector<std::string>{"c.com"});
  EXPECT_EQ(cfg.services[0].bypass, "bypass-1");
  EXPECT_EQ(cfg.services[1].bypass, "bypass-2");
  EXPECT_TRUE(cfg.bypasses[2].whitelist);
  EXPECT_TRUE(cfg.chains[0].hops[1].bypass.empty());
  EXPECT_FALSE(cfg.chains[0].hops[0].metadata.contains("bypass"));
  EXPECT_FALSE(cfg.chains[0].hops[0].nodes[0].metadata.contains("bypass"));
  ASSERT_EQ(cfg.hosts.size(), 2u);
  EXPECT_EQ(cfg.chains[0].hops[0].hosts, "hosts-0");
  EXPECT_EQ(cfg.services[0].hosts, "hosts-1");
  ASSERT_EQ(cfg.hosts[1].mappings.size(), 2u);
  EXPECT_EQ(cfg.hosts[1].mappings[0], (HostMapping{.ip = "1.2.3.4", .hostname = "a.com"}));
  EXPECT_EQ(cfg.hosts[1].mappings[1], (HostMapping{.ip = "::1", .hostname = "b"}));
  ASSERT_EQ(cfg.limiters.size(), 1u);
  EXPECT_EQ(cfg.services[0].limiter, "limiter-0");
  EXPECT_EQ(cfg.limiters[0].limits, (std::vector<std::string>{"$ 1MB ", "$$  2KB"}));
  EXPECT_EQ(cfg.services[0].climiter, "climiter-0");
  EXPECT_EQ(cfg.climiters[0].limits, std::vector<std::string>{"$ 10"});
  EXPECT_EQ(cfg.services[0].rlimiter, "rlimiter-0");
  EXPECT_EQ(cfg.rlimiters[0].limits, std::vector<std::string>{"$ 1.5"});
  for (const char* key : {"admission", "bypass", "hosts", "limiter.in", "climiter", "rlimiter"})
    EXPECT_FALSE(cfg.services[0].handler.metadata.contains(key)) << key;
  const std::string arg = "http://:8080?resolver=1.1.1.1";
  EXPECT_EQ(error_of({arg}), "unsupported option \"resolver\" in -L " + arg + " (not implemented)");
  const std::string node = "http://h:1?resolver=1.1.1.1";
  EXPECT_EQ(error_of({}, {node}),
            "unsupported option \"resolver\" in -F " + node + " (not implemented)");
  // Scoped copies are plain metadata, as in GOST.
  EXPECT_EQ(error_of({"http://:8080?listener.bypass=x&service.bypass=y"}), "no error");
}

// ---- "cli: naming", multiple -L/-F ------------------------------------------------------------

TEST(ConfigCli, MultipleServicesAndHops) {
  auto cfg =
      parse_command_line({":8080", "", "socks5://:1080"}, {"http://a:1", "socks5://b:2,c:3"});
  ASSERT_EQ(cfg.services.size(), 2u);
  EXPECT_EQ(cfg.services[1].name, "service-1");
  EXPECT_EQ(cfg.services[0].handler.chain, "chain-0");
  EXPECT_EQ(cfg.services[1].handler.chain, "chain-0");
  ASSERT_EQ(cfg.chains.size(), 1u);
  ASSERT_EQ(cfg.chains[0].hops.size(), 2u);
  EXPECT_EQ(cfg.chains[0].hops[1].name, "hop-1");
  ASSERT_EQ(cfg.chains[0].hops[1].nodes.size(), 2u);
  EXPECT_EQ(cfg.chains[0].hops[1].nodes[1].name, "node-1");
  EXPECT_EQ(cfg.chains[0].hops[1].nodes[1].addr, "c:3");
  EXPECT_EQ(cfg.chains[0].hops[1].nodes[1].connector.type, "socks5");
}

TEST(ConfigCli, EmptyNodeIsInvalidCmd) { EXPECT_EQ(error_of({":8080"}, {"  "}), "invalid cmd"); }

TEST(ConfigCli, ReverseListenersGetTheChainOnTheListener) {
  auto cfg = parse_command_line({"rtcp://:2222/:22", "rudp://:53/h:53", "tcp://:1/h:2"},
                                {"relay://h:8420"});
  EXPECT_EQ(cfg.services[0].listener.chain, "chain-0");
  EXPECT_EQ(cfg.services[0].handler.chain, "");
  EXPECT_EQ(cfg.services[1].listener.chain, "chain-0");
  EXPECT_EQ(cfg.services[2].handler.chain, "chain-0");
}

// ---- "cli: forwarding" table --------------------------------------------------------------------

TEST(ConfigCli, ForwardTcp) {
  EXPECT_EQ(yaml({"tcp://:8080/192.168.1.1:80"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: tcp
    listener:
      type: tcp
    forwarder:
      nodes:
        - name: target-0
          addr: 192.168.1.1:80
)");
}

TEST(ConfigCli, ForwardTableRows) {
  struct Row {
    const char* url;
    const char* handler;
    const char* listener;
  };
  const Row rows[] = {{"udp://:5353/8.8.8.8:53", "udp", "udp"},
                      {"rtcp://:2222/:22", "rtcp", "rtcp"},
                      {"relay://:8420/h:80", "relay", "tcp"},
                      {"http://:8080/h:80", "tcp", "tcp"},
                      {"socks5+ws://:1080/h:80", "forward", "ws"}};
  for (const auto& row : rows) {
    auto cfg = parse_command_line({row.url}, {});
    EXPECT_EQ(cfg.services[0].handler.type, row.handler) << row.url;
    EXPECT_EQ(cfg.services[0].listener.type, row.listener) << row.url;
    ASSERT_TRUE(cfg.services[0].forwarder) << row.url;
    EXPECT_EQ(cfg.services[0].forwarder->nodes.size(), 1u);
    EXPECT_EQ(cfg.services[0].forwarder->nodes[0].name, "target-0");
  }
}

TEST(ConfigCli, ForwardTwoTargetsWithSelector) {
  EXPECT_EQ(yaml({"tcp://:8080/a:80,b:80?strategy=fifo"}), R"(services:
  - name: service-0
    addr: :8080
    handler:
      type: tcp
    listener:
      type: tcp
    forwarder:
      selector:
        strategy: fifo
        maxFails: 1
        failTimeout: 30s
      nodes:
        - name: target-0
          addr: a:80
        - name: target-1
          addr: b:80
)");
}

TEST(ConfigCli, ForwardPortRangesPairServicesWithTargets) {
  auto cfg = parse_command_line({"tcp://:8000-8001/h:9000-9001", "tcp://:7000-7001/one:1"}, {});
  ASSERT_EQ(cfg.services.size(), 4u);
  EXPECT_EQ(cfg.services[0].forwarder->nodes.size(), 1u);
  EXPECT_EQ(cfg.services[0].forwarder->nodes[0].addr, "h:9000");
  EXPECT_EQ(cfg.services[1].forwarder->nodes[0].addr, "h:9001");
  EXPECT_EQ(cfg.services[1].forwarder->nodes[0].name, "target-1");
  EXPECT_EQ(cfg.services[2].forwarder->nodes[0].addr, "one:1");  // one target is shared
  EXPECT_EQ(cfg.services[3].forwarder->nodes[0].addr, "one:1");
}

TEST(ConfigCli, StdioUsesHostAsTarget) {
  auto cfg = parse_command_line({"stdio://h:80"}, {});
  EXPECT_EQ(cfg.services[0].handler.type, "tcp");
  EXPECT_EQ(cfg.services[0].forwarder->nodes[0].addr, "h:80");
}

}  // namespace
}  // namespace gost::config
