#include "config/printer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "config/go_text.hpp"

namespace gost::config {

namespace {

// ---- a format-neutral document tree -------------------------------------------------------

struct DocField;

struct Doc {
  enum class Kind { Null, Str, Bool, Int, Float, Duration, List, Map };
  Kind kind = Kind::Null;
  std::string str;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::vector<Doc> items;
  std::vector<DocField> fields;  // not std::pair: clang refuses a pair of an incomplete type
  bool sorted = false;           // a Go map: keys are sorted when printed
  bool nil_if_empty = false;     // a Go nil slice: JSON prints null

  // Defined below the struct: clang wants Doc complete before these build one.
  static Doc string(std::string s);
  static Doc integer(std::int64_t v);
  static Doc duration(std::chrono::nanoseconds v);
  static Doc list(std::vector<Doc> items, bool nil_if_empty);
};

// A map entry (named as std::pair's members).
struct DocField {
  std::string first;
  Doc second;
};

Doc Doc::string(std::string s) {
  Doc d;
  d.kind = Kind::Str;
  d.str = std::move(s);
  return d;
}
Doc Doc::integer(std::int64_t v) {
  Doc d;
  d.kind = Kind::Int;
  d.i = v;
  return d;
}
Doc Doc::duration(std::chrono::nanoseconds v) {
  Doc d;
  d.kind = Kind::Duration;
  d.i = v.count();
  return d;
}
Doc Doc::list(std::vector<Doc> items, bool nil_if_empty) {
  Doc d;
  d.kind = Kind::List;
  d.items = std::move(items);
  d.nil_if_empty = nil_if_empty;
  return d;
}

// Builds a struct mapping field by field, applying omitempty.
class Fields {
 public:
  Fields& str(std::string key, const std::string& v, bool always = false) {
    if (always || !v.empty()) add(std::move(key), Doc::string(v));
    return *this;
  }
  Fields& boolean(std::string key, bool v) {
    if (v) {
      Doc d;
      d.kind = Doc::Kind::Bool;
      d.b = true;
      add(std::move(key), std::move(d));
    }
    return *this;
  }
  Fields& integer(std::string key, std::int64_t v, bool always = false) {
    if (always || v != 0) add(std::move(key), Doc::integer(v));
    return *this;
  }
  Fields& duration(std::string key, std::chrono::nanoseconds v, bool always = false) {
    if (always || v.count() != 0) add(std::move(key), Doc::duration(v));
    return *this;
  }
  Fields& strings(std::string key, const std::vector<std::string>& v) {
    if (v.empty()) return *this;
    std::vector<Doc> items;
    for (const auto& s : v) items.push_back(Doc::string(s));
    add(std::move(key), Doc::list(std::move(items), true));
    return *this;
  }
  Fields& doc(std::string key, Doc d, bool present = true) {
    if (present) add(std::move(key), std::move(d));
    return *this;
  }
  template <typename T, typename F>
  Fields& list(std::string key, const std::vector<T>& v, F&& convert, bool always = false) {
    if (v.empty() && !always) return *this;
    std::vector<Doc> items;
    for (const auto& item : v) items.push_back(convert(item));
    add(std::move(key), Doc::list(std::move(items), true));
    return *this;
  }
  Doc done() {
    Doc d;
    d.kind = Doc::Kind::Map;
    d.fields = std::move(fields_);
    return d;
  }

 private:
  void add(std::string key, Doc d) { fields_.push_back({std::move(key), std::move(d)}); }
  std::vector<DocField> fields_;
};

Doc from_value(const Value& value);

Doc from_pairs(const std::vector<std::pair<std::string, Value>>& pairs) {
  Doc d;
  d.kind = Doc::Kind::Map;
  d.sorted = true;
  for (const auto& [k, v] : pairs) d.fields.push_back({k, from_value(v)});
  return d;
}

Doc from_value(const Value& value) {
  Doc d;
  if (auto s = std::get_if<std::string>(&value.v)) return Doc::string(*s);
  if (auto b = std::get_if<bool>(&value.v)) {
    d.kind = Doc::Kind::Bool;
    d.b = *b;
  } else if (auto i = std::get_if<std::int64_t>(&value.v)) {
    return Doc::integer(*i);
  } else if (auto f = std::get_if<double>(&value.v)) {
    d.kind = Doc::Kind::Float;
    d.f = *f;
  } else if (auto l = std::get_if<ValueList>(&value.v)) {
    std::vector<Doc> items;
    for (const auto& item : *l) items.push_back(from_value(item));
    return Doc::list(std::move(items), false);
  } else if (auto m = std::get_if<ValueMap>(&value.v)) {
    return from_pairs(*m);
  }
  return d;
}

Fields& metadata(Fields& f, const Metadata& md) {
  return f.doc("metadata", from_pairs(md.entries), !md.empty());
}

Doc auth_doc(const Auth& a) {
  return Fields()
      .str("username", a.username, true)
      .str("password", a.password)
      .str("file", a.file)
      .done();
}

Doc tls_doc(const TLS& t) {
  Fields options;
  options.str("minVersion", t.options.minVersion)
      .str("maxVersion", t.options.maxVersion)
      .strings("cipherSuites", t.options.cipherSuites)
      .strings("alpn", t.options.alpn);
  return Fields()
      .str("certFile", t.certFile)
      .str("keyFile", t.keyFile)
      .str("caFile", t.caFile)
      .boolean("secure", t.secure)
      .str("serverName", t.serverName)
      .doc("options", options.done(), !t.options.empty())
      .duration("validity", t.validity)
      .str("commonName", t.commonName)
      .str("organization", t.organization)
      .boolean("rejectUnknownSNI", t.rejectUnknownSNI)
      .strings("serverNames", t.serverNames)
      .done();
}

Doc selector_doc(const Selector& s) {
  return Fields()
      .str("strategy", s.strategy, true)
      .integer("maxFails", s.maxFails, true)
      .duration("failTimeout", s.failTimeout, true)
      .done();
}

template <typename T>
Fields& optional_doc(Fields& f, std::string key, const std::optional<T>& v,
                     Doc (*convert)(const T&)) {
  return v ? f.doc(std::move(key), convert(*v)) : f;
}

Doc handler_doc(const Handler& h) {
  Fields f;
  f.str("type", h.type, true).integer("retries", h.retries).str("chain", h.chain);
  f.str("auther", h.auther).strings("authers", h.authers);
  optional_doc(f, "auth", h.auth, auth_doc);
  optional_doc(f, "tls", h.tls, tls_doc);
  f.str("limiter", h.limiter);
  return metadata(f, h.metadata).done();
}

Doc listener_doc(const Listener& l) {
  Fields f;
  f.str("type", l.type, true).str("chain", l.chain);
  f.str("auther", l.auther).strings("authers", l.authers);
  optional_doc(f, "auth", l.auth, auth_doc);
  optional_doc(f, "tls", l.tls, tls_doc);
  return metadata(f, l.metadata).done();
}

Doc forward_node_doc(const ForwardNode& n) {
  Fields f;
  f.str("name", n.name).str("addr", n.addr).str("network", n.network);
  f.str("bypass", n.bypass).strings("bypasses", n.bypasses);
  return metadata(f, n.metadata).done();
}

Doc forwarder_doc(const Forwarder& fw) {
  Fields f;
  f.str("name", fw.name).str("hop", fw.hop);
  optional_doc(f, "selector", fw.selector, selector_doc);
  return f.list("nodes", fw.nodes, forward_node_doc, true).done();
}

Doc status_doc(const ServiceStatus& st) {
  std::vector<Doc> events;
  for (const auto& [time, msg] : st.events)
    events.push_back(Fields().integer("time", time, true).str("msg", msg, true).done());
  Fields f;
  f.integer("createTime", st.createTime, true).str("state", st.state, true);
  return f.doc("events", Doc::list(std::move(events), true), true).done();
}

Doc service_doc(const Service& s) {
  Fields f;
  f.str("name", s.name, true).str("addr", s.addr);
  f.str("admission", s.admission).strings("admissions", s.admissions);
  f.str("bypass", s.bypass).strings("bypasses", s.bypasses);
  f.str("hosts", s.hosts).str("limiter", s.limiter);
  f.str("climiter", s.climiter).str("rlimiter", s.rlimiter);
  f.str("logger", s.logger).strings("loggers", s.loggers);
  f.doc("handler", handler_doc(s.handler)).doc("listener", listener_doc(s.listener));
  optional_doc(f, "forwarder", s.forwarder, forwarder_doc);
  metadata(f, s.metadata);
  optional_doc(f, "status", s.status, status_doc);
  return f.done();
}

bool connector_present(const Connector& c) {
  return !c.type.empty() || c.auth || c.tls || !c.metadata.empty();
}

Doc connector_doc(const Connector& c) {
  Fields f;
  f.str("type", c.type, true);
  optional_doc(f, "auth", c.auth, auth_doc);
  optional_doc(f, "tls", c.tls, tls_doc);
  return metadata(f, c.metadata).done();
}

Doc node_doc(const Node& n) {
  Fields f;
  f.str("name", n.name, true).str("addr", n.addr).str("network", n.network);
  f.str("bypass", n.bypass).strings("bypasses", n.bypasses).str("hosts", n.hosts);
  f.doc("connector", connector_doc(n.connector), connector_present(n.connector));
  f.doc("dialer", connector_doc(n.dialer), connector_present(n.dialer));
  return metadata(f, n.metadata).done();
}

Doc hop_doc(const Hop& h) {
  Fields f;
  f.str("name", h.name, true);
  optional_doc(f, "selector", h.selector, selector_doc);
  f.str("bypass", h.bypass).strings("bypasses", h.bypasses).str("hosts", h.hosts);
  f.list("nodes", h.nodes, node_doc);
  return metadata(f, h.metadata).done();
}

Doc chain_doc(const Chain& c) {
  Fields f;
  f.str("name", c.name, true).list("hops", c.hops, hop_doc, true);
  return metadata(f, c.metadata).done();
}

Doc plugin_doc(const Plugin& p) {
  Fields f;
  f.str("type", p.type, true).str("addr", p.addr, true);
  optional_doc(f, "tls", p.tls, tls_doc);
  return f.duration("timeout", p.timeout).str("token", p.token).done();
}

// reload, file, redis, http, plugin: the tail of every object with dynamic sources.
Fields& sources(Fields& f, const Sources& s) {
  f.duration("reload", s.reload);
  if (s.file) f.doc("file", Fields().str("path", s.file->path, true).done());
  if (s.redis)
    f.doc("redis", Fields()
                       .str("addr", s.redis->addr, true)
                       .integer("db", s.redis->db)
                       .str("username", s.redis->username)
                       .str("password", s.redis->password)
                       .str("key", s.redis->key)
                       .str("type", s.redis->type)
                       .done());
  if (s.http)
    f.doc("http",
          Fields().str("url", s.http->url, true).duration("timeout", s.http->timeout).done());
  return optional_doc(f, "plugin", s.plugin, plugin_doc);
}

Doc auther_doc(const Auther& a) {
  Fields f;
  f.str("name", a.name, true).list("auths", a.auths, auth_doc);
  return sources(f, a.sources).done();
}

Doc admission_doc(const Admission& a) {
  Fields f;
  f.str("name", a.name, true).boolean("reverse", a.reverse).boolean("whitelist", a.whitelist);
  f.strings("matchers", a.matchers);
  return sources(f, a.sources).done();
}

Doc bypass_doc(const Bypass& b) {
  Fields f;
  f.str("name", b.name, true).boolean("reverse", b.reverse).boolean("whitelist", b.whitelist);
  f.str("network", b.network).strings("matchers", b.matchers);
  return sources(f, b.sources).done();
}

Doc host_mapping_doc(const HostMapping& m) {
  return Fields()
      .str("ip", m.ip, true)
      .str("hostname", m.hostname, true)
      .strings("aliases", m.aliases)
      .done();
}

Doc hosts_doc(const Hosts& h) {
  Fields f;
  f.str("name", h.name, true).list("mappings", h.mappings, host_mapping_doc);
  return sources(f, h.sources).done();
}

Doc ingress_rule_doc(const IngressRule& r) {
  return Fields().str("hostname", r.hostname, true).str("endpoint", r.endpoint, true).done();
}

Doc ingress_doc(const Ingress& i) {
  Fields f;
  f.str("name", i.name, true).list("rules", i.rules, ingress_rule_doc);
  return sources(f, i.sources).done();
}

Doc limiter_doc(const Limiter& l) {
  Fields f;
  f.str("name", l.name, true).strings("limits", l.limits);
  return sources(f, l.sources).done();
}

Doc rotation_doc(const Rotation& r) {
  return Fields()
      .integer("maxSize", r.maxSize)
      .integer("maxAge", r.maxAge)
      .integer("maxBackups", r.maxBackups)
      .boolean("localTime", r.localTime)
      .boolean("compress", r.compress)
      .done();
}

Doc log_doc(const Log& l) {
  Fields f;
  f.str("output", l.output).str("level", l.level).str("format", l.format);
  optional_doc(f, "rotation", l.rotation, rotation_doc);
  return f.done();
}

Doc named_logger_doc(const NamedLogger& l) {
  return Fields().str("name", l.name, true).doc("log", log_doc(l.log)).done();
}

Doc api_doc(const Api& a) {
  Fields f;
  f.str("addr", a.addr, true).str("pathPrefix", a.pathPrefix).boolean("accesslog", a.accesslog);
  optional_doc(f, "auth", a.auth, auth_doc);
  return f.str("auther", a.auther).done();
}

Doc metrics_doc(const Metrics& m) {
  Fields f;
  f.str("addr", m.addr, true).str("path", m.path);
  optional_doc(f, "auth", m.auth, auth_doc);
  return f.str("auther", m.auther).boolean("userLabel", m.userLabel).done();
}

Doc config_doc(const Config& c) {
  Fields f;
  f.list("services", c.services, service_doc, true)
      .list("chains", c.chains, chain_doc)
      .list("hops", c.hops, hop_doc)
      .list("authers", c.authers, auther_doc)
      .list("admissions", c.admissions, admission_doc)
      .list("bypasses", c.bypasses, bypass_doc)
      .list("hosts", c.hosts, hosts_doc)
      .list("ingresses", c.ingresses, ingress_doc)
      .list("limiters", c.limiters, limiter_doc)
      .list("climiters", c.climiters, limiter_doc)
      .list("rlimiters", c.rlimiters, limiter_doc)
      .list("loggers", c.loggers, named_logger_doc);
  optional_doc(f, "tls", c.tls, tls_doc);
  optional_doc(f, "log", c.log, log_doc);
  optional_doc(f, "api", c.api, api_doc);
  optional_doc(f, "metrics", c.metrics, metrics_doc);
  return f.done();
}

// ---- UTF-8 helpers ------------------------------------------------------------------------

std::size_t utf8_width(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

std::uint32_t utf8_decode(std::string_view s, std::size_t i, std::size_t w) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (w == 1 || i + w > s.size()) return b(0);
  std::uint32_t v = b(0) & (0xFF >> (w + 1));
  for (std::size_t k = 1; k < w; ++k) v = (v << 6) | (b(k) & 0x3F);
  return v;
}

// ---- YAML (gopkg.in/yaml.v3 emitter, block style, indent 2) -------------------------------

bool is_break_at(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == '\r' || c == '\n') return true;
  if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) return true;
  return c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
         (static_cast<unsigned char>(s[i + 2]) == 0xA8 ||
          static_cast<unsigned char>(s[i + 2]) == 0xA9);
}

bool is_printable_at(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
  };
  const unsigned char c = b(0);
  return c == 0x0A || (c >= 0x20 && c <= 0x7E) || (c == 0xC2 && b(1) >= 0xA0) ||
         (c > 0xC2 && c < 0xED) || (c == 0xED && b(1) < 0xA0) || c == 0xEE ||
         (c == 0xEF && !(b(1) == 0xBB && b(2) == 0xBF) &&
          !(b(1) == 0xBF && (b(2) == 0xBE || b(2) == 0xBF)));
}

bool is_blank_or_end(std::string_view s, std::size_t i) {
  return i >= s.size() || s[i] == ' ' || s[i] == '\t' || s[i] == '\0' || is_break_at(s, i);
}

struct ScalarAnalysis {
  bool multiline = false;
  bool plain_allowed = true;
  bool single_allowed = true;
  bool block_allowed = true;
};

// yaml_emitter_analyze_scalar, block context only.
ScalarAnalysis analyze(std::string_view s) {
  ScalarAnalysis a;
  if (s.empty()) {
    a.block_allowed = false;
    return a;
  }
  bool indicators = s.substr(0, 3) == "---" || s.substr(0, 3) == "...";
  bool line_breaks = false, special = false, tabs = false;
  bool leading_space = false, leading_break = false, trailing_space = false;
  bool trailing_break = false, break_space = false, space_break = false;
  bool prev_space = false, prev_break = false, preceded_by_ws = true;
  for (std::size_t i = 0, w = 0; i < s.size(); i += w) {
    w = utf8_width(static_cast<unsigned char>(s[i]));
    const char c = s[i];
    const bool followed_by_ws = is_blank_or_end(s, i + w);
    if (i == 0) {
      if (std::string_view("#,[]{}&*!|>'\"%@`").find(c) != std::string_view::npos) {
        indicators = true;
      } else if ((c == '?' || c == ':' || c == '-') && followed_by_ws) {
        indicators = true;
      }
    } else if ((c == ':' && followed_by_ws) || (c == '#' && preceded_by_ws)) {
      indicators = true;
    }
    if (c == '\t') {
      tabs = true;
    } else if (!is_printable_at(s, i)) {
      special = true;
    }
    if (c == ' ') {
      leading_space = leading_space || i == 0;
      trailing_space = i + w == s.size();
      break_space = break_space || prev_break;
      prev_space = true;
      prev_break = false;
    } else if (is_break_at(s, i)) {
      line_breaks = true;
      leading_break = leading_break || i == 0;
      trailing_break = i + w == s.size();
      space_break = space_break || prev_space;
      prev_space = false;
      prev_break = true;
    } else {
      prev_space = prev_break = false;
    }
    preceded_by_ws = is_blank_or_end(s, i);
  }
  a.multiline = line_breaks;
  if (leading_space || leading_break || trailing_space || trailing_break) a.plain_allowed = false;
  if (trailing_space) a.block_allowed = false;
  if (break_space) a.plain_allowed = a.single_allowed = false;
  if (space_break || tabs || special) a.plain_allowed = a.single_allowed = false;
  if (space_break || special) a.block_allowed = false;
  if (line_breaks || indicators) a.plain_allowed = false;
  return a;
}

bool is_old_bool(std::string_view s) {
  for (std::string_view b : {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No",
                             "NO", "off", "Off", "OFF"}) {
    if (s == b) return true;
  }
  return false;
}

// ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
bool is_base60_float(std::string_view s) {
  if (s.empty() || s.find(':') == std::string_view::npos) return false;
  if (s[0] == '+' || s[0] == '-') s.remove_prefix(1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.empty() || !digit(s[0])) return false;
  std::size_t i = 1;
  while (i < s.size() && (digit(s[i]) || s[i] == '_')) ++i;
  int groups = 0;
  while (i < s.size() && s[i] == ':') {
    ++i;
    std::size_t n = 0;
    while (i + n < s.size() && digit(s[i + n])) ++n;
    if (n == 0 || n > 2 || (n == 2 && s[i] > '5')) return false;  // [0-5]?[0-9]
    i += n;
    ++groups;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && (digit(s[i]) || s[i] == '_')) ++i;
  }
  return i == s.size();
}

std::string hex_escape(char kind, std::uint32_t v, int digits) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out{'\\', kind};
  for (int k = digits - 1; k >= 0; --k) out.push_back(kHex[(v >> (4 * k)) & 15]);
  return out;
}

std::string yaml_double_quoted(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0, w = 0; i < s.size(); i += w) {
    w = utf8_width(static_cast<unsigned char>(s[i]));
    const bool bom = s.substr(i, 3) == "\xEF\xBB\xBF";
    if (is_printable_at(s, i) && !bom && !is_break_at(s, i) && s[i] != '"' && s[i] != '\\') {
      out.append(s.substr(i, w));
      continue;
    }
    const std::uint32_t v = utf8_decode(s, i, w);
    switch (v) {
      case 0x00:
        out += "\\0";
        break;
      case 0x07:
        out += "\\a";
        break;
      case 0x08:
        out += "\\b";
        break;
      case 0x09:
        out += "\\t";
        break;
      case 0x0A:
        out += "\\n";
        break;
      case 0x0B:
        out += "\\v";
        break;
      case 0x0C:
        out += "\\f";
        break;
      case 0x0D:
        out += "\\r";
        break;
      case 0x1B:
        out += "\\e";
        break;
      case 0x22:
        out += "\\\"";
        break;
      case 0x5C:
        out += "\\\\";
        break;
      case 0x85:
        out += "\\N";
        break;
      case 0xA0:
        out += "\\_";
        break;
      case 0x2028:
        out += "\\L";
        break;
      case 0x2029:
        out += "\\P";
        break;
      default:
        out += v <= 0xFF     ? hex_escape('x', v, 2)
               : v <= 0xFFFF ? hex_escape('u', v, 4)
                             : hex_escape('U', v, 8);
    }
  }
  return out + "\"";
}

std::string yaml_single_quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    out.push_back(c);
    if (c == '\'') out.push_back('\'');
  }
  return out + "'";
}

std::string yaml_literal(std::string_view s, int indent) {
  std::string out = "|";
  if (s[0] == ' ' || is_break_at(s, 0)) out += "2";
  const bool ends_with_break = s.back() == '\n';
  const bool ends_with_two = s.size() >= 2 && s[s.size() - 2] == '\n';
  out += !ends_with_break ? "-" : (s.size() == 1 || ends_with_two) ? "+" : "";
  std::string_view body = ends_with_break ? s.substr(0, s.size() - 1) : s;
  std::size_t start = 0;
  while (true) {
    const auto nl = body.find('\n', start);
    const std::string_view line =
        body.substr(start, nl == std::string_view::npos ? nl : nl - start);
    out += "\n";
    if (!line.empty())
      out += std::string(static_cast<std::size_t>(indent), ' ') + std::string(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return out;
}

// A YAML string scalar as yaml.v3 writes it. `indent` is the indentation of block content.
std::string yaml_string(std::string_view s, bool is_key, int indent) {
  const auto kind = s.empty() ? detail::PlainKind::Null : detail::resolve_plain(s).kind;
  const bool can_use_plain =
      kind == detail::PlainKind::String && !is_base60_float(s) && !is_old_bool(s);
  const ScalarAnalysis a = analyze(s);
  if (s.find('\n') != std::string_view::npos) {
    if (!is_key && a.block_allowed) return yaml_literal(s, indent);
    return yaml_double_quoted(s);
  }
  if (!can_use_plain) return yaml_double_quoted(s);
  if (a.plain_allowed && !(is_key && a.multiline)) return std::string(s);
  if (a.single_allowed && !(is_key && a.multiline)) return yaml_single_quoted(s);
  return yaml_double_quoted(s);
}

std::string yaml_float(double f) {
  if (std::isnan(f)) return ".nan";
  if (std::isinf(f)) return f > 0 ? ".inf" : "-.inf";
  return detail::go_format_float(f, 'g');
}

std::string yaml_scalar(const Doc& d, int indent) {
  switch (d.kind) {
    case Doc::Kind::Str:
      return yaml_string(d.str, false, indent);
    case Doc::Kind::Bool:
      return d.b ? "true" : "false";
    case Doc::Kind::Int:
      return std::to_string(d.i);
    case Doc::Kind::Float:
      return yaml_float(d.f);
    case Doc::Kind::Duration:
      return yaml_string(format_go_duration(std::chrono::nanoseconds(d.i)), false, indent);
    default:
      return "null";
  }
}

bool is_collection(const Doc& d) { return d.kind == Doc::Kind::List || d.kind == Doc::Kind::Map; }
bool is_empty_collection(const Doc& d) {
  return (d.kind == Doc::Kind::List && d.items.empty()) ||
         (d.kind == Doc::Kind::Map && d.fields.empty());
}

// yaml.v3 keyList.Less: letters vs digits vs other, numbers compared by value.
bool natural_less(std::string_view a, std::string_view b) {
  std::vector<std::uint32_t> ar, br;
  for (std::size_t i = 0, w = 0; i < a.size(); i += w) {
    w = utf8_width(static_cast<unsigned char>(a[i]));
    ar.push_back(utf8_decode(a, i, w));
  }
  for (std::size_t i = 0, w = 0; i < b.size(); i += w) {
    w = utf8_width(static_cast<unsigned char>(b[i]));
    br.push_back(utf8_decode(b, i, w));
  }
  auto letter = [](std::uint32_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0xC0;
  };
  auto digit = [](std::uint32_t c) { return c >= '0' && c <= '9'; };
  bool digits = false;
  for (std::size_t i = 0; i < ar.size() && i < br.size(); ++i) {
    if (ar[i] == br[i]) {
      digits = digit(ar[i]);
      continue;
    }
    const bool al = letter(ar[i]), bl = letter(br[i]);
    if (al && bl) return ar[i] < br[i];
    if (al || bl) return digits ? al : bl;
    std::int64_t an = 0, bn = 0;
    if (ar[i] == '0' || br[i] == '0') {
      for (std::size_t j = i; j-- > 0 && digit(ar[j]);) {
        if (ar[j] != '0') {
          an = bn = 1;
          break;
        }
      }
    }
    std::size_t ai = i, bi = i;
    for (; ai < ar.size() && digit(ar[ai]); ++ai) an = an * 10 + (ar[ai] - '0');
    for (; bi < br.size() && digit(br[bi]); ++bi) bn = bn * 10 + (br[bi] - '0');
    if (an != bn) return an < bn;
    if (ai != bi) return ai < bi;
    return ar[i] < br[i];
  }
  return ar.size() < br.size();
}

using FieldList = std::vector<DocField>;

std::vector<const DocField*> ordered(const Doc& map, bool json) {
  std::vector<const DocField*> out;
  for (const auto& f : map.fields) out.push_back(&f);
  if (map.sorted) {
    std::stable_sort(out.begin(), out.end(), [json](auto* x, auto* y) {
      return json ? x->first < y->first : natural_less(x->first, y->first);
    });
  }
  return out;
}

class YamlWriter {
 public:
  std::string out;

  void map(const Doc& d, int indent, bool first_inline) {
    bool first = true;
    for (const auto* field : ordered(d, false)) {
      if (!(first && first_inline)) pad(indent);
      first = false;
      out += yaml_string(field->first, true, indent + 2) + ":";
      value(field->second, indent);
    }
  }

  void list(const Doc& d, int indent, bool first_inline) {
    bool first = true;
    for (const auto& item : d.items) {
      if (!(first && first_inline)) pad(indent);
      first = false;
      out += "-";
      if (is_collection(item) && !is_empty_collection(item)) {
        out += " ";
        nested(item, indent + 2);
      } else {
        out += " " + inline_text(item, indent + 2) + "\n";
      }
    }
  }

 private:
  void pad(int n) { out.append(static_cast<std::size_t>(n), ' '); }

  std::string inline_text(const Doc& d, int block_indent) {
    if (d.kind == Doc::Kind::List) return "[]";
    if (d.kind == Doc::Kind::Map) return "{}";
    return yaml_scalar(d, block_indent);
  }

  void nested(const Doc& d, int indent) {
    if (d.kind == Doc::Kind::Map) {
      map(d, indent, true);
    } else {
      list(d, indent, true);
    }
  }

  // The value after "key:" of a mapping entry written at `indent`.
  void value(const Doc& d, int indent) {
    if (!is_collection(d) || is_empty_collection(d)) {
      out += " " + inline_text(d, indent + 2) + "\n";
      return;
    }
    out += "\n";
    if (d.kind == Doc::Kind::Map) {
      map(d, indent + 2, false);
    } else {
      list(d, indent + 2, false);
    }
  }
};

// ---- JSON (encoding/json, Encoder.SetIndent("", "  ")) ------------------------------------

std::string json_string(std::string_view s) {
  std::string out;
  detail::append_go_json_string(out, s, true);
  return out;
}

// encoding/json: MarshalIndent with two spaces, or Marshal (no whitespace) when indent < 0.
void json_value(std::string& out, const Doc& d, int indent) {
  const bool compact = indent < 0;
  const int next = compact ? indent : indent + 2;
  const std::string pad(static_cast<std::size_t>(std::max(indent, 0)), ' ');
  const std::string inner(static_cast<std::size_t>(compact ? 0 : indent + 2), ' ');
  switch (d.kind) {
    case Doc::Kind::Str:
      out += json_string(d.str);
      return;
    case Doc::Kind::Bool:
      out += d.b ? "true" : "false";
      return;
    case Doc::Kind::Int:
    case Doc::Kind::Duration:
      out += std::to_string(d.i);
      return;
    case Doc::Kind::Float:
      out += std::isfinite(d.f) ? detail::go_json_float(d.f) : "null";
      return;
    case Doc::Kind::Null:
      out += "null";
      return;
    case Doc::Kind::List:
      if (d.items.empty()) {
        out += d.nil_if_empty ? "null" : "[]";
        return;
      }
      out += compact ? "[" : "[\n";
      for (std::size_t i = 0; i < d.items.size(); ++i) {
        out += inner;
        json_value(out, d.items[i], next);
        out += i + 1 < d.items.size() ? (compact ? "," : ",\n") : (compact ? "" : "\n");
      }
      out += pad + "]";
      return;
    case Doc::Kind::Map: {
      if (d.fields.empty()) {
        out += "{}";
        return;
      }
      out += compact ? "{" : "{\n";
      const auto fields = ordered(d, true);
      for (std::size_t i = 0; i < fields.size(); ++i) {
        out += inner + json_string(fields[i]->first) + (compact ? ":" : ": ");
        json_value(out, fields[i]->second, next);
        out += i + 1 < fields.size() ? (compact ? "," : ",\n") : (compact ? "" : "\n");
      }
      out += pad + "}";
      return;
    }
  }
}

}  // namespace

std::string to_yaml(const Config& config) {
  YamlWriter writer;
  writer.map(config_doc(config), 0, false);
  return writer.out;
}

std::string to_json(const Config& config) {
  std::string out;
  json_value(out, config_doc(config), 0);
  return out + "\n";
}

template <class T, class F>
std::string compact(const T& v, F&& doc) {
  std::string out;
  json_value(out, doc(v), -1);
  return out;
}

std::string to_compact_json(const Service& v) { return compact(v, service_doc); }
std::string to_compact_json(const Chain& v) { return compact(v, chain_doc); }
std::string to_compact_json(const Hop& v) { return compact(v, hop_doc); }
std::string to_compact_json(const Auther& v) { return compact(v, auther_doc); }
std::string to_compact_json(const Admission& v) { return compact(v, admission_doc); }
std::string to_compact_json(const Bypass& v) { return compact(v, bypass_doc); }
std::string to_compact_json(const Hosts& v) { return compact(v, hosts_doc); }
std::string to_compact_json(const Limiter& v) { return compact(v, limiter_doc); }
std::string json_quote(std::string_view s) { return json_string(s); }

}  // namespace gost::config
