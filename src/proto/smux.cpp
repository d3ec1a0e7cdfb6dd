#include "proto/smux.hpp"

namespace gost::proto::smux {

std::optional<Header> parse_header(std::string_view data) {
  if (data.size() < kHeaderSize) return std::nullopt;
  auto b = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(data[i]));
  };
  Header h;
  h.version = static_cast<std::uint8_t>(b(0));
  h.cmd = static_cast<std::uint8_t>(b(1));
  h.length = static_cast<std::uint16_t>(b(2) | (b(3) << 8));
  h.stream_id = b(4) | (b(5) << 8) | (b(6) << 16) | (b(7) << 24);
  return h;
}

bool valid_v1(const Header& h) {
  return h.version == kVersion1 && h.cmd <= static_cast<std::uint8_t>(Cmd::nop);
}

bool valid_for(const Header& h, std::uint8_t version) {
  if (h.version != version) return false;
  auto last = version == kVersion2 ? Cmd::upd : Cmd::nop;
  return h.cmd <= static_cast<std::uint8_t>(last);
}

namespace {
void put_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
std::uint32_t le32(std::string_view d) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(d[i]);
  return v;
}
}  // namespace

std::string encode_upd(std::uint32_t consumed, std::uint32_t window) {
  std::string out;
  put_le32(out, consumed);
  put_le32(out, window);
  return out;
}

std::optional<Upd> parse_upd(std::string_view payload) {
  if (payload.size() < kUpdSize) return std::nullopt;
  return Upd{le32(payload.substr(0, 4)), le32(payload.substr(4, 4))};
}

std::optional<std::string> encode_frame(Cmd cmd, std::uint32_t stream_id, std::string_view payload,
                                        std::uint8_t version) {
  if (payload.size() > kMaxPayload) return std::nullopt;
  std::string out;
  out.reserve(kHeaderSize + payload.size());
  auto len = static_cast<std::uint16_t>(payload.size());
  out.push_back(static_cast<char>(version));
  out.push_back(static_cast<char>(cmd));
  out.push_back(static_cast<char>(len & 0xFF));
  out.push_back(static_cast<char>(len >> 8));
  put_le32(out, stream_id);
  out.append(payload);
  return out;
}

}  // namespace gost::proto::smux
