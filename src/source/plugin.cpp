#include "source/plugin.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "proto/pht.hpp"
#include "source/fetch.hpp"

namespace gost::source {
namespace json = boost::json;

namespace {

// A question that got no usable answer: logged once per outage (source/outage.hpp).
void failed(const PluginOptions& o, std::string_view error) {
  if (o.outage) o.outage->failed(error);
}
void answered(const PluginOptions& o) {
  if (o.outage) o.outage->ok();
}

// The answer's object on a 200 whose body is a JSON object; nullopt for anything else (logged).
// A POST of `request` (GOST's plugins), or another method: a GET to `url` (no body), a PUT.
awaitable<std::optional<json::object>> exchange(const PluginOptions& o, std::string method,
                                                std::string url,
                                                std::optional<json::object> request) {
  HttpRequest r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.content_type = "application/json";  // GOST sets it on every plugin request
  if (request) r.body = json::serialize(*request);
  if (!o.token.empty()) r.authorization = "Bearer " + o.token;
  r.timeout = o.timeout;
  r.max_body = kMaxPluginAnswer;
  r.pool = o.pool;
  HttpResponse res;
  try {
    res = co_await http_request(r);
  } catch (const std::exception& e) {
    failed(o, error_text(e));
    co_return std::nullopt;
  }
  if (res.status != 200) {
    failed(o, fmt::format("HTTP status {}", res.status));
    co_return std::nullopt;
  }
  json::error_code ec;
  json::parse_options po;
  po.max_depth = 8;
  auto v = json::parse(res.body, ec, {}, po);
  if (ec || !v.is_object()) {
    failed(o, "the answer is not a JSON object");
    co_return std::nullopt;
  }
  co_return std::move(v.as_object());
}

awaitable<std::optional<json::object>> post(const PluginOptions& o, json::object request) {
  return exchange(o, "POST", o.addr, std::move(request));
}

// Go's json.Decode into a struct: a missing field keeps its zero value, a field of another type
// fails the decode (null is allowed and leaves the zero value).
template <class T>
bool field(const json::object& o, const char* name, T& out) {
  auto it = o.find(name);
  if (it == o.end() || it->value().is_null()) return true;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->value().is_bool()) return false;
    out = it->value().get_bool();
  } else {
    if (!it->value().is_string()) return false;
    out = std::string(it->value().get_string());
  }
  return true;
}

std::optional<json::object> parse_object(std::string_view body) {
  json::error_code ec;
  json::parse_options po;
  po.max_depth = 8;
  auto v = json::parse(body, ec, {}, po);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

namespace detail {

std::optional<AuthAnswer> decode_auth_answer(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::nullopt;
  AuthAnswer a;
  if (!field(*o, "ok", a.ok) || !field(*o, "id", a.id)) return std::nullopt;
  return a;
}

std::optional<bool> decode_ok_answer(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::nullopt;
  bool ok = false;
  if (!field(*o, "ok", ok)) return std::nullopt;
  return ok;
}

static std::optional<std::vector<std::string>> lookup_ips(const json::object& answer) {
  bool ok = false;
  if (!field(answer, "ok", ok)) return std::nullopt;
  std::vector<std::string> ips;
  auto it = answer.find("ips");
  if (it == answer.end() || it->value().is_null()) return ips;
  if (!it->value().is_array()) return std::nullopt;
  for (const auto& v : it->value().get_array()) {
    if (!v.is_string()) return std::nullopt;
    error_code ec;
    auto ip = asio::ip::make_address(std::string(v.get_string()), ec);
    if (ec || (ip.is_v6() && ip.to_v6().scope_id() != 0)) continue;  // Go's ParseIP has no zone
    if (ip.is_v6() && ip.to_v6().is_v4_mapped())
      ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
    ips.push_back(ip.to_string());
  }
  return ips;
}

std::optional<std::vector<std::string>> decode_lookup_answer(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::nullopt;
  return lookup_ips(*o);
}

static bool int64_field(const json::object& o, const char* name, std::int64_t& out) {
  auto it = o.find(name);
  if (it == o.end() || it->value().is_null()) return true;
  const auto& v = it->value();
  if (v.is_int64()) {
    out = v.get_int64();
    return true;
  }
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    out = static_cast<std::int64_t>(v.get_uint64());
    return true;
  }
  return false;  // a fraction, an exponent, a string...: Go's decode into int64 fails
}

static std::optional<TrafficAnswer> traffic_answer(const json::object& o) {
  TrafficAnswer a;
  if (!int64_field(o, "in", a.in) || !int64_field(o, "out", a.out)) return std::nullopt;
  return a;
}

std::optional<TrafficAnswer> decode_traffic_answer(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::nullopt;
  return traffic_answer(*o);
}

}  // namespace detail

namespace {
// An answer's "ok"; a field of another type is a failed question (Go's decode fails).
bool ok_field(const PluginOptions& o, const json::object& answer) {
  bool ok = false;
  if (!field(answer, "ok", ok)) {
    failed(o, "the answer does not decode");
    return false;
  }
  answered(o);
  return ok;
}

// A question whose answer is {"ok":bool} (admission, bypass, an ingress registration): false for
// no answer.
awaitable<bool> ok_question(const PluginOptions& o, std::string method, std::string url,
                            json::object request) {
  auto answer = co_await exchange(o, std::move(method), std::move(url), std::move(request));
  co_return answer&& ok_field(o, *answer);
}
}  // namespace

awaitable<std::optional<std::string>> HttpAuthPlugin::authenticate(std::string service,
                                                                   std::string user,
                                                                   std::string password,
                                                                   std::string client) const {
  json::object req;
  req["service"] = service;
  req["username"] = user;
  req["password"] = password;
  req["client"] = client;
  auto answer = co_await post(o_, std::move(req));
  if (!answer) co_return std::nullopt;
  auto a = detail::decode_auth_answer(json::serialize(*answer));
  if (!a) {
    failed(o_, "the answer does not decode");
    co_return std::nullopt;
  }
  answered(o_);
  if (!a->ok) co_return std::nullopt;
  co_return a->id;
}

awaitable<bool> plugin_admit(const PluginOptions& o, std::string service, std::string network,
                             std::string addr) {
  json::object req;
  req["service"] = service;
  req["network"] = network;
  req["addr"] = addr;
  return ok_question(o, "POST", o.addr, std::move(req));
}

awaitable<bool> plugin_bypass(const PluginOptions& o, std::string network, std::string addr,
                              std::string client, std::string host, std::string path) {
  json::object req;
  req["network"] = network;
  req["addr"] = addr;
  req["client"] = client;
  req["host"] = host;
  req["path"] = path;
  return ok_question(o, "POST", o.addr, std::move(req));
}

awaitable<std::vector<std::string>> plugin_lookup(const PluginOptions& o, std::string network,
                                                  std::string host, std::string client) {
  json::object req;
  req["network"] = network;
  req["host"] = host;
  req["client"] = client;
  auto answer = co_await post(o, std::move(req));
  if (!answer) co_return std::vector<std::string>{};
  auto ips = detail::lookup_ips(*answer);
  if (!ips) {
    failed(o, "the answer does not decode");
    co_return std::vector<std::string>{};
  }
  answered(o);
  co_return std::move(*ips);
}

awaitable<std::string> plugin_ingress_get(const PluginOptions& o, std::string service,
                                          std::string host) {
  // Go's url.Values.Encode: keys sorted, values query-escaped; `service` only when set.
  std::string url = o.addr + (o.addr.find('?') == std::string::npos ? "?" : "&");
  url += "host=" + proto::pht::query_escape(host);
  if (!service.empty()) url += "&service=" + proto::pht::query_escape(service);
  auto answer = co_await exchange(o, "GET", std::move(url), std::nullopt);
  if (!answer) co_return std::string();
  std::string endpoint;
  if (!field(*answer, "endpoint", endpoint)) {
    failed(o, "the answer does not decode");
    co_return std::string();
  }
  answered(o);
  co_return endpoint;
}

awaitable<bool> plugin_ingress_set(const PluginOptions& o, std::string service, std::string host,
                                   std::string endpoint) {
  json::object req;
  req["service"] = service;
  req["host"] = host;
  req["endpoint"] = endpoint;
  return ok_question(o, "PUT", o.addr, std::move(req));
}

}  // namespace gost::source

namespace gost::source {

awaitable<std::optional<TrafficAnswer>> plugin_traffic_limits(const PluginOptions& o,
                                                              TrafficQuestion q) {
  json::object req;
  req["service"] = q.service;
  req["scope"] = q.scope;
  req["network"] = q.network;
  req["addr"] = q.addr;
  req["client"] = q.client;
  req["src"] = q.src;
  auto answer = co_await post(o, std::move(req));
  if (!answer) co_return std::nullopt;
  auto a = detail::traffic_answer(*answer);
  if (!a) {
    failed(o, "the answer does not decode");
    co_return std::nullopt;
  }
  answered(o);
  co_return a;
}

}  // namespace gost::source
