// GOST's `plugin` of type http (docs/ARCHITECTURE.md "Sources"; go-gost/x auth/plugin/http.go,
// admission/plugin/http.go, bypass/plugin/http.go, hosts/plugin/http.go): one JSON POST per
// question, only a 200 with a JSON object counts, anything else (an error, a timeout) refuses.
// Calls run on the caller's executor (a connection's worker): asynchronous, never blocking it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/auth.hpp"
#include "core/plugin.hpp"
#include "source/fetch.hpp"
#include "source/outage.hpp"

namespace gost::source {

struct PluginOptions {
  std::string addr;   // the URL
  std::string token;  // sent as "Authorization: Bearer <token>" (GOST sends none over HTTP)
  std::chrono::nanoseconds timeout{0};  // 0 = kDefaultHttpTimeout
  // Where a failed question (no answer, not a 200, an answer that does not decode) is logged,
  // once per outage (GOST logs nothing); null: not logged.
  std::shared_ptr<OutageLog> outage;
  // The plugin's idle connections (keep-alive, as GOST's http.Client); null: one per question.
  std::shared_ptr<HttpConnPool> pool;
};

// The answer's body limit (GOST reads it unbounded).
inline constexpr std::size_t kMaxPluginAnswer = 64 * 1024;

class HttpAuthPlugin : public AuthPlugin {
 public:
  explicit HttpAuthPlugin(PluginOptions o) : o_(std::move(o)) {}
  // {"service","username","password","client"} → {"ok":bool,"id":string}.
  awaitable<std::optional<std::string>> authenticate(std::string service, std::string user,
                                                     std::string password,
                                                     std::string client) const override;

 private:
  PluginOptions o_;
};

// {"service","network","addr"} → {"ok":bool}; no answer refuses.
awaitable<bool> plugin_admit(const PluginOptions& o, std::string service, std::string network,
                             std::string addr);
// {"network","addr","client","host","path"} → {"ok":bool}; no answer is false (not bypassed).
awaitable<bool> plugin_bypass(const PluginOptions& o, std::string network, std::string addr,
                              std::string client, std::string host, std::string path);
// {"network","host","client"} → {"ips":[...],"ok":bool}: the IPs that parse, whatever "ok" says
// (GOST's resolver ignores it: go-gost/x internal/net Resolve); empty for no answer.
awaitable<std::vector<std::string>> plugin_lookup(const PluginOptions& o, std::string network,
                                                  std::string host, std::string client);

// GOST's ingress plugin (go-gost/x ingress/plugin/http.go): GET <addr>?host=H&service=S →
// {"endpoint":string} (a 200 only; "" for no rule or no answer); a connector's registration:
// PUT {"service","host","endpoint"} → {"ok":bool}.
awaitable<std::string> plugin_ingress_get(const PluginOptions& o, std::string service,
                                          std::string host);
awaitable<bool> plugin_ingress_set(const PluginOptions& o, std::string service, std::string host,
                                   std::string endpoint);

// A traffic limiter's question (go-gost/x limiter/traffic/plugin/http.go):
// {"service","scope","network","addr","client","src"} → {"in":int,"out":int}, bytes per second
// (<= 0: no limit); nullopt for no answer.
struct TrafficAnswer {
  std::int64_t in = 0, out = 0;
  bool operator==(const TrafficAnswer&) const = default;
};
struct TrafficQuestion {
  std::string service{}, scope{}, network{}, addr{}, client{}, src{};
};
awaitable<std::optional<TrafficAnswer>> plugin_traffic_limits(const PluginOptions& o,
                                                              TrafficQuestion q);

class HttpAdmissionPlugin : public AdmissionPlugin {
 public:
  explicit HttpAdmissionPlugin(PluginOptions o) : o_(std::move(o)) {}
  awaitable<bool> admit(std::string service, std::string network, std::string addr) const override {
    return plugin_admit(o_, std::move(service), std::move(network), std::move(addr));
  }

 private:
  PluginOptions o_;
};

class HttpBypassPlugin : public BypassPlugin {
 public:
  explicit HttpBypassPlugin(PluginOptions o) : o_(std::move(o)) {}
  awaitable<bool> contains(std::string network, std::string addr, std::string client,
                           std::string host, std::string path) const override {
    return plugin_bypass(o_, std::move(network), std::move(addr), std::move(client),
                         std::move(host), std::move(path));
  }

 private:
  PluginOptions o_;
};

class HttpHostsPlugin : public HostsPlugin {
 public:
  explicit HttpHostsPlugin(PluginOptions o) : o_(std::move(o)) {}
  awaitable<std::vector<std::string>> lookup(std::string network, std::string host,
                                             std::string client) const override {
    return plugin_lookup(o_, std::move(network), std::move(host), std::move(client));
  }

 private:
  PluginOptions o_;
};

namespace detail {
// The answers' decoding, apart for the unit tests: nullopt when GOST's json.Decode would fail.
struct AuthAnswer {
  bool ok = false;
  std::string id;
};
std::optional<AuthAnswer> decode_auth_answer(std::string_view body);
std::optional<bool> decode_ok_answer(std::string_view body);
// A hosts answer's IPs (Go's net.ParseIP: an IPv4-mapped IPv6 address prints as IPv4); nullopt
// when the decode fails.
std::optional<std::vector<std::string>> decode_lookup_answer(std::string_view body);
// A traffic answer: "in" and "out" must be integers that fit an int64 (Go's decode into int64).
std::optional<TrafficAnswer> decode_traffic_answer(std::string_view body);
}  // namespace detail

}  // namespace gost::source
