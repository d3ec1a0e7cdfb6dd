#include "config/url_parser.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>
#include <string_view>

#include "config/go_text.hpp"

namespace gost::config {

namespace {

using namespace std::chrono_literals;

// ---- registry tables of the real GOST binary (docs/PROTOCOLS.md "cli: schemes") -----------------

bool contains(std::initializer_list<std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool is_registered_handler(std::string_view n) {
  return contains(
      {"api",   "auto",  "dns",    "file",   "forward", "tcp",     "udp",    "rtcp",   "rudp",
       "runix", "http",  "http2",  "http3",  "masque",  "metrics", "red",    "redir",  "redirect",
       "redu",  "relay", "router", "serial", "sni",     "socks",   "socks5", "socks4", "socks4a",
       "ss",    "ssu",   "sshd",   "tap",    "tun",     "tungo",   "tunnel", "unix"},
      n);
}

bool is_registered_listener(std::string_view n) {
  return contains({"dns",   "dtls",   "ftcp", "grpc", "h2",    "h2c",      "h3",   "http2", "http3",
                   "icmp",  "icmp6",  "kcp",  "mtcp", "mtls",  "mws",      "mwss", "ohttp", "otls",
                   "pht",   "phts",   "quic", "red",  "redir", "redirect", "redu", "rtcp",  "rudp",
                   "runix", "serial", "ssh",  "sshd", "stdio", "tap",      "tcp",  "tls",   "tun",
                   "tungo", "udp",    "unix", "ws",   "wss",   "wt"},
                  n);
}

bool is_registered_connector(std::string_view n) {
  return contains({"direct", "virtual", "forward", "http",  "http2",  "masque", "relay",
                   "router", "serial",  "sni",     "socks", "socks5", "socks4", "socks4a",
                   "ss",     "ssu",     "sshd",    "tcp",   "tunnel", "unix"},
                  n);
}

bool is_registered_dialer(std::string_view n) {
  return contains(
      {"direct",    "virtual", "dtls", "ftcp",  "grpc", "h2",   "h2c",    "h3",  "http3",
       "h3-masque", "http2",   "icmp", "icmp6", "kcp",  "mtcp", "mtls",   "mws", "mwss",
       "ohttp",     "ohttps",  "otls", "pht",   "phts", "quic", "serial", "ssh", "sshd",
       "tcp",       "tls",     "udp",  "unix",  "utls", "wg",   "ws",     "wss", "wt"},
      n);
}

// ---- small string helpers -----------------------------------------------------------------

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

using detail::trim_space;

std::string trim_slashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; `plus_is_space` for query components. nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// ---- base64 as Go's encoding/base64 (RawURLEncoding, then StdEncoding) ---------------------

std::optional<std::string> base64_decode(std::string_view in, bool url_raw) {
  static constexpr std::string_view kStd =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static constexpr std::string_view kUrl =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const std::string_view alphabet = url_raw ? kUrl : kStd;
  std::string s;
  for (char c : in) {
    if (c != '\r' && c != '\n') s.push_back(c);
  }
  std::size_t pad = 0;
  if (!url_raw) {
    if (s.size() % 4 != 0) return std::nullopt;
    while (pad < 2 && !s.empty() && s[s.size() - 1 - pad] == '=') ++pad;
    s.resize(s.size() - pad);
  }
  if (s.size() % 4 == 1) return std::nullopt;
  if (!url_raw && pad > 0 && (s.size() + pad) % 4 != 0) return std::nullopt;
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const auto pos = alphabet.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (!url_raw && pad != (4 - s.size() % 4) % 4) return std::nullopt;
  return out;
}

std::optional<std::string> go_base64(std::string_view s) {
  if (auto v = base64_decode(s, true)) return v;
  return base64_decode(s, false);
}

Auth split_user_pass(std::string_view text) {
  Auth auth;
  const auto colon = text.find(':');
  auth.username = std::string(text.substr(0, colon));
  if (colon != std::string_view::npos) auth.password = std::string(text.substr(colon + 1));
  return auth;
}

// ---- a subset of Go's net/url -------------------------------------------------------------

struct Url {
  std::string scheme;
  bool has_user = false;
  std::string username;
  std::optional<std::string> password;
  std::string host;
  std::string path;  // escaped form (url.EscapedPath)
  std::string raw_query;

  std::string hostname() const {  // url.Hostname()
    std::string h = host;
    const auto colon = h.rfind(':');
    if (colon != std::string::npos) {
      std::string_view port = std::string_view(h).substr(colon + 1);
      if (std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        h.resize(colon);
      }
    }
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    return h;
  }
};

struct UrlError {
  std::string message;
};

bool valid_userinfo_char(char c) {
  return is_alnum(c) || std::string_view("-._:~!$&'()*+,;=%@").find(c) != std::string_view::npos;
}

bool valid_host_char(char c) {
  return is_alnum(c) || static_cast<unsigned char>(c) >= 0x80 ||
         std::string_view("-_.~!$&'()*+,;=:[]<>\"%").find(c) != std::string_view::npos;
}

bool valid_optional_port(std::string_view p) {
  if (p.empty()) return true;
  if (p[0] != ':') return false;
  return std::all_of(p.begin() + 1, p.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string parse_host(std::string_view host) {
  if (starts_with(host, "[")) {
    const auto close = host.rfind(']');
    if (close == std::string_view::npos) throw UrlError{"missing ']' in host"};
    if (!valid_optional_port(host.substr(close + 1))) {
      throw UrlError{"invalid port \"" + std::string(host.substr(close + 1)) + "\" after host"};
    }
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    if (!valid_optional_port(host.substr(colon))) {
      throw UrlError{"invalid port \"" + std::string(host.substr(colon)) + "\" after host"};
    }
  }
  for (char c : host) {
    if (!valid_host_char(c)) throw UrlError{"invalid character in host name"};
  }
  auto decoded = percent_decode(host, false);
  if (!decoded) throw UrlError{"invalid URL escape in host"};
  return *decoded;
}

void parse_authority(std::string_view authority, bool validate_host, Url& url) {
  const auto at = authority.rfind('@');
  const std::string_view host_part =
      at == std::string_view::npos ? authority : authority.substr(at + 1);
  url.host = validate_host ? parse_host(host_part) : std::string(host_part);
  if (at == std::string_view::npos) return;
  const std::string_view userinfo = authority.substr(0, at);
  if (!std::all_of(userinfo.begin(), userinfo.end(), valid_userinfo_char)) {
    throw UrlError{"net/url: invalid userinfo"};
  }
  url.has_user = true;
  const auto colon = userinfo.find(':');
  auto user = percent_decode(userinfo.substr(0, colon), false);
  if (!user) throw UrlError{"invalid URL escape in userinfo"};
  url.username = *user;
  if (colon != std::string_view::npos) {
    auto pass = percent_decode(userinfo.substr(colon + 1), false);
    if (!pass) throw UrlError{"invalid URL escape in userinfo"};
    url.password = *pass;
  }
}

// url.EscapedPath(): the raw path, with bytes that may not appear in a path escaped.
std::string escaped_path(std::string_view raw) {
  if (!percent_decode(raw, false)) throw UrlError{"invalid URL escape in path"};
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : raw) {
    if (is_alnum(c) ||
        std::string_view("-_.~!$&'()*+,;=:@[]/%").find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += {'%', kHex[b >> 4], kHex[b & 15]};
    }
  }
  return out;
}

std::string take_scheme(std::string_view& rest) {
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) continue;
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
      if (i == 0) break;
      continue;
    }
    if (c == ':' && i > 0) {
      std::string scheme = detail::ascii_lower(rest.substr(0, i));
      rest.remove_prefix(i + 1);
      return scheme;
    }
    break;
  }
  throw UrlError{"missing protocol scheme"};
}

// url.Parse for absolute URLs; `validate_host` is false for -L where the host was cut out.
Url parse_url(std::string_view raw, bool validate_host) {
  for (char c : raw) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw UrlError{"invalid control character in URL"};
    }
  }
  std::string_view rest = raw.substr(0, raw.find('#'));
  Url url;
  url.scheme = take_scheme(rest);
  if (!rest.empty() && rest.back() == '?' && std::count(rest.begin(), rest.end(), '?') == 1) {
    rest.remove_suffix(1);
  } else if (const auto q = rest.find('?'); q != std::string_view::npos) {
    url.raw_query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }
  if (!starts_with(rest, "/")) return url;  // opaque: no host, no path
  if (starts_with(rest, "//")) {
    rest.remove_prefix(2);
    const auto slash = rest.find('/');
    parse_authority(rest.substr(0, slash), validate_host, url);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  url.path = escaped_path(rest);
  return url;
}

// Norm() of GOST: trim, default scheme auto://, https -> http+tls.
std::string add_default_scheme(std::string s) {
  if (!s.empty() && (s[0] == ':' || s.find("://") == std::string::npos)) s = "auto://" + s;
  return s;
}

Url norm(const std::string& text, bool validate_host) {
  const std::string trimmed = trim_space(text);
  if (trimmed.empty()) throw UrlError{"invalid cmd"};
  Url url = parse_url(add_default_scheme(trimmed), validate_host);
  if (url.scheme == "https") url.scheme = "http+tls";
  return url;
}

// cutHost() of GOST: the -L authority after the last '@', cut out before URL parsing.
std::pair<std::string, std::string> cut_host(const std::string& s) {
  const auto colon = s.find(':');
  std::size_t start = std::min(colon == std::string::npos ? 0 : colon + 3, s.size());
  std::size_t end = s.find_first_of("/?", start);
  if (end == std::string::npos) end = s.size();
  const auto at = std::string_view(s).substr(start, end - start).rfind('@');
  if (at != std::string_view::npos) start += at + 1;
  return {s.substr(start, end - start), s.substr(0, start) + s.substr(end)};
}

// ---- the query map `m` of GOST: case-sensitive keys, Go map semantics -----------------------

using Pairs = std::vector<std::pair<std::string, Value>>;

Pairs query_pairs(std::string_view query) {
  Pairs m;
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.find(';') != std::string_view::npos || pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value) continue;
    const bool seen =
        std::any_of(m.begin(), m.end(), [&](const auto& e) { return e.first == *key; });
    if (!seen) m.emplace_back(std::move(*key), Value(std::move(*value)));
  }
  return m;
}

void set_exact(Pairs& m, const std::string& key, Value value) {
  for (auto& entry : m) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  m.emplace_back(key, std::move(value));
}

void erase_exact(Pairs& m, std::initializer_list<std::string_view> keys) {
  std::erase_if(m, [&](const auto& e) { return contains(keys, e.first); });
}

// mdx.NewMetadata(m): a snapshot with case-insensitive lookup; mdutil getters on top of it.
class Snapshot {
 public:
  explicit Snapshot(const Pairs& m) : m_(m) {}

  const Value* find(std::initializer_list<std::string_view> keys) const {
    for (auto key : keys) {
      for (const auto& [k, v] : m_) {
        if (detail::iequals(k, key)) return &v;
      }
    }
    return nullptr;
  }
  std::string get_string(std::initializer_list<std::string_view> keys) const {
    const Value* v = find(keys);
    return v && v->is_scalar() ? v->as_string() : std::string();
  }
  std::int64_t get_int(std::initializer_list<std::string_view> keys) const {
    const Value* v = find(keys);
    if (!v) return 0;
    if (auto i = std::get_if<std::int64_t>(&v->v)) return *i;
    if (auto s = std::get_if<std::string>(&v->v)) return detail::go_atoi(*s).value_or(0);
    return 0;
  }
  bool get_bool(std::initializer_list<std::string_view> keys) const {
    const Value* v = find(keys);
    if (!v) return false;
    if (auto s = std::get_if<std::string>(&v->v)) return detail::go_parse_bool(*s).value_or(false);
    return false;
  }
  double get_float(std::initializer_list<std::string_view> keys) const {
    const Value* v = find(keys);
    if (!v) return 0;
    if (auto s = std::get_if<std::string>(&v->v)) return detail::go_parse_float(*s).value_or(0);
    return 0;
  }
  std::chrono::nanoseconds get_duration(std::initializer_list<std::string_view> keys) const {
    const Value* v = find(keys);
    auto s = v ? std::get_if<std::string>(&v->v) : nullptr;
    if (!s) return 0ns;
    auto d = parse_go_duration(*s).value_or(0ns);
    if (d == 0ns) d = std::chrono::seconds(detail::go_atoi(*s).value_or(0));
    return d;
  }

 private:
  Pairs m_;
};

std::optional<Selector> parse_selector(Pairs& m) {
  const Snapshot md(m);
  Selector selector;
  selector.strategy = md.get_string({"strategy"});
  auto max_fails = md.get_int({"maxFails", "max_fails"});
  auto fail_timeout = md.get_duration({"failTimeout", "fail_timeout"});
  if (selector.strategy.empty() && max_fails <= 0 && fail_timeout <= 0ns) return std::nullopt;
  if (selector.strategy.empty()) selector.strategy = "round";
  selector.maxFails = max_fails > 0 ? static_cast<int>(max_fails) : 1;
  selector.failTimeout = fail_timeout > 0ns ? fail_timeout : std::chrono::nanoseconds(30s);
  erase_exact(m, {"strategy", "maxFails", "max_fails", "failTimeout", "fail_timeout"});
  return selector;
}

std::optional<std::string> cut_prefix(std::string_view key, std::string_view prefix) {
  if (!starts_with(key, prefix)) return std::nullopt;
  return std::string(key.substr(prefix.size()));
}

[[noreturn]] void unsupported(std::string_view key, std::string_view flag, std::string_view arg) {
  throw ConfigError("unsupported option \"" + std::string(key) + "\" in " + std::string(flag) +
                    " " + std::string(arg) + " (not implemented)");
}

std::optional<Auth> auth_from_url(const Url& url) {
  if (!url.has_user) return std::nullopt;
  if (starts_with(url.scheme, "ss") && !url.password && !url.username.empty()) {
    if (auto decoded = go_base64(url.username);
        decoded && decoded->find(':') != std::string::npos) {
      return split_user_pass(*decoded);
    }
  }
  Auth auth;
  auth.username = url.username;
  auth.password = url.password.value_or("");
  return auth;
}

// The `auth` query key: base64 of user[:pass], used only when the URL has no userinfo.
void apply_auth_key(const Snapshot& md, std::optional<Auth>& auth, std::string_view arg) {
  const std::string encoded = md.get_string({"auth"});
  if (encoded.empty() || auth) return;
  auto decoded = go_base64(encoded);
  if (!decoded) {
    throw ConfigError("invalid base64 in \"auth\" of " + std::string(arg) + ": " + encoded);
  }
  auth = split_user_pass(*decoded);
}

// net.SplitHostPort + PortRange of GOST's AddrPortRange.Addrs(); empty if not host:port.
std::vector<std::string> expand_port_range(const std::string& addr) {
  if (addr.find("://") != std::string::npos) return {};
  std::string host, port;
  if (starts_with(addr, "[")) {
    const auto close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':') return {};
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    const auto colon = addr.rfind(':');
    if (colon == std::string::npos) return {};
    host = addr.substr(0, colon);
    if (host.find_first_of(":[]") != std::string::npos) return {};
    port = addr.substr(colon + 1);
  }
  if (port.find_first_of("[]") != std::string::npos) return {};
  std::int64_t lo = 0, hi = 0;
  const auto parts = split(port, '-');
  if (parts.size() == 1) {
    auto p = detail::go_atoi(port);
    if (p && *p >= 0 && *p <= 65535) lo = hi = *p;
  } else if (parts.size() == 2) {
    auto a = detail::go_atoi(parts[0]), b = detail::go_atoi(parts[1]);
    if (a && b) lo = *a, hi = *b;
  }
  const std::string joined_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::vector<std::string> out;
  for (auto p = lo; p <= hi; ++p) out.push_back(joined_host + ":" + std::to_string(p));
  return out;
}

std::vector<std::string> addrs_or_verbatim(const std::string& addr) {
  auto addrs = expand_port_range(addr);
  if (addrs.empty()) addrs.push_back(addr);
  return addrs;
}

Metadata to_metadata(Pairs pairs) {
  Metadata md;
  md.entries = std::move(pairs);
  return md;
}

// ---- -L -----------------------------------------------------------------------------------

bool is_path_based(std::string_view s) { return s == "unix" || s == "runix" || s == "serial"; }

bool keeps_handler_name(std::string_view listener) {
  return contains({"tcp", "udp", "rtcp", "rudp", "tun", "tap", "dns", "unix", "runix", "serial"},
                  listener);
}

struct Components {
  std::string first, second;
};

Components split_scheme(const std::string& scheme) {
  const auto parts = split(scheme, '+');
  if (parts.size() == 1) return {parts[0], parts[0]};
  if (parts.size() == 2) return {parts[0], parts[1]};
  return {};
}

// Every part of a scheme must be a name GOST knows in its role: one part = a handler or a listener
// (a connector or a dialer for nodes); two parts = handler+listener (connector+dialer).
void check_scheme_parts(const std::string& scheme, std::string_view arg, bool service) {
  auto first_ok = service ? is_registered_handler : is_registered_connector;
  auto second_ok = service ? is_registered_listener : is_registered_dialer;
  const auto parts = split(scheme, '+');
  std::string bad;
  if (parts.size() == 1) {
    // A node written without a scheme gets `auto://` (GOST's Norm), which means http over tcp.
    if (!first_ok(parts[0]) && !second_ok(parts[0]) && (service || parts[0] != "auto"))
      bad = parts[0];
  } else if (parts.size() == 2) {
    if (!first_ok(parts[0]))
      bad = parts[0];
    else if (!second_ok(parts[1]))
      bad = parts[1];
  } else {
    bad = scheme;
  }
  if (bad.empty()) return;
  throw UnknownSchemeError(
      std::string(service ? "-L " : "-F ") + std::string(arg) + ": unknown scheme \"" + bad + "\"",
      bad, service);
}

std::vector<ForwardNode> forward_targets(const Url& url) {
  std::vector<ForwardNode> nodes;
  const std::string remotes = trim_slashes(url.path);
  if (remotes.empty()) return nodes;
  for (const auto& target : split(remotes, ',')) {
    for (auto& addr : addrs_or_verbatim(target)) {
      ForwardNode node;
      node.name = "target-" + std::to_string(nodes.size());
      node.addr = std::move(addr);
      nodes.push_back(std::move(node));
    }
  }
  return nodes;
}

void attach_forwarders(std::vector<Service>& services, const std::vector<ForwardNode>& nodes) {
  if (nodes.empty()) return;
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (services.size() == 1 || nodes.size() == 1) {
      services[i].forwarder.emplace().nodes = nodes;
    } else if (i < nodes.size()) {
      services[i].forwarder.emplace().nodes = {nodes[i]};
    }
  }
}

void move_to_service_scope(Pairs& m, const Snapshot& md) {
  if (auto v = md.get_string({"interface"}); !v.empty()) {
    set_exact(m, "service.interface", v);
    erase_exact(m, {"interface"});
  }
  if (auto v = md.get_int({"so_mark"}); v > 0) {
    set_exact(m, "service.so_mark", Value(v));
    erase_exact(m, {"so_mark"});
  }
  if (auto v = md.get_int({"proxyProtocol"}); v > 0) {
    set_exact(m, "service.proxyProtocol", Value(v));
    erase_exact(m, {"proxyProtocol"});
  }
  if (auto v = md.get_string({"netns"}); !v.empty()) {
    set_exact(m, "service.netns", v);
    erase_exact(m, {"netns"});
  }
  if (auto v = md.get_string({"netns.out"}); !v.empty()) {
    set_exact(m, "service.netns.out", v);
    erase_exact(m, {"netns.out"});
  }
}

std::optional<TLS> listener_tls(Pairs& m, const Snapshot& md) {
  TLS tls;
  tls.certFile = md.get_string({"tls.certFile", "certFile", "cert"});
  tls.keyFile = md.get_string({"tls.keyFile", "keyFile", "key"});
  tls.caFile = md.get_string({"tls.caFile", "caFile", "ca"});
  erase_exact(m, {"tls.certFile", "certFile", "cert", "tls.keyFile", "keyFile", "key", "tls.caFile",
                  "caFile", "ca"});
  if (tls.certFile.empty()) return std::nullopt;
  return tls;
}

struct ServiceScopes {
  Pairs service, handler, listener;
};

ServiceScopes split_service_scopes(const Pairs& m) {
  ServiceScopes s;
  for (const auto& [k, v] : m) {
    if (auto rest = cut_prefix(k, "service.")) {
      set_exact(s.service, *rest, v);
    } else if (auto rest2 = cut_prefix(k, "handler.")) {
      set_exact(s.handler, *rest2, v);
    } else if (auto rest3 = cut_prefix(k, "listener.")) {
      set_exact(s.listener, *rest3, v);
    } else {
      set_exact(s.handler, k, v);
      set_exact(s.listener, k, v);
      set_exact(s.service, k, v);
    }
  }
  return s;
}

std::vector<Service> build_services(const Url& url, std::string_view arg) {
  check_scheme_parts(url.scheme, arg, true);
  auto [handler, listener] = split_scheme(url.scheme);
  bool path_based = is_path_based(listener);
  for (const auto& part : split(url.scheme, '+')) path_based = path_based || is_path_based(part);
  const bool path_addr = path_based && url.host.empty();

  std::vector<std::string> addrs;
  if (path_addr) {
    addrs.push_back(url.path.empty() ? url.host : url.path);
  } else {
    addrs = addrs_or_verbatim(url.host);
  }
  std::vector<Service> services(addrs.size());
  for (std::size_t i = 0; i < addrs.size(); ++i) services[i].addr = addrs[i];

  if (!is_registered_handler(handler)) handler = "auto";
  if (!is_registered_listener(listener)) listener = handler == "ssu" ? "udp" : "tcp";
  // `-L http3://…`, the seed's spelling (docs/PROTOCOLS.md "http3: names"): PHT over HTTP/3 with
  // handler auto. GOST 3.2.6 builds its HTTP/3 reverse proxy (handler http3) from it, which we do
  // not have; its PHT-over-HTTP/3 listener is `h3`, which we also accept.
  if (handler == "http3" && listener == "http3") handler = "auto";

  std::vector<ForwardNode> nodes;
  if (!path_addr) nodes = forward_targets(url);
  if (!nodes.empty() && handler != "relay") {
    handler = keeps_handler_name(listener) ? listener : "forward";
  }
  if (listener == "stdio" && nodes.empty() && !url.host.empty()) {
    ForwardNode& node = nodes.emplace_back();
    node.name = "target-0";
    node.addr = url.host;
    if (handler == "auto") handler = "tcp";
  }
  attach_forwarders(services, nodes);

  std::optional<Auth> auth = auth_from_url(url);
  Pairs m = query_pairs(url.raw_query);
  const Snapshot md(m);
  apply_auth_key(md, auth, arg);
  erase_exact(m, {"auth"});
  std::optional<TLS> tls = listener_tls(m, md);
  if (auto dns = md.get_string({"dns"}); !dns.empty()) {
    ValueList list;
    for (auto& s : split(dns, ',')) list.emplace_back(std::move(s));
    set_exact(m, "dns", Value(std::move(list)));
  }
  move_to_service_scope(m, md);
  const std::optional<Selector> selector = parse_selector(m);
  ServiceScopes scopes = split_service_scopes(m);

  Handler handler_cfg;
  handler_cfg.type = handler;
  handler_cfg.auth = auth;
  handler_cfg.metadata = to_metadata(scopes.handler);
  Listener listener_cfg;
  listener_cfg.type = listener;
  listener_cfg.tls = tls;
  listener_cfg.metadata = to_metadata(scopes.listener);
  if (listener == "ssh" || listener == "sshd") {
    handler_cfg.auth.reset();
    listener_cfg.auth = auth;
  }
  for (auto& service : services) {
    if (service.forwarder) service.forwarder->selector = selector;
    service.handler = handler_cfg;
    service.listener = listener_cfg;
    service.metadata = to_metadata(scopes.service);
  }
  return services;
}

// `?bypass=` / `?admission=` value: comma-separated matchers, a leading '~' = whitelist
// (go-gost/x config/cmd).
template <class T>
T matcher_list(std::string name, std::string v) {
  T object;
  object.name = std::move(name);
  if (!v.empty() && v[0] == '~') {
    object.whitelist = true;
    v.erase(0, 1);
  }
  for (auto& m : split(v, ','))
    if (!m.empty()) object.matchers.push_back(std::move(m));
  return object;
}

// `?hosts=` value: comma-separated `hostname:ip` pairs; a pair without ':' is skipped.
Hosts hosts_list(std::string name, const std::string& v) {
  Hosts hosts;
  hosts.name = std::move(name);
  for (const auto& pair : split(v, ',')) {
    const auto colon = pair.find(':');
    if (colon == std::string::npos) continue;
    hosts.mappings.push_back(
        HostMapping{.ip = pair.substr(colon + 1), .hostname = pair.substr(0, colon)});
  }
  return hosts;
}

// Handler keys GOST turns into named objects (go-gost/x config/cmd): admission, bypass, hosts,
// limiter.*, climiter, rlimiter. The objects are named by their index in the configuration.
void apply_handler_keys(Config& cfg, Service& service, std::string_view arg) {
  auto& mh = service.handler.metadata.entries;
  const Snapshot md(mh);
  if (auto retries = md.get_int({"retries"}); retries > 0) {
    service.handler.retries = static_cast<int>(retries);
    erase_exact(mh, {"retries"});
  }
  if (auto v = md.get_string({"admission"}); !v.empty()) {
    cfg.admissions.push_back(
        matcher_list<Admission>("admission-" + std::to_string(cfg.admissions.size()), v));
    service.admission = cfg.admissions.back().name;
    erase_exact(mh, {"admission"});
  }
  if (auto v = md.get_string({"bypass"}); !v.empty()) {
    cfg.bypasses.push_back(
        matcher_list<Bypass>("bypass-" + std::to_string(cfg.bypasses.size()), v));
    service.bypass = cfg.bypasses.back().name;
    erase_exact(mh, {"bypass"});
  }
  if (!md.get_string({"resolver"}).empty()) unsupported("resolver", "-L", arg);
  if (auto v = md.get_string({"hosts"}); !v.empty()) {
    cfg.hosts.push_back(hosts_list("hosts-" + std::to_string(cfg.hosts.size()), v));
    service.hosts = cfg.hosts.back().name;
    erase_exact(mh, {"hosts"});
  }
  const std::string in = md.get_string({"limiter.in"}), out = md.get_string({"limiter.out"});
  const std::string cin = md.get_string({"limiter.conn.in"});
  const std::string cout = md.get_string({"limiter.conn.out"});
  if (!in.empty() || !out.empty() || !cin.empty() || !cout.empty()) {
    Limiter limiter;
    limiter.name = "limiter-" + std::to_string(cfg.limiters.size());
    if (!in.empty() || !out.empty()) limiter.limits.push_back("$ " + in + " " + out);
    if (!cin.empty() || !cout.empty()) limiter.limits.push_back("$$ " + cin + " " + cout);
    service.limiter = limiter.name;
    cfg.limiters.push_back(std::move(limiter));
    erase_exact(mh, {"limiter.in", "limiter.out", "limiter.conn.in", "limiter.conn.out"});
  }
  if (auto climit = md.get_int({"climiter"}); climit > 0) {
    Limiter limiter{.name = "climiter-" + std::to_string(cfg.climiters.size()),
                    .limits = {"$ " + std::to_string(climit)}};
    service.climiter = limiter.name;
    cfg.climiters.push_back(std::move(limiter));
    erase_exact(mh, {"climiter"});
  }
  if (auto rlimit = md.get_float({"rlimiter"}); rlimit > 0) {
    Limiter limiter{.name = "rlimiter-" + std::to_string(cfg.rlimiters.size()),
                    .limits = {"$ " + detail::go_format_float(rlimit, 'f')}};
    service.rlimiter = limiter.name;
    cfg.rlimiters.push_back(std::move(limiter));
    erase_exact(mh, {"rlimiter"});
  }
}

// ---- -F -----------------------------------------------------------------------------------

void move_to_hop_scope(Pairs& m, const Snapshot& md) {
  if (auto v = md.get_string({"interface"}); !v.empty()) {
    set_exact(m, "hop.interface", v);
    erase_exact(m, {"interface"});
  }
  if (auto v = md.get_int({"so_mark"}); v > 0) {
    set_exact(m, "hop.so_mark", Value(v));
    erase_exact(m, {"so_mark"});
  }
  if (auto v = md.get_int({"proxyProtocol"}); v > 0) {
    set_exact(m, "hop.proxyProtocol", Value(v));
    erase_exact(m, {"proxyProtocol"});
  }
}

Pairs take_hop_metadata(Pairs& m) {
  Pairs hop;
  Pairs remaining;
  for (auto& [k, v] : m) {
    if (starts_with(k, "node.") || starts_with(k, "connector.") || starts_with(k, "dialer.")) {
      remaining.emplace_back(k, v);
    } else if (auto rest = cut_prefix(k, "hop.")) {
      set_exact(hop, *rest, v);
    } else {
      set_exact(hop, k, v);
      remaining.emplace_back(k, v);
    }
  }
  m = std::move(remaining);
  return hop;
}

std::optional<TLS> dialer_tls(Pairs& m, const Snapshot& md, const Url& url) {
  TLS tls;
  tls.certFile = md.get_string({"tls.certFile", "certFile", "cert"});
  tls.keyFile = md.get_string({"tls.keyFile", "keyFile", "key"});
  tls.caFile = md.get_string({"tls.caFile", "caFile", "ca"});
  tls.secure = md.get_bool({"tls.secure", "secure"});
  tls.serverName = md.get_string({"tls.servername", "servername"});
  if (tls.serverName.empty()) tls.serverName = url.hostname();
  erase_exact(m, {"tls.certFile", "certFile", "cert", "tls.keyFile", "keyFile", "key", "tls.caFile",
                  "caFile", "ca", "tls.secure", "secure", "tls.servername", "serverName"});
  if (!tls.secure && tls.certFile.empty() && tls.caFile.empty() && tls.serverName.empty()) {
    return std::nullopt;
  }
  return tls;
}

Node build_node(const Url& url, Pairs m, std::string_view arg) {
  check_scheme_parts(url.scheme, arg, false);
  auto [connector, dialer] = split_scheme(url.scheme);
  bool path_based = is_path_based(dialer) || is_path_based(connector);
  for (const auto& part : split(url.scheme, '+')) path_based = path_based || is_path_based(part);
  if (!is_registered_connector(connector)) connector = "http";
  if (!is_registered_dialer(dialer)) dialer = connector == "ssu" ? "udp" : "tcp";

  std::optional<Auth> auth = auth_from_url(url);
  const Snapshot md(m);
  apply_auth_key(md, auth, arg);
  erase_exact(m, {"auth"});
  std::optional<TLS> tls = dialer_tls(m, md, url);

  Pairs node_md, connector_md, dialer_md;
  for (const auto& [k, v] : m) {
    if (auto rest = cut_prefix(k, "node.")) {
      set_exact(node_md, *rest, v);
    } else if (auto rest2 = cut_prefix(k, "connector.")) {
      set_exact(connector_md, *rest2, v);
    } else if (auto rest3 = cut_prefix(k, "dialer.")) {
      set_exact(dialer_md, *rest3, v);
    } else {
      set_exact(connector_md, k, v);
      set_exact(dialer_md, k, v);
      set_exact(node_md, k, v);
    }
  }
  Node node;
  node.addr = path_based && url.host.empty() ? url.path : url.host;
  node.metadata = to_metadata(std::move(node_md));
  node.connector.type = connector;
  node.connector.auth = auth;
  node.connector.metadata = to_metadata(std::move(connector_md));
  node.dialer.type = dialer;
  node.dialer.tls = tls;
  node.dialer.metadata = to_metadata(std::move(dialer_md));
  if (dialer == "ssh" || dialer == "sshd") {
    node.connector.auth.reset();
    node.dialer.auth = auth;
  }
  return node;
}

Hop build_hop(Config& cfg, std::size_t index, const std::string& arg) {
  const Url url = norm(arg, true);
  Pairs m = query_pairs(url.raw_query);
  const Snapshot md(m);
  Hop hop;
  hop.name = "hop-" + std::to_string(index);
  hop.selector = parse_selector(m);
  if (auto v = md.get_string({"bypass"}); !v.empty()) {
    cfg.bypasses.push_back(
        matcher_list<Bypass>("bypass-" + std::to_string(cfg.bypasses.size()), v));
    hop.bypass = cfg.bypasses.back().name;
    erase_exact(m, {"bypass"});
  }
  if (!md.get_string({"resolver"}).empty()) unsupported("resolver", "-F", arg);
  if (auto v = md.get_string({"hosts"}); !v.empty()) {
    cfg.hosts.push_back(hosts_list("hosts-" + std::to_string(cfg.hosts.size()), v));
    hop.hosts = cfg.hosts.back().name;
    erase_exact(m, {"hosts"});
  }
  move_to_hop_scope(m, md);
  hop.metadata = to_metadata(take_hop_metadata(m));

  const Node node = build_node(url, std::move(m), arg);
  for (const auto& host : split(node.addr, ',')) {
    if (host.empty()) continue;
    Node copy = node;
    copy.name = "node-" + std::to_string(hop.nodes.size());
    copy.addr = host;
    hop.nodes.push_back(std::move(copy));
  }
  return hop;
}

std::string describe(std::string_view flag, std::string_view arg, const UrlError& e) {
  return "invalid " + std::string(flag) + " \"" + std::string(arg) + "\": " + e.message;
}

std::vector<Service> services_of(const std::string& arg) {
  std::string svc = trim_space(arg);
  if (svc.empty()) return {};
  svc = add_default_scheme(svc);
  auto [host, remain] = cut_host(svc);
  Url url = norm(remain, false);
  url.host = host;
  return build_services(url, arg);
}

}  // namespace

Config parse_command_line(const std::vector<std::string>& services,
                          const std::vector<std::string>& nodes) {
  Config cfg;
  if (!nodes.empty()) cfg.chains.emplace_back().name = "chain-0";
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (trim_space(nodes[i]).empty()) throw ConfigError("invalid cmd");
    try {
      Hop hop = build_hop(cfg, i, nodes[i]);
      cfg.chains[0].hops.push_back(std::move(hop));
    } catch (const UrlError& e) {
      throw ConfigError(describe("-F", nodes[i], e));
    }
  }
  for (const auto& arg : services) {
    std::vector<Service> built;
    try {
      built = services_of(arg);
    } catch (const UrlError& e) {
      throw ConfigError(describe("-L", arg, e));
    }
    for (auto& service : built) {
      service.name = "service-" + std::to_string(cfg.services.size());
      if (!cfg.chains.empty()) {
        const auto& l = service.listener.type;
        (l == "rtcp" || l == "rudp" || l == "runix" ? service.listener.chain
                                                    : service.handler.chain) = "chain-0";
      }
      apply_handler_keys(cfg, service, arg);
      cfg.services.push_back(std::move(service));
    }
  }
  return cfg;
}

}  // namespace gost::config

namespace gost::config {

namespace {

// What -metrics and -api take from their value: normalised like a node URL, only the host, the
// userinfo and the query are used.
struct EndpointFlag {
  // host:port; empty for unix:// (GOST then starts no endpoint: docs/PROTOCOLS.md
  // "observability: metrics")
  std::string addr;
  std::optional<Auth> auth;
  Metadata query;  // case-insensitive keys
};

EndpointFlag parse_endpoint_flag(const char* flag, const std::string& value) {
  try {
    const Url url = norm(value, true);
    EndpointFlag f;
    f.addr = url.host;
    for (auto& [key, v] : query_pairs(url.raw_query)) f.query.set(key, std::move(v));
    if (url.has_user)
      f.auth = Auth{.username = url.username, .password = url.password.value_or("")};
    return f;
  } catch (const UrlError& e) {
    throw ConfigError(describe(flag, value, e));
  }
}

}  // namespace

Metrics parse_metrics_flag(const std::string& value) {
  auto f = parse_endpoint_flag("-metrics", value);
  return Metrics{.addr = f.addr,
                 .path = f.query.get_string("path").value_or(""),
                 .auth = f.auth,
                 .userLabel = f.query.get_bool("userLabel").value_or(false)};
}

Api parse_api_flag(const std::string& value) {
  auto f = parse_endpoint_flag("-api", value);
  return Api{.addr = f.addr,
             .pathPrefix = f.query.get_string("pathPrefix").value_or(""),
             .accesslog = f.query.get_bool("accesslog").value_or(false),
             .auth = f.auth};
}

std::vector<std::pair<std::string, Value>> parse_query(std::string_view query) {
  return query_pairs(query);
}

}  // namespace gost::config
