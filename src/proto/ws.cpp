#include "proto/ws.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "proto/base64.hpp"

namespace gost::proto::ws {
namespace {

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kDeflateOffer =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

bool valid_utf8(std::span<const std::uint8_t> s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid (Go's utf8.Valid).
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// gorilla's isValidReceivedCloseCode.
bool valid_received_close_code(std::uint16_t code) {
  switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
      return true;
    default:
      return code >= 3000 && code <= 4999;
  }
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return (std::tolower(static_cast<unsigned char>(c)) - 'a') + 10;
}

}  // namespace

// ---- handshake ----------------------------------------------------------------------------------

std::string accept_key(std::string_view key) {
  std::string input(key);
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

std::string make_key(std::span<const std::uint8_t, 16> random) {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(random.data()), 16));
}

std::string escape_path(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  if (path.empty() || path.front() != '/') out += '/';
  for (unsigned char c : path) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                std::strchr("-_.~$&+,/:;=@", c) != nullptr;
    if (keep && c != 0) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> unescape_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      out += path[i];
      continue;
    }
    if (i + 2 >= path.size()) return std::nullopt;
    if (!is_hex(path[i + 1]) || !is_hex(path[i + 2])) return std::nullopt;
    out += static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
    i += 2;
  }
  return out;
}

bool is_reserved_client_header(std::string_view name) {
  const auto c = http::canonical_name(name);
  return c == "Upgrade" || c == "Connection" || c == "Sec-Websocket-Key" ||
         c == "Sec-Websocket-Version" || c == "Sec-Websocket-Extensions" || c == "Content-Length" ||
         c == "Transfer-Encoding" || c == "Trailer";
}

std::string client_request(const ClientRequest& r) {
  std::string host = r.host;
  std::string user_agent = "Go-http-client/1.1";
  // gorilla sets these keys verbatim (non-canonical "WebSocket"); Go's Header.Write sorts keys
  // bytewise, so they interleave with the custom headers by name.
  std::vector<http::Header> rest = {{"Connection", "Upgrade"},
                                    {"Sec-WebSocket-Key", r.key},
                                    {"Sec-WebSocket-Version", "13"},
                                    {"Upgrade", "websocket"}};
  if (r.compression) rest.push_back({"Sec-WebSocket-Extensions", std::string(kDeflateOffer)});
  for (const auto& h : r.headers) {
    auto name = http::canonical_name(h.name);
    if (name == "Host") {
      host = h.value;
    } else if (name == "User-Agent") {
      user_agent = h.value;
    } else if (name == "Content-Length" || name == "Transfer-Encoding" || name == "Trailer") {
      continue;  // Go's request writer never copies these from the header map
    } else {
      rest.push_back({std::move(name), h.value});
    }
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const http::Header& a, const http::Header& b) { return a.name < b.name; });
  std::string out = "GET " + escape_path(r.path) + " HTTP/1.1\r\n";
  append_header(out, "Host", host);
  if (!user_agent.empty()) append_header(out, "User-Agent", user_agent);
  for (const auto& h : rest) append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

int check_request(const http::Request& r, std::string_view path) {
  // Go's ServeMux compares the decoded path of the request URI (origin or absolute form).
  std::string_view target = r.target;
  std::string absolute_path;
  if (!target.empty() && target.front() != '/') {
    auto uri = http::split_absolute_uri(target);
    if (!uri) return 404;
    absolute_path = uri->path;
    target = absolute_path;
  }
  target = target.substr(0, target.find('?'));
  auto decoded = unescape_path(target);
  if (!decoded) return 400;
  bool match =
      path.size() > 1 && path.back() == '/' ? decoded->starts_with(path) : *decoded == path;
  if (!match) return 404;
  // gorilla's Upgrader.Upgrade, in its order.
  if (!r.headers.has_token("Connection", "upgrade")) return 400;
  if (!r.headers.has_token("Upgrade", "websocket")) return 400;
  if (r.method != "GET") return 405;
  if (!r.headers.has_token("Sec-Websocket-Version", "13")) return 400;
  const std::string* key = r.headers.get("Sec-Websocket-Key");
  if (!key || key->empty()) return 400;
  auto raw = base64_decode(*key);
  if (!raw || raw->size() != 16) return 400;
  return 101;
}

std::string response_101(std::string_view key, const std::vector<http::Header>& extra) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  append_header(out, "Sec-WebSocket-Accept", accept_key(key));
  for (const auto& h : extra) append_header(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::string error_response(int status, std::string_view date, bool connection_close,
                           int version_minor) {
  std::string body =
      status == 404 ? std::string("404 page not found") : std::string(http::reason_phrase(status));
  body += '\n';
  std::string out = version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += http::reason_phrase(status);
  out += "\r\n";
  append_header(out, "Content-Type", "text/plain; charset=utf-8");
  if (status != 404) append_header(out, "Sec-Websocket-Version", "13");
  append_header(out, "X-Content-Type-Options", "nosniff");
  append_header(out, "Date", date);
  append_header(out, "Content-Length", std::to_string(body.size()));
  if (connection_close && version_minor > 0) append_header(out, "Connection", "close");
  out += "\r\n";
  out += body;
  return out;
}

std::string malformed_request_response(int status) {
  std::string text = std::to_string(status) + " " + std::string(http::reason_phrase(status));
  return "HTTP/1.1 " + text +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + text;
}

std::string http_date(std::int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::string check_response(const http::Response& r, std::string_view key) {
  if (r.status != 101) {
    std::string why = "bad handshake: status " + std::to_string(r.status);
    if (!r.reason.empty()) why += " " + r.reason;
    return why;
  }
  if (!r.headers.has_token("Upgrade", "websocket"))
    return "bad handshake: no 'websocket' token in Upgrade";
  if (!r.headers.has_token("Connection", "upgrade"))
    return "bad handshake: no 'upgrade' token in Connection";
  const std::string* accept = r.headers.get("Sec-Websocket-Accept");
  if (!accept || *accept != accept_key(key)) return "bad handshake: wrong Sec-WebSocket-Accept";
  const std::string* ext = r.headers.get("Sec-Websocket-Extensions");
  if (ext && ext->find("permessage-deflate") != std::string::npos)
    return "the server enabled permessage-deflate, which this implementation does not support";
  return {};
}

// ---- framing ------------------------------------------------------------------------------------

std::size_t encode_header(std::uint8_t* out, bool fin, Opcode op, std::uint64_t length,
                          const MaskKey* mask) {
  std::size_t n = 0;
  out[n++] = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | static_cast<std::uint8_t>(op));
  const std::uint8_t mbit = mask ? 0x80 : 0x00;
  if (length < 126) {
    out[n++] = static_cast<std::uint8_t>(mbit | length);
  } else if (length <= 0xFFFF) {
    out[n++] = mbit | 126;
    out[n++] = static_cast<std::uint8_t>(length >> 8);
    out[n++] = static_cast<std::uint8_t>(length);
  } else {
    out[n++] = mbit | 127;
    for (int i = 7; i >= 0; --i) out[n++] = static_cast<std::uint8_t>(length >> (8 * i));
  }
  if (mask) {
    std::memcpy(out + n, mask->data(), 4);
    n += 4;
  }
  return n;
}

void mask_copy(std::uint8_t* dst, const std::uint8_t* src, std::size_t n, const MaskKey& key,
               std::size_t pos) {
  pos &= 3;
  std::size_t i = 0;
  // Byte by byte until the key is aligned, then 8 bytes at a time. Safe for dst <= src (in-place
  // compaction): every word is loaded before the store that may overlap it.
  for (; i < n && pos != 0; ++i, pos = (pos + 1) & 3) dst[i] = src[i] ^ key[pos];
  std::uint64_t k8;
  std::uint8_t rep[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  std::memcpy(&k8, rep, 8);
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= k8;
    std::memcpy(dst + i, &w, 8);
  }
  for (std::size_t k = 0; i < n; ++i, ++k) dst[i] = src[i] ^ key[k & 3];
}

std::string encode_frame(bool fin, Opcode op, std::string_view payload, const MaskKey* mask) {
  std::uint8_t header[kMaxHeader];
  std::size_t h = encode_header(header, fin, op, payload.size(), mask);
  std::string out(reinterpret_cast<const char*>(header), h);
  out.append(payload);
  if (mask) {
    auto* p = reinterpret_cast<std::uint8_t*>(out.data()) + h;
    mask_copy(p, p, payload.size(), *mask);
  }
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  if (code == kCloseNoStatus) return {};
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  out.append(reason);
  return out;
}

Decoder::Result Decoder::fail(Result r, std::uint16_t code, std::string reason) {
  state_ = State::failed;
  close_code_ = code;
  error_reason_ = std::move(reason);
  r.event = Event::error;
  return r;
}

std::size_t Decoder::bytes_before_data() const {
  switch (state_) {
    case State::header:
      return header_need_ - header_len_;
    case State::control:
      return static_cast<std::size_t>(remaining_);
    default:
      return 0;
  }
}

bool Decoder::start_frame() {
  const std::uint8_t b0 = header_[0], b1 = header_[1];
  const bool fin = (b0 & 0x80) != 0;
  opcode_ = static_cast<Opcode>(b0 & 0x0F);
  masked_ = (b1 & 0x80) != 0;
  std::uint64_t len = b1 & 0x7F;
  std::size_t p = 2;
  if (len == 126) {
    len = (std::uint64_t{header_[2]} << 8) | header_[3];
    p = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | header_[2 + i];
    p = 10;
  }
  if (masked_) std::memcpy(mask_.data(), header_.data() + p, 4);
  mask_pos_ = 0;
  remaining_ = len;
  const bool control = (b0 & 0x08) != 0;
  if (control) {
    control_len_ = 0;
    state_ = State::control;
    return true;
  }
  if (len > limits_.max_frame) return false;
  if (opcode_ != Opcode::continuation) message_len_ = 0;
  message_len_ += len;
  if (message_len_ > limits_.max_message) return false;
  in_message_ = !fin;
  state_ = len > 0 ? State::data : State::header;
  return true;
}

Decoder::Event Decoder::finish_control() {
  state_ = State::header;
  switch (opcode_) {
    case Opcode::ping:
      return Event::ping;
    case Opcode::pong:
      return Event::pong;
    default:
      break;
  }
  close_code_ = kCloseNoStatus;
  if (control_len_ >= 2) {
    close_code_ = static_cast<std::uint16_t>((control_[0] << 8) | control_[1]);
    if (!valid_received_close_code(close_code_)) {
      error_reason_ = "invalid close code";
      close_code_ = kCloseProtocolError;
      state_ = State::failed;
      return Event::error;
    }
    if (!valid_utf8({control_.data() + 2, control_len_ - 2})) {
      error_reason_ = "invalid utf8 payload in close frame";
      close_code_ = kCloseProtocolError;
      state_ = State::failed;
      return Event::error;
    }
  }
  state_ = State::closed;
  return Event::close;
}

Decoder::Result Decoder::decode(std::uint8_t* in, std::size_t n, std::uint8_t* out) {
  Result r;
  if (state_ == State::failed) {
    r.event = Event::error;
    return r;
  }
  while (r.consumed < n) {
    switch (state_) {
      case State::closed:
        r.consumed = n;  // nothing after a Close frame counts
        return r;
      case State::failed:
        r.event = Event::error;
        return r;
      case State::header: {
        std::size_t take = std::min(header_need_ - header_len_, n - r.consumed);
        std::memcpy(header_.data() + header_len_, in + r.consumed, take);
        header_len_ += take;
        r.consumed += take;
        if (header_len_ < header_need_) break;
        if (header_need_ == 2) {
          // The first two bytes decide everything but the length: validate them at once, in
          // gorilla's order, with its Close reasons.
          const std::uint8_t b0 = header_[0], b1 = header_[1];
          if (std::uint8_t rsv = b0 & 0x70) {
            static constexpr char kHex[] = "0123456789abcdef";
            std::string reason = "unexpected reserved bits 0x";
            reason += kHex[rsv >> 4];
            reason += '0';
            return fail(r, kCloseProtocolError, reason);
          }
          const std::uint8_t op = b0 & 0x0F;
          const bool fin = (b0 & 0x80) != 0;
          const std::uint8_t len7 = b1 & 0x7F;
          switch (op) {
            case 0x8:
            case 0x9:
            case 0xA:
              if (len7 > kMaxControlPayload)
                return fail(r, kCloseProtocolError, "control frame length > 125");
              if (!fin) return fail(r, kCloseProtocolError, "control frame not final");
              break;
            case 0x1:
            case 0x2:
              if (in_message_)
                return fail(r, kCloseProtocolError, "message start before final message frame");
              break;
            case 0x0:
              if (!in_message_)
                return fail(r, kCloseProtocolError, "continuation after final message frame");
              break;
            default:
              return fail(r, kCloseProtocolError, "unknown opcode " + std::to_string(op));
          }
          if (((b1 & 0x80) != 0) != server_) return fail(r, kCloseProtocolError, "bad MASK");
          header_need_ = header_size(len7 < 126 ? len7 : len7 == 126 ? 126 : 0x10000, server_);
          if (header_len_ < header_need_) break;
        }
        header_len_ = 0;
        header_need_ = 2;
        if (!start_frame()) return fail(r, kCloseMessageTooBig, "");
        if (state_ == State::control && remaining_ == 0) {
          r.event = finish_control();
          if (r.event == Event::close) r.consumed = n;
          return r;
        }
        break;
      }
      case State::control: {
        std::size_t take = std::min<std::size_t>(remaining_, n - r.consumed);
        std::uint8_t* dst = control_.data() + control_len_;
        if (masked_)
          mask_copy(dst, in + r.consumed, take, mask_, mask_pos_);
        else
          std::memcpy(dst, in + r.consumed, take);
        mask_pos_ = (mask_pos_ + take) & 3;
        control_len_ += take;
        remaining_ -= take;
        r.consumed += take;
        if (remaining_ == 0) {
          r.event = finish_control();
          if (r.event == Event::close) r.consumed = n;
          return r;
        }
        break;
      }
      case State::data: {
        std::size_t take = static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(n - r.consumed)));
        std::uint8_t* dst = out + r.produced;
        const std::uint8_t* src = in + r.consumed;
        if (masked_)
          mask_copy(dst, src, take, mask_, mask_pos_);
        else if (dst != src)
          std::memmove(dst, src, take);
        mask_pos_ = (mask_pos_ + take) & 3;
        remaining_ -= take;
        r.consumed += take;
        r.produced += take;
        if (remaining_ == 0) state_ = State::header;
        break;
      }
    }
  }
  return r;
}

}  // namespace gost::proto::ws
