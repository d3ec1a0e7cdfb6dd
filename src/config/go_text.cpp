#include "config/go_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace gost::config::detail {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char lower_char(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int digit_value(char c) {
  if (is_digit(c)) return c - '0';
  char l = lower_char(c);
  if (l >= 'a' && l <= 'z') return l - 'a' + 10;
  return 99;
}

// Parses unsigned digits of `base`; nullopt on empty input, bad digit or overflow.
std::optional<std::uint64_t> parse_unsigned(std::string_view s, int base) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  for (char c : s) {
    int d = digit_value(c);
    if (d >= base) return std::nullopt;
    if (v > (max - static_cast<std::uint64_t>(d)) / static_cast<std::uint64_t>(base)) {
      return std::nullopt;
    }
    v = v * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
  }
  return v;
}

std::optional<std::int64_t> apply_sign(std::uint64_t v, bool neg) {
  const std::uint64_t limit = std::uint64_t{1} << 63;
  if (neg) {
    if (v > limit) return std::nullopt;
    return v == limit ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(v);
  }
  if (v >= limit) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

bool cut_sign(std::string_view& s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  return neg;
}

// Shortest round-trip decimal digits of |v| and the decimal point position (value = 0.d * 10^dp).
struct Digits {
  std::string d;
  int dp = 0;
};

Digits shortest_digits(double v) {
  std::array<char, 64> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), std::fabs(v),
                           std::chars_format::scientific);
  std::string_view text(buf.data(), static_cast<std::size_t>(res.ptr - buf.data()));
  std::size_t e = text.find('e');
  Digits out;
  for (char c : text.substr(0, e)) {
    if (is_digit(c)) out.d.push_back(c);
  }
  int exp = 0;
  std::string_view es = text.substr(e + 1);
  bool neg = cut_sign(es);
  std::from_chars(es.data(), es.data() + es.size(), exp);
  out.dp = (neg ? -exp : exp) + 1;
  while (out.d.size() > 1 && out.d.back() == '0') out.d.pop_back();
  if (out.d == "0") out.dp = 1;
  return out;
}

std::string format_fixed(const Digits& g) {
  const int nd = static_cast<int>(g.d.size());
  if (g.dp <= 0) return "0." + std::string(static_cast<std::size_t>(-g.dp), '0') + g.d;
  if (g.dp >= nd) return g.d + std::string(static_cast<std::size_t>(g.dp - nd), '0');
  return g.d.substr(0, static_cast<std::size_t>(g.dp)) + "." +
         g.d.substr(static_cast<std::size_t>(g.dp));
}

std::string format_exp(const Digits& g) {
  std::string out(1, g.d[0]);
  if (g.d.size() > 1) out += "." + g.d.substr(1);
  int exp = g.dp - 1;
  out += exp < 0 ? "e-" : "e+";
  int a = std::abs(exp);
  if (a < 10) out += '0';
  out += std::to_string(a);
  return out;
}

// time.Parse-like check for the timestamp layouts yaml.v3 tries.
bool take_number(std::string_view& s, std::size_t min_len, std::size_t max_len, int lo, int hi) {
  std::size_t n = 0;
  while (n < s.size() && n < max_len && is_digit(s[n])) ++n;
  if (n < min_len) return false;
  int v = 0;
  std::from_chars(s.data(), s.data() + n, v);
  s.remove_prefix(n);
  return v >= lo && v <= hi;
}

bool take_char(std::string_view& s, char c) {
  if (s.empty() || s[0] != c) return false;
  s.remove_prefix(1);
  return true;
}

bool take_clock(std::string_view& s) {
  if (!take_number(s, 1, 2, 0, 23) || !take_char(s, ':') || !take_number(s, 1, 2, 0, 59) ||
      !take_char(s, ':') || !take_number(s, 1, 2, 0, 59)) {
    return false;
  }
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    if (!take_number(s, 1, 9, 0, 999999999)) return false;
  }
  return true;
}

bool take_zone(std::string_view& s) {
  if (take_char(s, 'Z')) return true;
  if (s.empty() || (s[0] != '+' && s[0] != '-')) return false;
  s.remove_prefix(1);
  return take_number(s, 2, 2, 0, 23) && take_char(s, ':') && take_number(s, 2, 2, 0, 59);
}

bool looks_like_timestamp(std::string_view s) {
  if (s.size() < 5 || !std::all_of(s.begin(), s.begin() + 4, is_digit) || s[4] != '-') {
    return false;
  }
  s.remove_prefix(5);
  if (!take_number(s, 1, 2, 1, 12) || !take_char(s, '-') || !take_number(s, 1, 2, 1, 31)) {
    return false;
  }
  if (s.empty()) return true;
  if (s[0] == ' ') {
    s.remove_prefix(1);
    return take_clock(s) && s.empty();
  }
  if (s[0] != 'T' && s[0] != 't') return false;
  s.remove_prefix(1);
  return take_clock(s) && take_zone(s) && s.empty();
}

// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
bool yaml_style_float(std::string_view s) {
  cut_sign(s);
  auto digits = [&s]() {
    std::size_t n = 0;
    while (n < s.size() && is_digit(s[n])) ++n;
    s.remove_prefix(n);
    return n;
  };
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    if (digits() == 0) return false;
  } else {
    if (digits() == 0) return false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      digits();
    }
  }
  if (!s.empty() && (s[0] == 'e' || s[0] == 'E')) {
    s.remove_prefix(1);
    cut_sign(s);
    if (digits() == 0) return false;
  }
  return s.empty();
}

std::optional<PlainScalar> lookup_special(std::string_view t) {
  PlainScalar p;
  auto any_of = [t](std::initializer_list<std::string_view> l) {
    return std::find(l.begin(), l.end(), t) != l.end();
  };
  if (any_of({"true", "True", "TRUE"})) {
    p.kind = PlainKind::Bool;
    p.b = true;
  } else if (any_of({"false", "False", "FALSE"})) {
    p.kind = PlainKind::Bool;
  } else if (any_of({"", "~", "null", "Null", "NULL"})) {
    p.kind = PlainKind::Null;
  } else if (any_of({".nan", ".NaN", ".NAN"})) {
    p.kind = PlainKind::Float;
    p.f = std::numeric_limits<double>::quiet_NaN();
  } else if (any_of({".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"})) {
    p.kind = PlainKind::Float;
    p.f = std::numeric_limits<double>::infinity();
  } else if (any_of({"-.inf", "-.Inf", "-.INF"})) {
    p.kind = PlainKind::Float;
    p.f = -std::numeric_limits<double>::infinity();
  } else {
    return std::nullopt;
  }
  return p;
}

PlainScalar resolve_number(std::string_view text) {
  PlainScalar p;
  if (looks_like_timestamp(text)) {
    p.kind = PlainKind::Timestamp;
    return p;
  }
  std::string plain;
  for (char c : text) {
    if (c != '_') plain.push_back(c);
  }
  if (auto i = go_parse_int_base0(plain)) {
    p.kind = PlainKind::Int;
    p.i = *i;
    return p;
  }
  std::string_view unsigned_text = plain;
  if (!unsigned_text.empty() && unsigned_text[0] != '-' && unsigned_text[0] != '+') {
    std::string_view rest = unsigned_text;
    int base = 10;
    if (rest.size() > 1 && rest[0] == '0') {
      char l = lower_char(rest[1]);
      base = l == 'x' ? 16 : l == 'o' ? 8 : l == 'b' ? 2 : 8;
      rest.remove_prefix(l == 'x' || l == 'o' || l == 'b' ? 2 : 1);
    }
    if (auto u = parse_unsigned(rest, base)) {
      p.kind = PlainKind::Float;  // beyond int64: keep the magnitude
      p.f = static_cast<double>(*u);
      return p;
    }
  }
  if (yaml_style_float(plain)) {
    if (auto f = go_parse_float(plain)) {
      p.kind = PlainKind::Float;
      p.f = *f;
    }
  }
  return p;
}

}  // namespace

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower_char(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower_char(a[i]) != lower_char(b[i])) return false;
  }
  return true;
}

std::optional<std::int64_t> go_atoi(std::string_view s) {
  bool neg = cut_sign(s);
  if (!std::all_of(s.begin(), s.end(), is_digit)) return std::nullopt;
  auto v = parse_unsigned(s, 10);
  if (!v) return std::nullopt;
  return apply_sign(*v, neg);
}

std::optional<std::int64_t> go_parse_int_base0(std::string_view s) {
  bool neg = cut_sign(s);
  int base = 10;
  if (s.size() > 1 && s[0] == '0') {
    char l = lower_char(s[1]);
    if (l == 'x' || l == 'o' || l == 'b') {
      base = l == 'x' ? 16 : l == 'o' ? 8 : 2;
      s.remove_prefix(2);
    } else {
      base = 8;
      s.remove_prefix(1);
    }
  }
  std::string digits;
  for (char c : s) {
    if (c != '_') digits.push_back(c);
  }
  auto v = parse_unsigned(digits, base);
  if (!v) return std::nullopt;
  return apply_sign(*v, neg);
}

std::optional<double> go_parse_float(std::string_view s) {
  std::string_view body = s;
  bool neg = cut_sign(body);
  std::string lower = ascii_lower(body);
  if (lower == "inf" || lower == "infinity") {
    return neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (lower == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (!yaml_style_float(body)) return std::nullopt;
  double v = 0;
  auto res = std::from_chars(body.data(), body.data() + body.size(), v);
  if (res.ec != std::errc() || res.ptr != body.data() + body.size()) return std::nullopt;
  return neg ? -v : v;
}

std::optional<bool> go_parse_bool(std::string_view s) {
  for (std::string_view t : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (s == t) return true;
  }
  for (std::string_view f : {"0", "f", "F", "FALSE", "false", "False"}) {
    if (s == f) return false;
  }
  return std::nullopt;
}

std::string go_format_float(double v, char fmt) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  Digits g = shortest_digits(v);
  std::string sign = std::signbit(v) ? "-" : "";
  if (fmt == 'f') return sign + format_fixed(g);
  if (fmt == 'e') return sign + format_exp(g);
  const int exp = g.dp - 1;
  if (exp < -4 || exp >= 6) return sign + format_exp(g);
  return sign + format_fixed(g);
}

std::string go_json_float(double v) {
  double a = std::fabs(v);
  if (a != 0 && (a < 1e-6 || a >= 1e21)) {
    std::string s = go_format_float(v, 'e');
    std::size_t n = s.size();
    if (n >= 4 && s[n - 4] == 'e' && s[n - 3] == '-' && s[n - 2] == '0') s.erase(n - 2, 1);
    return s;
  }
  return go_format_float(v, 'f');
}

PlainScalar resolve_plain(std::string_view text) {
  if (auto special = lookup_special(text)) return *special;
  PlainScalar str;
  const char c = text[0];
  if (c == '.') {
    if (auto f = go_parse_float(text)) {
      str.kind = PlainKind::Float;
      str.f = *f;
    }
    return str;
  }
  if (c == '+' || c == '-' || is_digit(c)) return resolve_number(text);
  return str;
}

// ---- Go's string quoting ---------------------------------------------------------------------

namespace {

constexpr char kHex[] = "0123456789abcdef";

// utf8.DecodeRuneInString: false for an invalid sequence (then it is one byte wide).
bool decode_utf8(std::string_view s, std::size_t i, char32_t& r, std::size_t& len) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  std::size_t n = s.size() - i;
  if (c < 0x80) {
    r = c;
    len = 1;
    return true;
  }
  auto cont = [&](std::size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF && cont(1)) {
    r = (char32_t(c & 0x1F) << 6) | (b(1) & 0x3F);
    len = 2;
    return true;
  }
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    r = (char32_t(c & 0x0F) << 12) | (char32_t(b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (r < 0x800 || (r >= 0xD800 && r <= 0xDFFF)) return false;
    len = 3;
    return true;
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    r = (char32_t(c & 0x07) << 18) | (char32_t(b(1) & 0x3F) << 12) | (char32_t(b(2) & 0x3F) << 6) |
        (b(3) & 0x3F);
    if (r < 0x10000 || r > 0x10FFFF) return false;
    len = 4;
    return true;
  }
  return false;
}

}  // namespace

void append_go_json_string(std::string& out, std::string_view s, bool escape_html) {
  out.push_back('"');
  std::size_t start = 0, i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' &&
        !(escape_html && (c == '<' || c == '>' || c == '&'))) {
      ++i;
      continue;
    }
    if (c < 0x80) {
      out.append(s, start, i - start);
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
      }
      start = ++i;
      continue;
    }
    char32_t r;
    std::size_t len;
    if (!decode_utf8(s, i, r, len)) {
      out.append(s, start, i - start);
      out += "\\ufffd";
      start = ++i;
      continue;
    }
    if (r == 0x2028 || r == 0x2029) {
      out.append(s, start, i - start);
      out += r == 0x2028 ? "\\u2028" : "\\u2029";
      start = i + len;
    }
    i += len;
  }
  out.append(s, start, s.size() - start);
  out.push_back('"');
}

namespace {

// strconv.IsPrint for non-ASCII runes, approximated without Unicode tables: the C1 controls,
// spaces other than U+0020, format characters, private use and non-characters are not printable.
bool is_print(char32_t r) {
  if (r < 0xA1) return false;  // C1 controls and U+00A0
  if (r == 0xAD || r == 0x61C || r == 0x1680 || r == 0x180E || r == 0x3000 || r == 0xFEFF)
    return false;
  if ((r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F))
    return false;
  if ((r >= 0xE000 && r <= 0xF8FF) || (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE || r == 0xFFFF)
    return false;
  if (r >= 0xE0000) return false;  // tags, variation selectors supplement, private use planes
  return true;
}

}  // namespace

void append_go_quoted(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    char32_t r;
    std::size_t len;
    if (!decode_utf8(s, i, r, len)) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
      ++i;
      continue;
    }
    if (r < 0x80) {
      switch (r) {
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          out += "\\x";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
      }
    } else if (is_print(r)) {
      out.append(s, i, len);
    } else if (r < 0x10000) {
      out += "\\u";
      for (int sh = 12; sh >= 0; sh -= 4) out.push_back(kHex[(r >> sh) & 0xF]);
    } else {
      out += "\\U";
      for (int sh = 28; sh >= 0; sh -= 4) out.push_back(kHex[(r >> sh) & 0xF]);
    }
    i += len;
  }
  out.push_back('"');
}

std::string trim_space(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n\v\f");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n\v\f");
  return std::string(s.substr(first, last - first + 1));
}

}  // namespace gost::config::detail
