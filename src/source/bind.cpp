#include "source/bind.hpp"

#include <fmt/format.h>

#include "core/address.hpp"

namespace gost::source {

using config::ConfigError;

Sources loader_sources(const config::Sources& s, const std::string& where,
                       const std::string& redis_type) {
  Sources out;
  out.reload = s.reload;
  if (s.file && !s.file->path.empty()) out.file = FileOptions{s.file->path};
  if (s.redis && !s.redis->addr.empty()) {
    auto hp = split_host_port(s.redis->addr);
    if (!hp || hp->host.empty() || hp->port.empty())
      throw ConfigError(fmt::format("{}: redis.addr \"{}\": want host:port", where, s.redis->addr));
    // Authers read a hash, admissions and bypasses a set, hosts and limiters a set or
    // (`type: list`) a list, ingresses a hash or (`type: set`) a set
    // (go-gost/x config/parsing/*/parse.go).
    std::string type = redis_type;
    if (type == "set-or-list") type = s.redis->type == "list" ? "list" : "set";
    if (type == "hash-or-set") type = s.redis->type == "set" ? "set" : "hash";
    out.redis = RedisOptions{.addr = s.redis->addr,
                             .db = s.redis->db,
                             .username = s.redis->username,
                             .password = s.redis->password,
                             .key = s.redis->key,
                             .type = type};
  }
  if (s.http && !s.http->url.empty()) {
    if (auto why = unsupported_url(s.http->url))
      throw ConfigError(fmt::format("{}: http.url \"{}\": {}", where, s.http->url, *why));
    out.http = HttpOptions{.url = s.http->url, .timeout = s.http->timeout};
  }
  return out;
}

std::optional<PluginOptions> http_plugin(const config::Sources& s, const std::string& where,
                                         const std::string& meanwhile) {
  if (!s.plugin) return std::nullopt;
  const auto& p = *s.plugin;
  std::string type = p.type.empty() ? "grpc" : p.type;
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type != "http")
    throw ConfigError(fmt::format(
        "{}: plugin type \"{}\" is not supported by this implementation (plugin types: http)",
        where, type));
  if (p.tls)
    throw ConfigError(fmt::format("{}: plugin.tls: not supported (http plugins only)", where));
  if (auto why = unsupported_url(p.addr))
    throw ConfigError(fmt::format("{}: plugin.addr \"{}\": {}", where, p.addr, *why));
  return PluginOptions{.addr = p.addr,
                       .token = p.token,
                       .timeout = p.timeout,
                       .outage = std::make_shared<OutageLog>(
                           log::root(), fmt::format("{}: plugin {}", where, p.addr), meanwhile),
                       .pool = std::make_shared<HttpConnPool>()};
}

Auther make_auther(const config::Auther& a) {
  const std::string where = fmt::format("auther {}", a.name);
  Auther auther;
  if (auto plugin = http_plugin(a.sources, where, "users are refused while it fails")) {
    auther.set_plugin(std::make_shared<HttpAuthPlugin>(std::move(*plugin)));
    return auther;
  }
  for (const auto& u : a.auths) auther.add(u.username, u.password);
  Sources sources = loader_sources(a.sources, where, "hash");
  if (sources.empty()) return auther;
  auto loader = Loader::start(std::move(sources), Format::pairs,
                              log::root().with({{"kind", "auther"}, {"auther", a.name}}),
                              [set = auther.loaded_setter()](const Data& d) { set(d.pairs); });
  auther.keep(std::move(loader));
  return auther;
}

}  // namespace gost::source
