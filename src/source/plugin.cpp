#include "source/plugin.hpp"

#include <boost/json.hpp>

#include "source/fetch.hpp"

namespace gost::source {
namespace json = boost::json;

namespace {

// The answer's object on a 200 whose body is a JSON object; nullopt for anything else.
awaitable<std::optional<json::object>> post(const PluginOptions& o, json::object request) {
  HttpRequest r;
  r.method = "POST";
  r.url = o.addr;
  r.content_type = "application/json";
  r.body = json::serialize(request);
  if (!o.token.empty()) r.authorization = "Bearer " + o.token;
  r.timeout = o.timeout;
  r.max_body = kMaxPluginAnswer;
  HttpResponse res;
  try {
    res = co_await http_request(r);
  } catch (const std::exception&) {
    co_return std::nullopt;
  }
  if (res.status != 200) co_return std::nullopt;
  json::error_code ec;
  json::parse_options po;
  po.max_depth = 8;
  auto v = json::parse(res.body, ec, {}, po);
  if (ec || !v.is_object()) co_return std::nullopt;
  co_return std::move(v.as_object());
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

}  // namespace detail

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
  if (!a || !a->ok) co_return std::nullopt;
  co_return a->id;
}

awaitable<bool> plugin_admit(const PluginOptions& o, std::string service, std::string network,
                             std::string addr) {
  json::object req;
  req["service"] = service;
  req["network"] = network;
  req["addr"] = addr;
  auto answer = co_await post(o, std::move(req));
  if (!answer) co_return false;
  bool ok = false;
  co_return field(*answer, "ok", ok) && ok;
}

awaitable<bool> plugin_bypass(const PluginOptions& o, std::string network, std::string addr,
                              std::string client, std::string host, std::string path) {
  json::object req;
  req["network"] = network;
  req["addr"] = addr;
  req["client"] = client;
  req["host"] = host;
  req["path"] = path;
  auto answer = co_await post(o, std::move(req));
  if (!answer) co_return false;
  bool ok = false;
  co_return field(*answer, "ok", ok) && ok;
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
  if (!ips) co_return std::vector<std::string>{};
  co_return std::move(*ips);
}

}  // namespace gost::source
