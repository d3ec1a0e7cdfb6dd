#include "proto/pht.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "proto/base64.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GOST_PHT_AVX2 1
#endif

namespace gost::proto::pht {
namespace {

// ---- bulk base64 ------------------------------------------------------------------------------
// Every tunnel byte of PHT crosses base64 twice (push and pull, encoded on one side and decoded on
// the other), which the scalar tables of proto/base64 do at ~5 instructions a character: a third
// of the user-space instructions of an HTTP/3 tunnel. With AVX2 (checked at run time) the bulk of
// a line goes 24 bytes ↔ 32 characters per step; the ends (and every line on other CPUs) stay
// with proto/base64, which also decides every line the fast path finds a bad character in, so
// results and error cases are exactly those of proto/base64.
#ifdef GOST_PHT_AVX2

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}

// Encodes `n` bytes (a multiple of 24; the input must be readable up to n + 4) to n / 3 * 4
// characters at `out`.
__attribute__((target("avx2"))) void encode_avx2(char* out, const unsigned char* in,
                                                 std::size_t n) {
  const __m256i kAsciiOffset =
      _mm256_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0,  //
                       65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
  // Each 32-bit lane gets the bytes (s1, s0, s2, s1) of its group of three.
  const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,  //
                                          1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
  for (std::size_t i = 0; i < n; i += 24, out += 32) {
    __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 12));
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    v = _mm256_shuffle_epi8(v, spread);
    // As 16-bit halves: s0s1 and s1s2. a = bits 15..10 of the first, b = 9..4; c = bits 11..6
    // of the second, d = 5..0: a and c move down by a high multiply, b and d up by a low one,
    // to bytes 0, 1, 2, 3 of the lane.
    __m256i ac = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00)),
                                    _mm256_set1_epi32(0x04000040));
    __m256i bd = _mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0)),
                                    _mm256_set1_epi32(0x01000010));
    __m256i x = _mm256_or_si256(ac, bd);  // 6-bit values
    // To ASCII by an offset per range: 0..25 → 'A'.. (+65), 26..51 → 'a'.. (+71), 52..61 → '0'..
    // (-4), 62 → '+' (-19), 63 → '/' (-16). Range index: 0 up to 25, 1 up to 51, then 2..13.
    __m256i range = _mm256_sub_epi8(_mm256_subs_epu8(x, _mm256_set1_epi8(51)),
                                    _mm256_cmpgt_epi8(x, _mm256_set1_epi8(25)));
    __m256i off = _mm256_shuffle_epi8(kAsciiOffset, range);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi8(x, off));
  }
}

// Decodes `n` characters (a multiple of 32) to n / 4 * 3 bytes at `out`, which must have room
// for 8 more. False at the first block with a character outside the standard alphabet.
__attribute__((target("avx2"))) bool decode_avx2(char* out, const char* in, std::size_t n) {
  // Validity by nibbles: the high nibble of a character picks its class (bit), the low nibble
  // the classes it is not valid in: '+' '/' (2: B, F), digits (3: 0..9), A-O a-o (4, 6: 1..15),
  // P-Z p-z (5, 7: 0..10), nothing else (0, 1, 8..15).
  constexpr char kSym = 1, kDig = 2, kAO = 4, kPZ = 8, kNone = 16;
  auto bad = [&](int lo) {
    return static_cast<char>(kNone | (lo != 0xB && lo != 0xF ? kSym : 0) | (lo > 9 ? kDig : 0) |
                             (lo == 0 ? kAO : 0) | (lo > 10 ? kPZ : 0));
  };
  const __m256i lo_bad = _mm256_setr_epi8(
      bad(0), bad(1), bad(2), bad(3), bad(4), bad(5), bad(6), bad(7), bad(8), bad(9), bad(10),
      bad(11), bad(12), bad(13), bad(14), bad(15), bad(0), bad(1), bad(2), bad(3), bad(4), bad(5),
      bad(6), bad(7), bad(8), bad(9), bad(10), bad(11), bad(12), bad(13), bad(14), bad(15));
  const __m256i hi_class =
      _mm256_setr_epi8(kNone, kNone, kSym, kDig, kAO, kPZ, kAO, kPZ, kNone, kNone, kNone, kNone,
                       kNone, kNone, kNone, kNone, kNone, kNone, kSym, kDig, kAO, kPZ, kAO, kPZ,
                       kNone, kNone, kNone, kNone, kNone, kNone, kNone, kNone);
  // The value is the character plus an offset per high nibble: '+' +19, digits +4, upper -65,
  // lower -71; '/' (high nibble 2 as '+') looks one entry down: +16.
  const __m256i offset = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,  //
                                        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  for (std::size_t i = 0; i < n; i += 32, out += 24) {
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble);
    __m256i lo = _mm256_and_si256(c, nibble);
    if (!_mm256_testz_si256(_mm256_shuffle_epi8(lo_bad, lo), _mm256_shuffle_epi8(hi_class, hi)))
      return false;
    __m256i slash = _mm256_cmpeq_epi8(c, _mm256_set1_epi8('/'));
    __m256i x = _mm256_add_epi8(c, _mm256_shuffle_epi8(offset, _mm256_add_epi8(hi, slash)));
    // Pairs → 12 bits (a * 64 + b), pairs of those → 24 bits per 32-bit lane, then the three
    // bytes of each lane big-endian first, and the two halves' 12 bytes side by side.
    x = _mm256_maddubs_epi16(x, _mm256_set1_epi32(0x01400140));
    x = _mm256_madd_epi16(x, _mm256_set1_epi32(0x00011000));
    x = _mm256_shuffle_epi8(x, pack);
    x = _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), x);
  }
  return true;
}

#endif

}  // namespace

bool base64_simd() {
#ifdef GOST_PHT_AVX2
  return have_avx2();
#else
  return false;
#endif
}

namespace {

// Appends the standard padded encoding of `raw`.
void encode_append(std::string& out, std::string_view raw) {
#ifdef GOST_PHT_AVX2
  if (raw.size() >= 28 && have_avx2()) {
    std::size_t bulk = (raw.size() - 4) / 24 * 24;  // the loads read 4 bytes past a block
    std::size_t old = out.size();
    out.resize(old + bulk / 3 * 4);
    encode_avx2(out.data() + old, reinterpret_cast<const unsigned char*>(raw.data()), bulk);
    raw.remove_prefix(bulk);
  }
#endif
  base64_append(out, raw);
}

// Decodes standard padded base64 and appends the bytes; false (out unchanged) when invalid.
bool decode_append(std::string& out, std::string_view text) {
#ifdef GOST_PHT_AVX2
  // The bulk in blocks of 32; at least the last quartet (with any padding) stays for the scalar
  // part, which sees a valid text exactly when the whole was one.
  if (text.size() >= 36 && text.size() % 4 == 0 && have_avx2()) {
    std::size_t bulk = (text.size() - 4) / 32 * 32;
    std::size_t old = out.size();
    out.resize(old + bulk / 4 * 3 + 8);
    if (decode_avx2(out.data() + old, text.data(), bulk)) {
      out.resize(old + bulk / 4 * 3);
      if (base64_decode_append(out, text.substr(bulk))) return true;
    }
    out.resize(old);
    return false;  // a character outside the alphabet (or bad padding) somewhere
  }
#endif
  return base64_decode_append(out, text);
}

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
  encode_append(out, raw);
  out += '\n';
  return out;
}

std::optional<std::string> decode_line(std::string_view line) {
  std::string out;
  if (line.find('\r') == std::string_view::npos) {
    if (!decode_append(out, line)) return std::nullopt;
    return out;
  }
  std::string clean;
  clean.reserve(line.size());
  for (char c : line)
    if (c != '\r') clean += c;
  if (!decode_append(out, clean)) return std::nullopt;
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
  encode_append(out, raw);
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
