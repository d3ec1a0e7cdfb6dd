#include "proto/pht.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "proto/base64.hpp"

namespace gost::proto::pht {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's unescape: %XX must be two hex digits; in a query '+' means space.
std::optional<std::string> unescape(std::string_view s, bool query) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && query) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

void append_hex(std::string& out, std::size_t v) {
  char buf[16];
  int n = 0;
  do {
    buf[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  while (n) out += buf[--n];
}

std::string status_line(int status, int version_minor) {
  std::string s = version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
  s += std::to_string(status);
  s += ' ';
  s += reason(status);
  s += "\r\n";
  return s;
}

void append_date(std::string& out, std::string_view date) {
  if (date.empty()) return;
  out += "Date: ";
  out += date;
  out += "\r\n";
}

}  // namespace

std::string normalize_path(std::string_view configured, std::string_view fallback) {
  if (configured.empty() || configured.front() != '/') return std::string(fallback);
  return std::string(configured);
}

std::optional<Target> parse_target(std::string_view target) {
  std::string absolute_path;
  if (target.empty() || target.front() != '/') {
    auto abs = http::split_absolute_uri(target);
    if (!abs) return std::nullopt;
    absolute_path = std::move(abs->path);
    target = absolute_path;
  }
  auto q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  auto path = unescape(raw_path, false);
  if (!path) return std::nullopt;
  Target t;
  t.path = std::move(*path);
  // As url.ParseQuery: every pair is looked at; an error anywhere fails the whole query.
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.find(';') != std::string_view::npos) {
      t.bad_query = true;
      continue;
    }
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = unescape(pair.substr(0, eq), true);
    auto value =
        unescape(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value) {
      t.bad_query = true;
      continue;
    }
    if (*key == "token" && !t.token) t.token = std::move(*value);
  }
  if (t.token && t.token->size() > kMaxToken) t.bad_query = true;
  return t;
}

std::string query_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 15];
    }
  }
  return out;
}

std::string request_target(std::string_view path, std::string_view token) {
  std::string out(path);
  out += "?token=";
  out += query_escape(token);
  return out;
}

std::string push_body(std::string_view raw) {
  std::string out;
  if (raw.empty()) return out;
  out.reserve(base64_encoded_size(raw.size()) + 1);
  base64_append(out, raw);
  out += '\n';
  return out;
}

std::optional<std::string> decode_line(std::string_view line) {
  std::string out;
  if (line.find('\r') == std::string_view::npos) {
    if (!base64_decode_append(out, line)) return std::nullopt;
    return out;
  }
  std::string clean;
  clean.reserve(line.size());
  for (char c : line)
    if (c != '\r') clean += c;
  if (!base64_decode_append(out, clean)) return std::nullopt;
  return out;
}

void append_pull_chunk(std::string& out, std::string_view raw) {
  std::size_t line = raw.empty() ? 1 : base64_encoded_size(raw.size()) + 1;
  append_hex(out, line);
  out += "\r\n";
  append_pull_line(out, raw);
  out += "\r\n";
}

void append_pull_line(std::string& out, std::string_view raw) {
  base64_append(out, raw);
  out += '\n';
}

std::optional<std::string> LineReader::next() {
  auto nl = buf_.find('\n', off_);
  if (nl == std::string::npos) {
    if (buf_.size() - off_ > kMaxLine) too_long_ = true;
    // Keep only the unfinished line: the buffer never holds more than one line plus one read.
    if (off_ > 0) {
      buf_.erase(0, off_);
      off_ = 0;
    }
    if (buf_.empty()) std::string().swap(buf_);  // nothing held while idle
    return std::nullopt;
  }
  if (nl - off_ > kMaxLine) {
    too_long_ = true;
    return std::nullopt;
  }
  std::string line = buf_.substr(off_, nl - off_);
  off_ = nl + 1;
  return line;
}

std::string authorize_body(std::string_view token) {
  std::string out = "token=";
  out += token;
  return out;
}

std::optional<std::string> parse_authorize_body(std::string_view body) {
  constexpr std::string_view kPrefix = "token=";
  if (body.substr(0, kPrefix.size()) != kPrefix || body.size() == kPrefix.size())
    return std::nullopt;
  return std::string(body.substr(kPrefix.size()));
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

const std::string& current_http_date() {
  thread_local std::time_t last = 0;
  thread_local std::string text;
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    text = http_date(now);
  }
  return text;
}

std::string_view reason(int status) {
  switch (status) {
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    default:
      return http::reason_phrase(status);
  }
}

std::string empty_response(int status, std::string_view date, int version_minor, bool close) {
  std::string out = status_line(status, version_minor);
  append_date(out, date);
  out += "Content-Length: 0\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

std::string authorize_response(std::string_view token, std::string_view date, int version_minor,
                               bool close) {
  std::string body = authorize_body(token);
  std::string out = status_line(200, version_minor);
  append_date(out, date);
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += "\r\nContent-Type: text/plain; charset=utf-8\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

std::string not_found_response(std::string_view date, int version_minor, bool close) {
  std::string out = status_line(404, version_minor);
  out += "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n";
  append_date(out, date);
  out += "Content-Length: 19\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n404 page not found\n";
  return out;
}

std::string pull_head(std::string_view date, int version_minor) {
  std::string out = status_line(200, version_minor);
  out += "X-Accel-Buffering: no\r\n";
  append_date(out, date);
  if (version_minor != 0) out += "Transfer-Encoding: chunked\r\n";
  out += "\r\n";
  return out;
}

std::string bad_request_close() {
  return "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: "
         "close\r\n\r\n400 Bad Request";
}

std::string head_too_large_close() {
  return "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
         "charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large";
}

std::string client_request(std::string_view method, std::string_view target,
                           std::string_view authority, const std::vector<http::Header>& headers,
                           const std::string* body) {
  std::string out;
  out.reserve(256 + (body ? body->size() : 0));
  out += method;
  out += ' ';
  out += target;
  out += " HTTP/1.1\r\nHost: ";
  out += authority;
  out += "\r\n";
  bool agent = std::any_of(headers.begin(), headers.end(), [](const http::Header& h) {
    return http::canonical_name(h.name) == "User-Agent";
  });
  if (!agent) out += "User-Agent: Go-http-client/1.1\r\n";
  if (body) {
    out += "Content-Length: ";
    out += std::to_string(body->size());
    out += "\r\n";
  }
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  out += "\r\n";
  if (body) out += *body;
  return out;
}

}  // namespace gost::proto::pht
