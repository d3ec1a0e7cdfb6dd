// The in-memory configuration model (docs/PROTOCOLS.md "config"). One model, three faces: built
// from -L/-F URLs (url_parser), loaded from YAML/JSON (loader), printed with -O (printer). Field
// order in each struct is the print order of docs/PROTOCOLS.md "config: output order"; empty
// optional fields are not printed.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gost::config {

// A metadata value keeps the type it was given (command-line values are always strings), so that
// -O json prints "true" for a URL query value and true for a YAML boolean, as GOST does.
struct Value;
using ValueList = std::vector<Value>;
using ValueMap =
    std::vector<std::pair<std::string, Value>>;  // insertion order; sorted when printed

struct Value {
  std::variant<std::monostate, std::string, bool, std::int64_t, double, ValueList, ValueMap> v;

  Value() = default;
  Value(std::string s) : v(std::move(s)) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(bool b) : v(b) {}
  Value(std::int64_t i) : v(i) {}
  Value(int i) : v(static_cast<std::int64_t>(i)) {}
  Value(double d) : v(d) {}
  Value(ValueList l) : v(std::move(l)) {}
  Value(ValueMap m) : v(std::move(m)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v); }
  bool is_scalar() const { return !is_null() && !is_list() && !is_map(); }
  bool is_list() const { return std::holds_alternative<ValueList>(v); }
  bool is_map() const { return std::holds_alternative<ValueMap>(v); }
  // Scalar rendered as text ("" for null/list/map): "true", "10", "1.5", "abc".
  std::string as_string() const;
  bool operator==(const Value&) const = default;
};

// Metadata: a map with case-insensitive lookup; keys keep their spelling for printing.
class Metadata {
 public:
  std::vector<std::pair<std::string, Value>> entries;

  bool empty() const { return entries.empty(); }
  const Value* find(std::string_view key) const;  // case-insensitive
  // The first of `keys` that is set — GOST's aliases, e.g. {"ws.path", "path"} — and its name.
  const Value* find_first(std::initializer_list<std::string_view> keys,
                          std::string_view* which = nullptr) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Sets (replacing a case-insensitively equal key, keeping its position) or appends.
  void set(std::string key, Value value);
  bool erase(std::string_view key);  // case-insensitive; true if something was removed

  // Typed getters, following GOST's metadata conversion rules (docs/PROTOCOLS.md
  // "config: reading rules"): bool from true/false/1/0/t/f (any case) or non-zero int; int from
  // decimal strings or numbers; durations from Go duration strings ("1m30s") or integers/numeric
  // strings meaning seconds.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::int64_t> get_int(std::string_view key) const;
  std::optional<std::chrono::nanoseconds> get_duration(std::string_view key) const;
  // A list value, or a comma-separated string split into elements (whitespace trimmed).
  std::optional<std::vector<std::string>> get_strings(std::string_view key) const;
  bool operator==(const Metadata&) const = default;
};

// Records every metadata key looked up while it is alive (start-up only: components read their
// options when they are built). A key nobody looked up is unknown to every component of the
// service or node (a typo, or not a GOST key): the program warns about it.
class MetadataKeyLog {
 public:
  MetadataKeyLog();
  ~MetadataKeyLog();
  MetadataKeyLog(const MetadataKeyLog&) = delete;
  MetadataKeyLog& operator=(const MetadataKeyLog&) = delete;
  bool seen(std::string_view key) const;  // case-insensitive
  void record(std::string_view key);

 private:
  std::vector<std::string> keys_;  // lower case
  mutable std::mutex mu_;
};

struct Auth {
  std::string username;
  std::string password;
  std::string file;
  bool empty() const { return username.empty() && password.empty() && file.empty(); }
  bool operator==(const Auth&) const = default;
};

struct TLSOptions {
  std::string minVersion, maxVersion;
  std::vector<std::string> cipherSuites, alpn;
  bool empty() const {
    return minVersion.empty() && maxVersion.empty() && cipherSuites.empty() && alpn.empty();
  }
  bool operator==(const TLSOptions&) const = default;
};

struct TLS {
  std::string certFile, keyFile, caFile;
  bool secure = false;
  std::string serverName;
  TLSOptions options;
  std::chrono::nanoseconds validity{0};
  std::string commonName, organization;
  bool rejectUnknownSNI = false;
  std::vector<std::string> serverNames;
  bool operator==(const TLS&) const = default;
};

struct Selector {
  std::string strategy;  // printed always (when the selector exists)
  int maxFails = 0;
  std::chrono::nanoseconds failTimeout{0};
  bool operator==(const Selector&) const = default;
};

struct Handler {
  std::string type;  // printed always
  int retries = 0;
  std::string chain;
  std::string auther;
  std::vector<std::string> authers;
  std::optional<Auth> auth;
  std::optional<TLS> tls;
  std::string limiter;  // a traffic limiter (handler level)
  Metadata metadata;
  bool operator==(const Handler&) const = default;
};

struct Listener {
  std::string type;  // printed always
  std::string chain;
  std::string auther;
  std::vector<std::string> authers;
  std::optional<Auth> auth;
  std::optional<TLS> tls;
  Metadata metadata;
  bool operator==(const Listener&) const = default;
};

struct ForwardNode {
  std::string name;
  std::string addr;
  std::string network;
  std::string bypass;  // the node is not selected when its bypass covers its address
  std::vector<std::string> bypasses;
  Metadata metadata;
  bool operator==(const ForwardNode&) const = default;
};

struct Forwarder {
  std::string name;
  std::string hop;
  std::optional<Selector> selector;
  std::vector<ForwardNode> nodes;  // printed always
  bool operator==(const Forwarder&) const = default;
};

// A running service as the web API shows it (docs/PROTOCOLS.md "observability: web API"): never
// loaded, never part of what a reload compares.
struct ServiceStatus {
  std::int64_t createTime = 0;                               // unix seconds
  std::string state;                                         // "running"
  std::vector<std::pair<std::int64_t, std::string>> events;  // (unix seconds, message)
  bool operator==(const ServiceStatus&) const = default;
};
struct Service {
  std::string name;  // printed always
  std::string addr;
  // Named controls (docs/PROTOCOLS.md "config: controls"): client admission, target bypass,
  // host mapping, traffic / connection / request-rate limiters.
  std::string admission;
  std::vector<std::string> admissions;
  std::string bypass;
  std::vector<std::string> bypasses;
  std::string hosts;
  std::string limiter;
  std::string climiter;
  std::string rlimiter;
  std::string logger;                // a named logger (docs/PROTOCOLS.md "observability: logging")
  std::vector<std::string> loggers;  // several: every line goes to each of them
  Handler handler;    // printed always (type defaults to "auto" when loaded without one)
  Listener listener;  // printed always (type defaults to "tcp")
  std::optional<Forwarder> forwarder;
  Metadata metadata;
  std::optional<ServiceStatus> status;
  bool operator==(const Service&) const = default;
};

struct Connector {   // also used for dialer
  std::string type;  // printed always
  std::optional<Auth> auth;
  std::optional<TLS> tls;
  Metadata metadata;
  bool operator==(const Connector&) const = default;
};
using Dialer = Connector;

struct Node {
  std::string name;  // printed always
  std::string addr;
  std::string network;
  std::string bypass;  // the node is not selected when the target matches
  std::vector<std::string> bypasses;
  std::string hosts;    // resolves the node's own address
  Connector connector;  // printed when the node is inline (not a reference)
  Dialer dialer;
  Metadata metadata;
  bool operator==(const Node&) const = default;
};

struct Hop {
  std::string name;  // printed always
  std::optional<Selector> selector;
  std::string bypass;  // the chain is cut before this hop when the target matches
  std::vector<std::string> bypasses;
  std::string hosts;        // inherited by nodes that have none
  std::vector<Node> nodes;  // empty = reference to a top-level hop of the same name
  Metadata metadata;
  bool operator==(const Hop&) const = default;
};

struct Chain {
  std::string name;       // printed always
  std::vector<Hop> hops;  // printed always
  Metadata metadata;
  bool operator==(const Chain&) const = default;
};

// Dynamic sources of a named object's items (docs/PROTOCOLS.md "config: controls"): re-read
// every `reload` period and added to the inline items.
struct FileSource {
  std::string path;  // printed always
  bool operator==(const FileSource&) const = default;
};
struct RedisSource {
  std::string addr;  // printed always
  int db = 0;
  std::string username, password, key;
  std::string type;  // "set" (default) or "list"; hosts/authers: hash
  bool operator==(const RedisSource&) const = default;
};
struct HttpSource {
  std::string url;  // printed always
  std::chrono::nanoseconds timeout{0};
  bool operator==(const HttpSource&) const = default;
};
struct Plugin {
  std::string type;  // printed always: grpc (default) or http
  std::string addr;  // printed always
  std::optional<TLS> tls;
  std::chrono::nanoseconds timeout{0};
  std::string token;
  bool operator==(const Plugin&) const = default;
};
struct Sources {
  std::chrono::nanoseconds reload{0};
  std::optional<FileSource> file;
  std::optional<RedisSource> redis;
  std::optional<HttpSource> http;
  std::optional<Plugin> plugin;
  bool empty() const { return reload.count() == 0 && !file && !redis && !http && !plugin; }
  bool operator==(const Sources&) const = default;
};

struct Auther {
  std::string name;  // printed always
  std::vector<Auth> auths;
  Sources sources;
  bool operator==(const Auther&) const = default;
};

// `admissions[]`: which clients a service accepts (matchers: IP, CIDR, host name).
struct Admission {
  std::string name;      // printed always
  bool reverse = false;  // GOST's deprecated spelling of whitelist
  bool whitelist = false;
  std::vector<std::string> matchers;
  Sources sources;
  bool operator==(const Admission&) const = default;
};

// `bypasses[]`: which targets a service, hop or node does not carry.
struct Bypass {
  std::string name;  // printed always
  bool reverse = false;
  bool whitelist = false;
  std::string network;  // "tcp" / "udp": only targets of that network match
  std::vector<std::string> matchers;
  Sources sources;
  bool operator==(const Bypass&) const = default;
};

struct HostMapping {
  std::string ip;        // printed always
  std::string hostname;  // printed always
  std::vector<std::string> aliases;
  bool operator==(const HostMapping&) const = default;
};
// `hosts[]`: static host name -> IP mappings.
struct Hosts {
  std::string name;  // printed always
  std::vector<HostMapping> mappings;
  Sources sources;
  bool operator==(const Hosts&) const = default;
};

// `ingresses[]`: hostname -> endpoint (tunnel ID) rules of the tunnel handler (docs/PROTOCOLS.md
// "tunnel: ingress"), named by its `ingress` option.
struct IngressRule {
  std::string hostname;  // printed always
  std::string endpoint;  // printed always
  bool operator==(const IngressRule&) const = default;
};
struct Ingress {
  std::string name;  // printed always
  std::vector<IngressRule> rules;
  Sources sources;
  bool operator==(const Ingress&) const = default;
};

// `limiters[]`, `climiters[]`, `rlimiters[]`: limit lines "<scope> <value...>".
struct Limiter {
  std::string name;  // printed always
  std::vector<std::string> limits;
  Sources sources;
  bool operator==(const Limiter&) const = default;
};

// Size-based rotation of a log file (lumberjack's options, docs/PROTOCOLS.md
// "observability: logging").
struct Rotation {
  int maxSize = 0;     // MB; 0 = 100
  int maxAge = 0;      // days; 0 = keep regardless of age
  int maxBackups = 0;  // 0 = keep all
  bool localTime = false;
  bool compress = false;
  bool operator==(const Rotation&) const = default;
};
struct Log {
  std::string output;
  std::string level;
  std::string format;
  std::optional<Rotation> rotation;
  bool empty() const { return output.empty() && level.empty() && format.empty() && !rotation; }
  bool operator==(const Log&) const = default;
};
// A named logger services refer to with `logger:`/`loggers:`.
struct NamedLogger {
  std::string name;  // printed always
  Log log;
  bool operator==(const NamedLogger&) const = default;
};
// The web API server (docs/PROTOCOLS.md "observability: web API", "config: operations").
struct Api {
  std::string addr;  // printed always
  std::string pathPrefix;
  bool accesslog = false;
  std::optional<Auth> auth;
  std::string auther;
  bool operator==(const Api&) const = default;
};

// The global Prometheus endpoint (docs/PROTOCOLS.md "observability: metrics",
// "config: operations"). `path` empty = "/metrics"; a named `auther` replaces `auth`.
struct Metrics {
  std::string addr;  // printed always
  std::string path;
  std::optional<Auth> auth;
  std::string auther;
  // Not GOST's: adds the authenticated `user` label to the per-client series (opt-in, as it
  // multiplies the series by the number of users; go-gost/x#35).
  bool userLabel = false;
  bool operator==(const Metrics&) const = default;
};

struct Config {
  std::vector<Service> services;  // printed always ("services: []" / "services": null)
  std::vector<Chain> chains;
  std::vector<Hop> hops;
  std::vector<Auther> authers;
  std::vector<Admission> admissions;
  std::vector<Bypass> bypasses;
  std::vector<Hosts> hosts;
  std::vector<Ingress> ingresses;
  std::vector<Limiter> limiters;
  std::vector<Limiter> climiters;
  std::vector<Limiter> rlimiters;
  std::vector<NamedLogger> loggers;
  std::optional<TLS> tls;
  std::optional<Log> log;
  std::optional<Api> api;
  std::optional<Metrics> metrics;
  bool operator==(const Config&) const = default;

  // Appends list sections, replaces single sections present in `other` (docs/PROTOCOLS.md
  // "cli: flags", step 1).
  void merge(Config other);
};

// A configuration error: one line naming the offending key, URL or value.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Go duration syntax: parse "1m30s", "300ms", "-1.5h"; format like Go's Duration.String() ("1m0s").
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text);
std::string format_go_duration(std::chrono::nanoseconds d);

}  // namespace gost::config
