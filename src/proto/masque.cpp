#include "proto/masque.hpp"

#include "proto/wt.hpp"

namespace gost::proto::masque {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's url.PathUnescape: "%XY" with two hex digits, anything else as is; a broken escape fails.
std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

std::string udp_path(std::string_view host, std::uint16_t port) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out(kUdpPathPrefix);
  for (char ch : host) {
    auto c = static_cast<unsigned char>(ch);
    // url.PathEscape (encodePathSegment): `$ & + : = @` stay, `/ ; , ?` and the rest are escaped.
    if (unreserved(c) || c == '$' || c == '&' || c == '+' || c == ':' || c == '=' || c == '@') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  out.push_back('/');
  out += std::to_string(port);
  out.push_back('/');
  return out;
}

std::optional<UdpTarget> parse_udp_path(std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (!path.starts_with(kUdpPathPrefix)) return std::nullopt;
  auto rest = path.substr(kUdpPathPrefix.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto host = rest.substr(0, slash), port = rest.substr(slash + 1);
  if (host.empty() || port.empty() || port.size() > 5 || port.find('/') != std::string_view::npos)
    return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  auto h = unescape(host);
  if (!h || h->empty()) return std::nullopt;
  return UdpTarget{std::move(*h), static_cast<std::uint16_t>(value)};
}

std::string udp_datagram(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 1);
  out.push_back('\0');  // context ID 0
  out.append(payload);
  return out;
}

std::optional<std::string_view> udp_payload(std::string_view http_datagram) {
  auto ctx = wt::read_varint(http_datagram);
  if (!ctx || ctx->first != 0) return std::nullopt;
  return http_datagram.substr(ctx->second);
}

std::string datagram_capsule(std::string_view http_datagram) {
  std::string out;
  out.reserve(http_datagram.size() + 9);
  wt::append_varint(out, kCapsuleDatagram);
  wt::append_varint(out, http_datagram.size());
  out.append(http_datagram);
  return out;
}

void CapsuleReader::feed(std::string_view bytes) {
  if (bad_) return;
  if (skip_ > 0) {
    auto n = std::min<std::uint64_t>(skip_, bytes.size());
    skip_ -= n;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  if (off_ > 0 && off_ == buf_.size()) {
    buf_.clear();
    off_ = 0;
  }
  buf_.append(bytes);
}

std::optional<std::string> CapsuleReader::next() {
  while (!bad_) {
    if (off_ > 4096 && off_ * 2 > buf_.size()) {  // drop what was consumed
      buf_.erase(0, off_);
      off_ = 0;
    }
    std::string_view in(buf_);
    in.remove_prefix(off_);
    auto type = wt::read_varint(in);
    if (!type) return std::nullopt;
    auto length = wt::read_varint(in.substr(type->second));
    if (!length) return std::nullopt;
    std::size_t head = type->second + length->second;
    if (type->first != kCapsuleDatagram) {
      // Unknown capsules are skipped (RFC 9297 §3.2), also the ones longer than what is held.
      std::uint64_t have = in.size() - head;
      if (length->first <= have) {
        off_ += head + static_cast<std::size_t>(length->first);
        continue;
      }
      skip_ = length->first - have;
      buf_.clear();
      off_ = 0;
      return std::nullopt;
    }
    if (length->first > kMaxDatagramCapsule) {
      bad_ = true;
      return std::nullopt;
    }
    if (in.size() - head < length->first) return std::nullopt;
    std::string value(in.substr(head, static_cast<std::size_t>(length->first)));
    off_ += head + value.size();
    if (off_ == buf_.size()) {
      std::string().swap(buf_);  // an idle flow holds no buffer
      off_ = 0;
    }
    return value;
  }
  return std::nullopt;
}

}  // namespace gost::proto::masque
