#include "proto/wt.hpp"

namespace gost::proto::wt {

std::size_t varint_size(std::uint64_t v) {
  return v < (1u << 6) ? 1 : v < (1u << 14) ? 2 : v < (1u << 30) ? 4 : 8;
}

void append_varint(std::string& out, std::uint64_t v) {
  std::size_t n = varint_size(v);
  static constexpr std::uint8_t kPrefix[] = {0, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
  for (std::size_t i = 0; i < n; ++i) {
    auto byte = static_cast<std::uint8_t>(v >> (8 * (n - 1 - i)));
    if (i == 0) byte |= kPrefix[n - 1];
    out.push_back(static_cast<char>(byte));
  }
}

std::optional<std::pair<std::uint64_t, std::size_t>> read_varint(std::string_view in) {
  if (in.empty()) return std::nullopt;
  auto first = static_cast<std::uint8_t>(in[0]);
  std::size_t n = std::size_t{1} << (first >> 6);
  if (in.size() < n) return std::nullopt;
  std::uint64_t v = first & 0x3f;
  for (std::size_t i = 1; i < n; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return std::make_pair(v, n);
}

StreamStart classify_stream(std::string_view start) {
  StreamStart r;
  auto type = read_varint(start);
  if (!type) return r;
  if (type->first == kStreamSignal) {
    auto session = read_varint(start.substr(type->second));
    if (!session) return r;
    r.kind = StreamStart::webtransport;
    r.session = session->first;
    r.length = type->second + session->second;
    return r;
  }
  // HEADERS (RFC 9114 §7.2.2), or a reserved type 0x1f * N + 0x21 (§7.2.8), which nghttp3 skips.
  bool reserved = type->first >= 0x21 && (type->first - 0x21) % 0x1f == 0;
  r.kind = type->first == 0x01 || reserved ? StreamStart::http3 : StreamStart::invalid;
  return r;
}

std::string stream_preamble(std::uint64_t session) {
  std::string out;
  append_varint(out, kStreamSignal);
  append_varint(out, session);
  return out;
}

std::optional<std::string> add_settings(
    std::string_view ctrl, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& extra) {
  auto stream_type = read_varint(ctrl);
  if (!stream_type || stream_type->first != 0x00) return std::nullopt;
  std::size_t pos = stream_type->second;
  auto frame_type = read_varint(ctrl.substr(pos));
  if (!frame_type || frame_type->first != 0x04) return std::nullopt;
  pos += frame_type->second;
  auto length = read_varint(ctrl.substr(pos));
  if (!length) return std::nullopt;
  pos += length->second;
  if (ctrl.size() - pos < length->first) return std::nullopt;
  std::string more;
  for (const auto& [id, value] : extra) {
    append_varint(more, id);
    append_varint(more, value);
  }
  std::string out(ctrl.substr(0, stream_type->second + frame_type->second));
  append_varint(out, length->first + more.size());
  auto payload_end = pos + static_cast<std::size_t>(length->first);
  out.append(ctrl.substr(pos, payload_end - pos));
  out += more;
  out.append(ctrl.substr(payload_end));
  return out;
}

}  // namespace gost::proto::wt
