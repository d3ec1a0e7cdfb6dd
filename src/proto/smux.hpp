// smux frame codec (xtaci/smux, protocol versions 1 and 2 — GOST's multiplexer; docs/PROTOCOLS.md
// "smux"): VER(1) | CMD(1) | LENGTH(2, little-endian) | STREAMID(4, little-endian) |
// DATA. Version 2 adds UPD (a stream's window update: CONSUMED(4, LE) WINDOW(4, LE)). Pure
// functions over bytes, no I/O; LENGTH is bounded by its 16-bit field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gost::proto::smux {

inline constexpr std::uint8_t kVersion1 = 1;
inline constexpr std::uint8_t kVersion2 = 2;
inline constexpr std::size_t kUpdSize = 8;  // UPD payload: CONSUMED(4) WINDOW(4), little-endian
// The send window a version-2 stream assumes before the peer's first UPD (smux initialPeerWindow).
inline constexpr std::uint32_t kInitialPeerWindow = 262144;
inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::size_t kMaxPayload = 0xFFFF;

enum class Cmd : std::uint8_t { syn = 0, fin = 1, psh = 2, nop = 3, upd = 4 /* v2 only */ };

struct Header {
  std::uint8_t version = kVersion1;
  std::uint8_t cmd = 0;
  std::uint16_t length = 0;
  std::uint32_t stream_id = 0;
  bool operator==(const Header&) const = default;
};

// Decodes the 8-byte header at the start of `data`; nullopt when fewer than 8 bytes are given.
std::optional<Header> parse_header(std::string_view data);
// True for a header a version-1 session accepts: VER 1 and CMD SYN, FIN, PSH or NOP.
bool valid_v1(const Header& h);
// True for a header a session of `version` accepts: VER equal to it, and CMD SYN, FIN, PSH, NOP
// (and UPD for version 2).
bool valid_for(const Header& h, std::uint8_t version);
// Header + payload; nullopt when the payload exceeds 65535 bytes.
std::optional<std::string> encode_frame(Cmd cmd, std::uint32_t stream_id,
                                        std::string_view payload = {},
                                        std::uint8_t version = kVersion1);
// The UPD payload (version 2).
std::string encode_upd(std::uint32_t consumed, std::uint32_t window);
// CONSUMED and WINDOW of a UPD payload; nullopt when shorter than 8 bytes.
struct Upd {
  std::uint32_t consumed = 0;
  std::uint32_t window = 0;
};
std::optional<Upd> parse_upd(std::string_view payload);

}  // namespace gost::proto::smux
