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

std::optional<std::string> encode_frame(Cmd cmd, std::uint32_t stream_id,
                                        std::string_view payload) {
  if (payload.size() > kMaxPayload) return std::nullopt;
  std::string out;
  out.reserve(kHeaderSize + payload.size());
  auto len = static_cast<std::uint16_t>(payload.size());
  out.push_back(static_cast<char>(kVersion1));
  out.push_back(static_cast<char>(cmd));
  out.push_back(static_cast<char>(len & 0xFF));
  out.push_back(static_cast<char>(len >> 8));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((stream_id >> (8 * i)) & 0xFF));
  out.append(payload);
  return out;
}

}  // namespace gost::proto::smux
