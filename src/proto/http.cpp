#include "proto/http.hpp"

#include <algorithm>
#include <boost/crc.hpp>
#include <charconv>
#include <cstring>

#include "proto/base64.hpp"

namespace gost::proto::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool is_token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_token_char(static_cast<unsigned char>(c));
  });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits `data` into lines up to the blank line. Returns complete/incomplete/too_large and the
// head length; `lines` excludes the blank line.
ParseStatus split_head(std::string_view data, std::vector<std::string_view>& lines,
                       std::size_t& head_len, const Limits& limits) {
  std::size_t pos = 0;
  for (;;) {
    auto nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {
      return data.size() > limits.max_head ? ParseStatus::too_large : ParseStatus::incomplete;
    }
    if (nl + 1 > limits.max_head) return ParseStatus::too_large;
    auto line = data.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {
      if (lines.empty()) continue;  // tolerate leading blank lines, as Go's server does
      head_len = pos;
      return ParseStatus::complete;
    }
    if (lines.size() > limits.max_headers) return ParseStatus::too_large;
    lines.push_back(line);
  }
}

bool parse_header_lines(const std::vector<std::string_view>& lines, Headers& out) {
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto line = lines[i];
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    auto name = line.substr(0, colon);
    if (!is_token(name)) return false;  // also rejects obsolete line folding
    auto value = trim(line.substr(colon + 1));
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    out.list.push_back({std::string(name), std::string(value)});
  }
  return true;
}

bool parse_version(std::string_view v, int& minor) {
  if (v == "HTTP/1.1")
    minor = 1;
  else if (v == "HTTP/1.0")
    minor = 0;
  else
    return false;
  return true;
}

std::string status_line(int version_minor, int status) {
  std::string s = version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
  s += std::to_string(status);
  auto reason = reason_phrase(status);
  if (!reason.empty()) {
    s += ' ';
    s += reason;
  }
  s += "\r\n";
  return s;
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

// Headers sorted by canonical name (stable within a name), as Go's Header.Write does.
std::vector<Header> sorted_canonical(const std::vector<Header>& in,
                                     std::initializer_list<std::string_view> exclude) {
  std::vector<Header> out;
  for (const auto& h : in) {
    bool skip = false;
    for (auto e : exclude) skip = skip || iequals(h.name, e);
    if (!skip) out.push_back({canonical_name(h.name), h.value});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Header& a, const Header& b) { return a.name < b.name; });
  return out;
}

std::optional<std::uint64_t> parse_content_length(const Headers& h) {
  std::optional<std::uint64_t> result;
  for (const auto& x : h.list) {
    if (!iequals(x.name, "Content-Length")) continue;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(x.value.data(), x.value.data() + x.value.size(), v);
    if (ec != std::errc() || p != x.value.data() + x.value.size() || x.value.empty())
      return std::nullopt;
    if (result && *result != v) return std::nullopt;
    result = v;
  }
  return result ? result : std::optional<std::uint64_t>(UINT64_MAX);  // MAX = absent
}

}  // namespace

const std::string* Headers::get(std::string_view name) const {
  for (const auto& h : list)
    if (iequals(h.name, name)) return &h.value;
  return nullptr;
}

void Headers::remove(std::string_view name) {
  std::erase_if(list, [&](const Header& h) { return iequals(h.name, name); });
}

void Headers::set(std::string name, std::string value) {
  remove(name);
  list.push_back({std::move(name), std::move(value)});
}

bool Headers::has_token(std::string_view name, std::string_view token) const {
  for (const auto& h : list) {
    if (!iequals(h.name, name)) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      auto comma = v.find(',');
      if (iequals(trim(v.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

ParseStatus parse_request(std::string_view data, Request& out, std::size_t& head_len,
                          const Limits& limits) {
  std::vector<std::string_view> lines;
  auto st = split_head(data, lines, head_len, limits);
  if (st != ParseStatus::complete) return st;
  auto rl = lines[0];
  auto sp1 = rl.find(' ');
  auto sp2 = rl.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2) return ParseStatus::bad;
  auto method = rl.substr(0, sp1);
  auto target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!is_token(method) || target.empty() || target.find(' ') != std::string_view::npos)
    return ParseStatus::bad;
  for (unsigned char c : target)
    if (c <= 0x20 || c == 0x7f) return ParseStatus::bad;
  if (!parse_version(rl.substr(sp2 + 1), out.version_minor)) return ParseStatus::bad;
  out.method = std::string(method);
  out.target = std::string(target);
  if (!parse_header_lines(lines, out.headers)) return ParseStatus::bad;
  return ParseStatus::complete;
}

ParseStatus parse_response(std::string_view data, Response& out, std::size_t& head_len,
                           const Limits& limits) {
  std::vector<std::string_view> lines;
  auto st = split_head(data, lines, head_len, limits);
  if (st != ParseStatus::complete) return st;
  auto sl = lines[0];
  if (sl.size() < 12 || !parse_version(sl.substr(0, 8), out.version_minor) || sl[8] != ' ')
    return ParseStatus::bad;
  auto code = sl.substr(9, 3);
  auto [p, ec] = std::from_chars(code.data(), code.data() + 3, out.status);
  if (ec != std::errc() || p != code.data() + 3 || out.status < 100) return ParseStatus::bad;
  if (sl.size() > 12) {
    if (sl[12] != ' ') return ParseStatus::bad;
    out.reason = std::string(sl.substr(13));
  }
  if (!parse_header_lines(lines, out.headers)) return ParseStatus::bad;
  return ParseStatus::complete;
}

std::string canonical_name(std::string_view name) {
  std::string out(name);
  for (char c : out)
    if (!is_token_char(static_cast<unsigned char>(c)) || c == ' ') return out;
  bool upper = true;
  for (char& c : out) {
    c = upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
              : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    upper = c == '-';
  }
  return out;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Request Entity Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

std::optional<Framing> request_framing(const Request& r) {
  if (auto te = r.headers.get("Transfer-Encoding")) {
    if (!iequals(trim(*te), "chunked")) return std::nullopt;  // only chunked is understood
    return Framing{Framing::chunked, 0};
  }
  auto cl = parse_content_length(r.headers);
  if (!cl) return std::nullopt;
  if (*cl == UINT64_MAX || *cl == 0) return Framing{Framing::none, 0};
  return Framing{Framing::sized, *cl};
}

std::optional<Framing> response_framing(const Response& r, std::string_view request_method) {
  if (request_method == "HEAD" || r.status / 100 == 1 || r.status == 204 || r.status == 304)
    return Framing{Framing::none, 0};
  if (auto te = r.headers.get("Transfer-Encoding")) {
    if (iequals(trim(*te), "chunked")) return Framing{Framing::chunked, 0};
    return Framing{Framing::until_close, 0};
  }
  auto cl = parse_content_length(r.headers);
  if (!cl) return std::nullopt;
  if (*cl == UINT64_MAX) return Framing{Framing::until_close, 0};
  if (*cl == 0) return Framing{Framing::none, 0};
  return Framing{Framing::sized, *cl};
}

std::size_t ChunkedScanner::feed(std::string_view data, std::string* payload) {
  std::size_t i = 0;
  constexpr std::size_t kMaxLine = 4096;
  while (i < data.size() && state_ != State::done && state_ != State::bad) {
    char c = data[i];
    switch (state_) {
      case State::size: {
        int v = -1;
        if (c >= '0' && c <= '9')
          v = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
          v = (c | 0x20) - 'a' + 10;
        if (v >= 0) {
          if (++size_digits_ > 15) {
            state_ = State::bad;
            break;
          }
          remaining_ = remaining_ * 16 + static_cast<unsigned>(v);
          ++i;
        } else if (size_digits_ == 0) {
          state_ = State::bad;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::size_ext;
          line_len_ = 0;
          ++i;
        } else if (c == '\r') {
          state_ = State::size_lf;
          ++i;
        } else if (c == '\n') {
          state_ = remaining_ ? State::data : State::trailer_start;
          ++i;
        } else {
          state_ = State::bad;
        }
        break;
      }
      case State::size_ext:
        if (c == '\r')
          state_ = State::size_lf;
        else if (c == '\n')
          state_ = remaining_ ? State::data : State::trailer_start;
        else if (++line_len_ > kMaxLine)
          state_ = State::bad;
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') {
          state_ = State::bad;
          break;
        }
        state_ = remaining_ ? State::data : State::trailer_start;
        ++i;
        break;
      case State::data: {
        auto n = std::min<std::uint64_t>(remaining_, data.size() - i);
        if (payload) payload->append(data.substr(i, n));
        remaining_ -= n;
        i += n;
        if (remaining_ == 0) state_ = State::data_cr;
        break;
      }
      case State::data_cr:
        if (c == '\r') {
          state_ = State::data_lf;
          ++i;
        } else if (c == '\n') {
          state_ = State::size;
          size_digits_ = 0;
          ++i;
        } else
          state_ = State::bad;
        break;
      case State::data_lf:
        if (c != '\n') {
          state_ = State::bad;
          break;
        }
        state_ = State::size;
        size_digits_ = 0;
        ++i;
        break;
      case State::trailer_start:
        if (c == '\r') {
          state_ = State::final_lf;
          ++i;
        } else if (c == '\n') {
          state_ = State::done;
          ++i;
        } else {
          state_ = State::trailer_line;
          line_len_ = 0;
        }
        break;
      case State::trailer_line:
        if (c == '\n')
          state_ = State::trailer_start;
        else if (++line_len_ > kMaxLine)
          state_ = State::bad;
        ++i;
        break;
      case State::final_lf:
        if (c != '\n') {
          state_ = State::bad;
          break;
        }
        state_ = State::done;
        ++i;
        break;
      case State::trailer_lf:
      case State::done:
      case State::bad:
        break;
    }
  }
  return i;
}

std::string response_407(std::string_view realm, bool proxy_connection_keepalive) {
  std::string out = "HTTP/1.1 407 Proxy Authentication Required\r\nConnection: close\r\n";
  out += "Proxy-Authenticate: Basic realm=\"";
  out += realm;
  out += "\"\r\n";
  if (proxy_connection_keepalive) out += "Proxy-Connection: close\r\n";
  out += "\r\n";
  return out;
}

std::string response_connect_established(std::string_view proxy_agent) {
  std::string out = "HTTP/1.1 200 Connection established\r\n";
  append_header(out, "Proxy-Agent", proxy_agent);
  out += "\r\n";
  return out;
}

std::string response_skeleton(int status, const std::vector<Header>& headers) {
  std::string out = status_line(1, status);
  out += "Connection: close\r\n";
  for (const auto& h : sorted_canonical(headers, {"Connection", "Content-Length"}))
    append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::string response_empty(int status, int version_minor, const std::vector<Header>& headers) {
  std::string out = status_line(version_minor, status) + "Content-Length: 0\r\n";
  for (const auto& h : sorted_canonical(headers, {"Content-Length"}))
    append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::string serialize_upstream_request(const Request& r, std::string_view origin_target,
                                       std::string_view host, const Framing& framing,
                                       bool keepalive) {
  std::string out;
  out.reserve(512);
  out += r.method;
  out += ' ';
  out += origin_target;
  out += " HTTP/1.1\r\n";
  append_header(out, "Host", host);
  auto ua = r.headers.get("User-Agent");
  append_header(out, "User-Agent", ua ? std::string_view(*ua) : "Go-http-client/1.1");
  if (framing.kind == Framing::sized)
    append_header(out, "Content-Length", std::to_string(framing.length));
  if (framing.kind == Framing::chunked) append_header(out, "Transfer-Encoding", "chunked");
  auto rest =
      sorted_canonical(r.headers.list, {"Host", "User-Agent", "Content-Length", "Transfer-Encoding",
                                        "Trailer", "Proxy-Authorization", "Proxy-Connection",
                                        "Gost-Target", "X-Gost-Target", "Gost-Record"});
  bool http10_client = r.version_minor == 0;
  for (const auto& h : rest) {
    if (http10_client && iequals(h.name, "Connection") && iequals(h.value, "keep-alive")) continue;
    append_header(out, h.name, h.value);
  }
  if (!keepalive || http10_client) append_header(out, "Connection", "close");
  out += "\r\n";
  return out;
}

std::string serialize_client_response(const Response& r, const Framing& framing,
                                      int client_version_minor) {
  int minor = client_version_minor == 0 ? 0 : r.version_minor;
  std::string out = minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(r.status);
  std::string_view reason = r.reason.empty() ? reason_phrase(r.status) : std::string_view(r.reason);
  if (!reason.empty()) {
    out += ' ';
    out += reason;
  }
  out += "\r\n";
  if (framing.kind == Framing::sized)
    append_header(out, "Content-Length", std::to_string(framing.length));
  if (framing.kind == Framing::chunked) append_header(out, "Transfer-Encoding", "chunked");
  if (framing.kind == Framing::until_close && !r.headers.has_token("Connection", "close"))
    append_header(out, "Connection", "close");
  for (const auto& h : sorted_canonical(r.headers.list, {"Content-Length", "Transfer-Encoding"}))
    append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::string connect_request(std::string_view target,
                            std::optional<std::pair<std::string, std::string>> auth,
                            const std::vector<Header>& extra_headers, bool udp) {
  std::vector<Header> headers;
  std::string user_agent = "Go-http-client/1.1";
  for (const auto& h : extra_headers) {
    if (iequals(h.name, "Host")) continue;
    if (iequals(h.name, "User-Agent")) {
      user_agent = h.value;
      continue;
    }
    if (iequals(h.name, "Proxy-Connection")) continue;
    if (auth && iequals(h.name, "Proxy-Authorization")) continue;
    headers.push_back(h);
  }
  if (auth)
    headers.push_back(
        {"Proxy-Authorization", "Basic " + base64_encode(auth->first + ":" + auth->second)});
  headers.push_back({"Proxy-Connection", "keep-alive"});
  if (udp) headers.push_back({"X-Gost-Protocol", "udp"});
  std::string out = "CONNECT ";
  out += target;
  out += " HTTP/1.1\r\n";
  append_header(out, "Host", target);
  append_header(out, "User-Agent", user_agent);
  for (const auto& h : sorted_canonical(headers, {})) append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::pair<std::string, std::string> parse_basic_auth(std::string_view value) {
  constexpr std::string_view prefix = "Basic ";
  if (value.substr(0, prefix.size()) != prefix) return {};
  auto decoded = base64_decode(value.substr(prefix.size()));
  if (!decoded) return {};
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return {*decoded, ""};
  return {decoded->substr(0, colon), decoded->substr(colon + 1)};
}

namespace {
std::uint32_t crc32(std::string_view s) {
  boost::crc_32_type crc;
  crc.process_bytes(s.data(), s.size());
  return crc.checksum();
}
}  // namespace

std::optional<std::string> decode_gost_target(std::string_view value) {
  auto outer = base64_decode(value, true, false);
  if (!outer || outer->size() < 4) return std::nullopt;
  std::uint32_t want = (static_cast<unsigned char>((*outer)[0]) << 24) |
                       (static_cast<unsigned char>((*outer)[1]) << 16) |
                       (static_cast<unsigned char>((*outer)[2]) << 8) |
                       static_cast<unsigned char>((*outer)[3]);
  auto inner = base64_decode(std::string_view(*outer).substr(4), true, false);
  if (!inner || crc32(*inner) != want) return std::nullopt;
  return inner;
}

std::string encode_gost_target(std::string_view host_port) {
  std::uint32_t c = crc32(host_port);
  std::string raw;
  raw += static_cast<char>(c >> 24);
  raw += static_cast<char>(c >> 16);
  raw += static_cast<char>(c >> 8);
  raw += static_cast<char>(c);
  raw += base64_encode(host_port, true, false);
  return base64_encode(raw, true, false);
}

std::optional<AbsoluteUri> split_absolute_uri(std::string_view target) {
  auto sep = target.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  AbsoluteUri u;
  for (char c : target.substr(0, sep)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return std::nullopt;
    u.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  auto rest = target.substr(sep + 3);
  auto end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  u.authority = std::string(authority);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (auto hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  if (path.empty() || path.front() != '/')
    u.path = "/" + std::string(path);
  else
    u.path = std::string(path);
  return u;
}

}  // namespace gost::proto::http
