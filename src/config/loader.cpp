#include "config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <iterator>
#include <sstream>

#include "config/go_text.hpp"
#include "config/json_check.hpp"

namespace gost::config {

namespace {

using detail::iequals;
using detail::PlainKind;

// ---- scalar conversion (yaml.v3 resolution + mapstructure weak typing) --------------------

struct Scalar {
  PlainKind kind = PlainKind::String;
  std::string text;
  detail::PlainScalar value;
};

Scalar scalar_of(const YAML::Node& n) {
  Scalar s;
  s.text = n.Scalar();
  const std::string& tag = n.Tag();
  const bool quoted = tag == "!" || tag == "tag:yaml.org,2002:str";
  if (!quoted) {
    s.value = detail::resolve_plain(s.text);
    s.kind = s.value.kind;
  }
  return s;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ConfigError(path + ": " + what);
}

bool is_null(const YAML::Node& n) { return !n.IsDefined() || n.IsNull(); }

bool is_empty(const YAML::Node& n) {
  if (is_null(n)) return true;
  if (n.IsScalar()) return n.Scalar().empty();
  return n.size() == 0;
}

std::string to_string(const YAML::Node& n, const std::string& path) {
  if (is_null(n)) return {};
  if (!n.IsScalar()) fail(path, "expected a string");
  const Scalar s = scalar_of(n);
  switch (s.kind) {
    case PlainKind::Null:
      return {};
    case PlainKind::Bool:
      return s.value.b ? "1" : "0";
    case PlainKind::Int:
      return std::to_string(s.value.i);
    case PlainKind::Float:
      return detail::go_format_float(s.value.f, 'f');
    default:
      return s.text;
  }
}

// A float where an integer is expected: truncated as Go's int64(f), but only when it fits (Go's
// conversion of an out-of-range float is implementation-defined, C++'s is undefined).
std::int64_t float_to_int(double f, const std::string& path, const char* what) {
  if (!std::isfinite(f) || f < -9223372036854775808.0 || f >= 9223372036854775808.0)
    fail(path, std::string(what) + " out of range: " + detail::go_format_float(f, 'g'));
  return static_cast<std::int64_t>(f);
}

std::int64_t to_int(const YAML::Node& n, const std::string& path) {
  if (is_null(n)) return 0;
  if (!n.IsScalar()) fail(path, "expected an integer");
  const Scalar s = scalar_of(n);
  switch (s.kind) {
    case PlainKind::Null:
      return 0;
    case PlainKind::Bool:
      return s.value.b ? 1 : 0;
    case PlainKind::Int:
      return s.value.i;
    case PlainKind::Float:
      return float_to_int(s.value.f, path, "integer");
    default:
      break;
  }
  if (s.text.empty()) return 0;
  if (auto v = detail::go_parse_int_base0(s.text)) return *v;
  fail(path, "invalid integer \"" + s.text + "\"");
}

bool to_bool(const YAML::Node& n, const std::string& path) {
  if (is_null(n)) return false;
  if (!n.IsScalar()) fail(path, "expected a boolean");
  const Scalar s = scalar_of(n);
  switch (s.kind) {
    case PlainKind::Null:
      return false;
    case PlainKind::Bool:
      return s.value.b;
    case PlainKind::Int:
      return s.value.i != 0;
    case PlainKind::Float:
      return s.value.f != 0;
    default:
      break;
  }
  if (s.text.empty()) return false;
  if (auto v = detail::go_parse_bool(s.text)) return *v;
  fail(path, "invalid boolean \"" + s.text + "\"");
}

// Struct durations: a Go duration string or an integer number of nanoseconds.
std::chrono::nanoseconds to_duration(const YAML::Node& n, const std::string& path) {
  if (is_null(n)) return {};
  if (!n.IsScalar()) fail(path, "expected a duration");
  const Scalar s = scalar_of(n);
  switch (s.kind) {
    case PlainKind::Null:
      return {};
    case PlainKind::Int:
      return std::chrono::nanoseconds(s.value.i);
    case PlainKind::Float:
      return std::chrono::nanoseconds(float_to_int(s.value.f, path, "duration"));
    default:
      break;
  }
  if (auto d = parse_go_duration(s.text)) return *d;
  fail(path, "invalid duration \"" + s.text + "\"");
}

// A list of strings; a single string is split at commas (viper's StringToSliceHook).
std::vector<std::string> to_strings(const YAML::Node& n, const std::string& path) {
  std::vector<std::string> out;
  if (is_null(n)) return out;
  if (n.IsMap()) fail(path, "expected a list");
  if (n.IsSequence()) {
    for (std::size_t i = 0; i < n.size(); ++i) {
      out.push_back(to_string(n[i], path + "[" + std::to_string(i) + "]"));
    }
    return out;
  }
  if (scalar_of(n).kind != PlainKind::String) return {to_string(n, path)};
  std::string text = n.Scalar();
  if (text.empty()) return out;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// ---- the reader -----------------------------------------------------------------------------

// A mapping node plus its path, with case-insensitive field lookup.
class Obj {
 public:
  Obj(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {
    if (!is_null(node_) && !node_.IsMap()) fail(path_, "expected a mapping");
  }

  YAML::Node get(std::string_view key) const {
    YAML::Node found;
    if (is_null(node_)) return found;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (it->first.IsScalar() && iequals(it->first.Scalar(), key)) found.reset(it->second);
    }
    return found;
  }
  bool has(std::string_view key) const { return !is_null(get(key)); }
  std::string path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  std::string str(std::string_view key) const { return to_string(get(key), path(key)); }
  int integer(std::string_view key) const { return static_cast<int>(to_int(get(key), path(key))); }
  bool boolean(std::string_view key) const { return to_bool(get(key), path(key)); }
  std::chrono::nanoseconds duration(std::string_view key) const {
    return to_duration(get(key), path(key));
  }
  std::vector<std::string> strings(std::string_view key) const {
    return to_strings(get(key), path(key));
  }
  Obj sub(std::string_view key) const { return Obj(get(key), path(key)); }

  // Keys GOST understands but this implementation does not: refuse rather than ignore.
  void reject(std::initializer_list<std::string_view> keys) const {
    for (auto key : keys) {
      if (!is_empty(get(key))) fail(path(key), "not supported");
    }
  }

  // Each element of a list of mappings (a single mapping counts as a one-element list).
  template <typename F>
  void each(std::string_view key, F&& fn) const {
    const YAML::Node n = get(key);
    if (is_null(n)) return;
    if (n.IsMap()) {
      fn(Obj(n, path(key) + "[0]"));
      return;
    }
    if (!n.IsSequence()) fail(path(key), "expected a list");
    for (std::size_t i = 0; i < n.size(); ++i) {
      fn(Obj(n[i], path(key) + "[" + std::to_string(i) + "]"));
    }
  }

 private:
  YAML::Node node_;
  std::string path_;
};

class Loader {
 public:
  explicit Loader(bool lower_keys) : lower_keys_(lower_keys) {}
  Service service_object(const Obj& o) const { return service(o); }
  Chain chain_object(const Obj& o) const { return chain(o); }
  Hop hop_object(const Obj& o) const { return hop(o); }
  Auther auther_object(const Obj& o) const { return auther(o); }
  Admission admission_object(const Obj& o) const { return admission(o); }
  Bypass bypass_object(const Obj& o) const { return bypass(o); }
  Hosts hosts_object(const Obj& o) const { return hosts(o); }
  Limiter limiter_object(const Obj& o) const { return limiter(o); }

  Config config(const YAML::Node& root) const {
    if (is_null(root)) return {};
    if (!root.IsMap()) throw ConfigError("configuration: expected a mapping at the top level");
    const Obj top(root, "");
    top.reject({"resolvers", "routers", "sds", "recorders", "rewriters", "caches", "quotas",
                "observers", "profiling"});
    Config cfg;
    top.each("services", [&](const Obj& o) { cfg.services.push_back(service(o)); });
    top.each("chains", [&](const Obj& o) { cfg.chains.push_back(chain(o)); });
    top.each("hops", [&](const Obj& o) { cfg.hops.push_back(hop(o)); });
    top.each("authers", [&](const Obj& o) { cfg.authers.push_back(auther(o)); });
    top.each("admissions", [&](const Obj& o) { cfg.admissions.push_back(admission(o)); });
    top.each("bypasses", [&](const Obj& o) { cfg.bypasses.push_back(bypass(o)); });
    top.each("hosts", [&](const Obj& o) { cfg.hosts.push_back(hosts(o)); });
    top.each("ingresses", [&](const Obj& o) { cfg.ingresses.push_back(ingress(o)); });
    top.each("limiters", [&](const Obj& o) { cfg.limiters.push_back(limiter(o)); });
    top.each("climiters", [&](const Obj& o) { cfg.climiters.push_back(limiter(o)); });
    top.each("rlimiters", [&](const Obj& o) { cfg.rlimiters.push_back(limiter(o)); });
    top.each("loggers", [&](const Obj& o) {
      cfg.loggers.push_back(NamedLogger{.name = o.str("name"), .log = log(o.sub("log"))});
    });
    if (top.has("tls")) cfg.tls = tls(top.sub("tls"));
    if (top.has("log")) cfg.log = log(top.sub("log"));
    if (top.has("api")) cfg.api = api(top.sub("api"));
    if (top.has("metrics")) cfg.metrics = metrics(top.sub("metrics"));
    return cfg;
  }

 private:
  bool lower_keys_;

  std::string key_text(const YAML::Node& k) const {
    std::string key = k.IsScalar() ? k.Scalar() : std::string();
    return lower_keys_ ? detail::ascii_lower(key) : key;
  }

  Value value(const YAML::Node& n) const {
    if (is_null(n)) return {};
    if (n.IsSequence()) {
      ValueList list;
      for (const auto& item : n) list.push_back(value(item));
      return list;
    }
    if (n.IsMap()) {
      Metadata map;
      for (auto it = n.begin(); it != n.end(); ++it)
        map.set(key_text(it->first), value(it->second));
      return ValueMap(std::move(map.entries));
    }
    const Scalar s = scalar_of(n);
    switch (s.kind) {
      case PlainKind::Null:
        return {};
      case PlainKind::Bool:
        return s.value.b;
      case PlainKind::Int:
        return s.value.i;
      case PlainKind::Float:
        return s.value.f;
      default:
        return s.text;
    }
  }

  Metadata metadata(const Obj& o) const {
    const YAML::Node n = o.get("metadata");
    Metadata md;
    if (is_null(n)) return md;
    if (!n.IsMap()) fail(o.path("metadata"), "expected a mapping");
    for (auto it = n.begin(); it != n.end(); ++it) md.set(key_text(it->first), value(it->second));
    return md;
  }

  static Auth auth(const Obj& o) {
    o.reject({"file"});
    Auth a;
    a.username = o.str("username");
    a.password = o.str("password");
    return a;
  }

  static std::optional<Auth> optional_auth(const Obj& o) {
    if (!o.has("auth")) return std::nullopt;
    return auth(o.sub("auth"));
  }

  static TLS tls(const Obj& o) {
    TLS t;
    t.certFile = o.str("certFile");
    t.keyFile = o.str("keyFile");
    t.caFile = o.str("caFile");
    t.secure = o.boolean("secure");
    t.serverName = o.str("serverName");
    const Obj options = o.sub("options");
    t.options.minVersion = options.str("minVersion");
    t.options.maxVersion = options.str("maxVersion");
    t.options.cipherSuites = options.strings("cipherSuites");
    t.options.alpn = options.strings("alpn");
    t.validity = o.duration("validity");
    t.commonName = o.str("commonName");
    t.organization = o.str("organization");
    t.rejectUnknownSNI = o.boolean("rejectUnknownSNI");
    t.serverNames = o.strings("serverNames");
    return t;
  }

  static std::optional<TLS> optional_tls(const Obj& o) {
    if (!o.has("tls")) return std::nullopt;
    return tls(o.sub("tls"));
  }

  static std::optional<Selector> selector(const Obj& o) {
    if (!o.has("selector")) return std::nullopt;
    const Obj s = o.sub("selector");
    s.reject({"maxLatency"});
    return Selector{.strategy = s.str("strategy"),
                    .maxFails = s.integer("maxFails"),
                    .failTimeout = s.duration("failTimeout")};
  }

  Handler handler(const Obj& o) const {
    o.reject({"chainGroup", "observer"});
    Handler h{.type = o.str("type"),
              .retries = o.integer("retries"),
              .chain = o.str("chain"),
              .auther = o.str("auther"),
              .authers = o.strings("authers"),
              .auth = optional_auth(o),
              .tls = optional_tls(o),
              .limiter = o.str("limiter"),
              .metadata = metadata(o)};
    if (h.type.empty()) h.type = "auto";
    return h;
  }

  Listener listener(const Obj& o) const {
    o.reject({"chainGroup"});
    Listener l{.type = o.str("type"),
               .chain = o.str("chain"),
               .auther = o.str("auther"),
               .authers = o.strings("authers"),
               .auth = optional_auth(o),
               .tls = optional_tls(o),
               .metadata = metadata(o)};
    if (l.type.empty()) l.type = "tcp";
    return l;
  }

  ForwardNode forward_node(const Obj& o) const {
    o.reject({"protocol", "host", "path", "filter", "matcher", "auth", "http", "tls", "probe"});
    return ForwardNode{.name = o.str("name"),
                       .addr = o.str("addr"),
                       .network = o.str("network"),
                       .bypass = o.str("bypass"),
                       .bypasses = o.strings("bypasses"),
                       .metadata = metadata(o)};
  }

  Forwarder forwarder(const Obj& o) const {
    o.reject({"hopGroup"});
    Forwarder f;
    f.name = o.str("name");
    f.hop = o.str("hop");
    f.selector = selector(o);
    o.each("nodes", [&](const Obj& n) { f.nodes.push_back(forward_node(n)); });
    return f;
  }

  Service service(const Obj& o) const {
    o.reject({"resolver", "quotas", "observer", "rewriter", "recorders", "cache", "interface",
              "sockopts"});
    Service s;
    s.name = o.str("name");
    s.addr = o.str("addr");
    s.admission = o.str("admission");
    s.admissions = o.strings("admissions");
    s.bypass = o.str("bypass");
    s.bypasses = o.strings("bypasses");
    s.hosts = o.str("hosts");
    s.limiter = o.str("limiter");
    s.climiter = o.str("climiter");
    s.rlimiter = o.str("rlimiter");
    s.logger = o.str("logger");
    s.loggers = o.strings("loggers");
    s.handler = handler(o.sub("handler"));
    s.listener = listener(o.sub("listener"));
    if (o.has("forwarder")) s.forwarder = forwarder(o.sub("forwarder"));
    s.metadata = metadata(o);
    return s;
  }

  Connector connector(const Obj& o, const char* default_type) const {
    Connector c{.type = o.str("type"),
                .auth = optional_auth(o),
                .tls = optional_tls(o),
                .metadata = metadata(o)};
    if (c.type.empty()) c.type = default_type;
    return c;
  }

  Node node(const Obj& o) const {
    o.reject({"resolver", "interface", "netns", "sockopts", "filter", "matcher", "http", "tls",
              "probe"});
    Node n;
    n.name = o.str("name");
    n.addr = o.str("addr");
    n.network = o.str("network");
    n.bypass = o.str("bypass");
    n.bypasses = o.strings("bypasses");
    n.hosts = o.str("hosts");
    n.connector = connector(o.sub("connector"), "http");
    n.dialer = connector(o.sub("dialer"), "tcp");
    n.metadata = metadata(o);
    return n;
  }

  Hop hop(const Obj& o) const {
    o.reject({"resolver", "reload", "file", "redis", "http", "plugin", "interface", "sockopts"});
    Hop h;
    h.name = o.str("name");
    h.selector = selector(o);
    h.bypass = o.str("bypass");
    h.bypasses = o.strings("bypasses");
    h.hosts = o.str("hosts");
    o.each("nodes", [&](const Obj& n) { h.nodes.push_back(node(n)); });
    h.metadata = metadata(o);
    return h;
  }

  Chain chain(const Obj& o) const {
    Chain c;
    c.name = o.str("name");
    o.each("hops", [&](const Obj& h) { c.hops.push_back(hop(h)); });
    c.metadata = metadata(o);
    return c;
  }

  static Auther auther(const Obj& o) {
    Auther a;
    a.name = o.str("name");
    o.each("auths", [&](const Obj& x) { a.auths.push_back(auth(x)); });
    a.sources = sources(o);
    return a;
  }

  // reload, file, redis, http, plugin (docs/PROTOCOLS.md "config: controls").
  static Sources sources(const Obj& o) {
    Sources s;
    s.reload = o.duration("reload");
    if (o.has("file")) s.file = FileSource{.path = o.sub("file").str("path")};
    if (o.has("redis")) {
      const Obj r = o.sub("redis");
      s.redis = RedisSource{.addr = r.str("addr"),
                            .db = r.integer("db"),
                            .username = r.str("username"),
                            .password = r.str("password"),
                            .key = r.str("key"),
                            .type = r.str("type")};
    }
    if (o.has("http")) {
      const Obj h = o.sub("http");
      s.http = HttpSource{.url = h.str("url"), .timeout = h.duration("timeout")};
    }
    if (o.has("plugin")) {
      const Obj p = o.sub("plugin");
      s.plugin = Plugin{.type = p.str("type"),
                        .addr = p.str("addr"),
                        .tls = optional_tls(p),
                        .timeout = p.duration("timeout"),
                        .token = p.str("token")};
    }
    return s;
  }

  static Admission admission(const Obj& o) {
    return Admission{.name = o.str("name"),
                     .reverse = o.boolean("reverse"),
                     .whitelist = o.boolean("whitelist"),
                     .matchers = o.strings("matchers"),
                     .sources = sources(o)};
  }

  static Bypass bypass(const Obj& o) {
    return Bypass{.name = o.str("name"),
                  .reverse = o.boolean("reverse"),
                  .whitelist = o.boolean("whitelist"),
                  .network = o.str("network"),
                  .matchers = o.strings("matchers"),
                  .sources = sources(o)};
  }

  static Hosts hosts(const Obj& o) {
    Hosts h;
    h.name = o.str("name");
    o.each("mappings", [&](const Obj& m) {
      h.mappings.push_back(HostMapping{
          .ip = m.str("ip"), .hostname = m.str("hostname"), .aliases = m.strings("aliases")});
    });
    h.sources = sources(o);
    return h;
  }

  // Inline rules, file/redis/http sources, or GOST's ingress plugin (type http).
  static Ingress ingress(const Obj& o) {
    Ingress in;
    in.name = o.str("name");
    o.each("rules", [&](const Obj& r) {
      in.rules.push_back(IngressRule{.hostname = r.str("hostname"), .endpoint = r.str("endpoint")});
    });
    in.sources = sources(o);
    return in;
  }

  static Limiter limiter(const Obj& o) {
    return Limiter{.name = o.str("name"), .limits = o.strings("limits"), .sources = sources(o)};
  }

  static Log log(const Obj& o) {
    Log l{.output = o.str("output"), .level = o.str("level"), .format = o.str("format")};
    if (o.has("rotation")) {
      const Obj r = o.sub("rotation");
      l.rotation = Rotation{.maxSize = r.integer("maxSize"),
                            .maxAge = r.integer("maxAge"),
                            .maxBackups = r.integer("maxBackups"),
                            .localTime = r.boolean("localTime"),
                            .compress = r.boolean("compress")};
    }
    return l;
  }

  static Api api(const Obj& o) {
    return Api{.addr = o.str("addr"),
               .pathPrefix = o.str("pathPrefix"),
               .accesslog = o.boolean("accesslog"),
               .auth = optional_auth(o),
               .auther = o.str("auther")};
  }

  static Metrics metrics(const Obj& o) {
    return Metrics{.addr = o.str("addr"),
                   .path = o.str("path"),
                   .auth = optional_auth(o),
                   .auther = o.str("auther"),
                   .userLabel = o.boolean("userLabel")};
  }
};

Config load_text(std::string_view text, bool lower_keys) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("invalid configuration: ") + e.what());
  }
  return Loader(lower_keys).config(root);
}

bool is_remote_url(const std::string& source) {
  const std::string lower = detail::ascii_lower(source);
  for (std::string_view scheme : {"http://", "https://"}) {
    if (lower.rfind(scheme, 0) == 0 && lower.size() > scheme.size() &&
        lower[scheme.size()] != '/') {
      return true;
    }
  }
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError("cannot read config file \"" + path + "\": " + std::strerror(errno));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

Config load_file(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  const bool yaml = ext == ".yaml" || ext == ".yml";
  if (!yaml && ext != ".json") {
    throw ConfigError("config file \"" + path + "\": unsupported format \"" + ext +
                      "\" (use .yaml, .yml or .json)");
  }
  const std::string text = read_file(path);
  try {
    return load_text(text, true);
  } catch (const ConfigError& e) {
    throw ConfigError("config file \"" + path + "\": " + e.what());
  }
}

}  // namespace

// A request body of the web API: one JSON object (metadata keys keep their case, as Go's
// encoding/json does). Like GOST, a body that does not decode counts as an empty object.
YAML::Node api_object(std::string_view json) {
  // Only well-formed JSON no deeper than a configuration object goes on to yaml-cpp, whose
  // recursive descent a body of a million '[' would take the stack with.
  if (!detail::json_object_within(json, 32)) return YAML::Node(YAML::NodeType::Map);
  try {
    YAML::Node n = YAML::Load(std::string(json));
    if (n.IsMap()) return n;
  } catch (const YAML::Exception&) {
  }
  return YAML::Node(YAML::NodeType::Map);
}

Config load_yaml(std::string_view text) { return load_text(text, true); }

Service load_service_object(std::string_view json) {
  return Loader(false).service_object(Obj(api_object(json), ""));
}
Chain load_chain_object(std::string_view json) {
  return Loader(false).chain_object(Obj(api_object(json), ""));
}
Hop load_hop_object(std::string_view json) {
  return Loader(false).hop_object(Obj(api_object(json), ""));
}
Auther load_auther_object(std::string_view json) {
  return Loader(false).auther_object(Obj(api_object(json), ""));
}
Admission load_admission_object(std::string_view json) {
  return Loader(false).admission_object(Obj(api_object(json), ""));
}
Bypass load_bypass_object(std::string_view json) {
  return Loader(false).bypass_object(Obj(api_object(json), ""));
}
Hosts load_hosts_object(std::string_view json) {
  return Loader(false).hosts_object(Obj(api_object(json), ""));
}
Limiter load_limiter_object(std::string_view json) {
  return Loader(false).limiter_object(Obj(api_object(json), ""));
}

Config load_json(std::string_view text) { return load_text(text, true); }

Config load_inline_json(std::string_view text) { return load_text(text, false); }

Config load_source(const std::string& source) {
  if (source == "-") {
    const std::string text{std::istreambuf_iterator<char>(std::cin),
                           std::istreambuf_iterator<char>()};
    try {
      return load_text(text, true);
    } catch (const ConfigError& e) {
      throw ConfigError(std::string("config from stdin: ") + e.what());
    }
  }
  if (source.size() >= 2 && source.front() == '{' && source.back() == '}') {
    return load_inline_json(source);
  }
  if (is_remote_url(source)) {
    throw ConfigError("remote configuration (URL) is not supported: " + source);
  }
  return load_file(source);
}

std::optional<std::string> find_default_config() {
  std::vector<std::string> dirs = {"/etc/gost/"};
  if (const char* home = std::getenv("HOME"); home && *home) {
    dirs.push_back(std::string(home) + "/.gost/");
  }
  dirs.push_back("./");
  for (const auto& dir : dirs) {
    for (const char* ext : {"json", "yaml", "yml"}) {
      const std::string path = dir + "gost." + ext;
      std::error_code ec;
      if (std::filesystem::is_regular_file(path, ec)) return path;
    }
  }
  return std::nullopt;
}

}  // namespace gost::config
