// RFC 6455 WebSocket codec (docs/PROTOCOLS.md "ws"): the HTTP/1.1 upgrade handshake as GOST
// (gorilla/websocket + Go net/http) writes and checks it, and frame encoding/decoding. No I/O:
// net/ws drives it.
//
// The decoder works in place on the bytes the caller just read into its own buffer: frame headers
// and control frames are consumed (a partial header and a control payload are kept inside the
// decoder, at most 14 + 125 bytes), data payload is unmasked and moved to the front. So a
// WebSocket stream needs no read buffer of its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/http.hpp"

namespace gost::proto::ws {

// ---- handshake ("ws: handshake") ----------------------------------------------------------------

inline constexpr std::string_view kDefaultPath = "/ws";

// base64(SHA-1(key + RFC 6455 GUID)).
std::string accept_key(std::string_view key);
// A Sec-WebSocket-Key from 16 random bytes.
std::string make_key(std::span<const std::uint8_t, 16> random);

// Go's url.URL{Path: p}.EscapedPath(): everything except unreserved characters and
// "$&+,/:;=@" is percent-encoded (so "?" becomes %3F); a path without a leading "/" gets one.
std::string escape_path(std::string_view path);
// Percent-decodes a URL path; nullopt on a malformed escape.
std::optional<std::string> unescape_path(std::string_view path);

// Header names a custom `header` map cannot set on the request: the handshake's own (gorilla
// refuses them) and the framing headers Go's request writer never copies.
bool is_reserved_client_header(std::string_view name);

struct ClientRequest {
  std::string path = std::string(kDefaultPath);  // as configured, escaped by client_request()
  std::string host;                              // Host header ("host" metadata or node address)
  std::string key;                               // Sec-WebSocket-Key
  std::vector<http::Header> headers;             // custom headers (names canonicalised)
  bool compression = false;                      // offer permessage-deflate
};
// The request of "ws: handshake" byte for byte: request line, Host, User-Agent, then the remaining
// headers sorted by name. A custom Host overrides `host`; a custom User-Agent replaces Go's (an
// empty one removes the line).
std::string client_request(const ClientRequest& r);

// Server-side verdict on an upgrade request, in the order of "ws: handshake": 404 (path), 400
// (Connection, Upgrade), 405 (method), 400 (version, key); 101 when it may be upgraded.
int check_request(const http::Request& r, std::string_view path);
// The 101 of "ws: handshake" followed by `extra` headers (the listener's `header` map).
std::string response_101(std::string_view key, const std::vector<http::Header>& extra = {});
// The error responses of "ws: handshake" (404 from Go's ServeMux, 400/405 from gorilla's
// http.Error) with the given Date value; `connection_close` appends "Connection: close" (the
// request asked for it).
std::string error_response(int status, std::string_view date, bool connection_close,
                           int version_minor = 1);
// Go's answer to a request it cannot parse (400) or whose head is too large (431); the connection
// is then closed.
std::string malformed_request_response(int status);
// "Mon, 02 Jan 2006 15:04:05 GMT" for a Unix time.
std::string http_date(std::int64_t unix_seconds);

// Client-side check of the server's answer (gorilla's rules, "ws: handshake"). Empty when
// acceptable, else why not. permessage-deflate in the answer is refused (we do not implement it).
std::string check_response(const http::Response& r, std::string_view key);

// ---- framing ("ws: framing")
// ---------------------------------------------------------------------

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

inline constexpr std::size_t kMaxHeader = 14;
inline constexpr std::size_t kMaxControlPayload = 125;

enum CloseCode : std::uint16_t {
  kCloseNormal = 1000,
  kCloseProtocolError = 1002,
  kCloseNoStatus = 1005,  // never sent: an empty Close payload
  kCloseMessageTooBig = 1009,
};

using MaskKey = std::array<std::uint8_t, 4>;

// Header size for a payload of `length` bytes.
constexpr std::size_t header_size(std::uint64_t length, bool masked) {
  return 2 + (length < 126 ? 0 : length <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}
// Writes a frame header into `out` (room for kMaxHeader bytes); returns its size. `mask` null:
// unmasked (server → client).
std::size_t encode_header(std::uint8_t* out, bool fin, Opcode op, std::uint64_t length,
                          const MaskKey* mask);
// XORs `n` bytes with the key, starting at key offset `pos` (0..3); src and dst may be equal.
void mask_copy(std::uint8_t* dst, const std::uint8_t* src, std::size_t n, const MaskKey& key,
               std::size_t pos = 0);
// A whole frame as a string (control frames, tests).
std::string encode_frame(bool fin, Opcode op, std::string_view payload, const MaskKey* mask);
// A Close frame payload: 2-byte code + reason; empty for kCloseNoStatus.
std::string close_payload(std::uint16_t code, std::string_view reason = {});

struct DecoderLimits {
  std::uint64_t max_frame = 64ull << 20;    // payload of one data frame
  std::uint64_t max_message = 64ull << 20;  // payload of one (fragmented) data message
};

class Decoder {
 public:
  enum class Event {
    none,   // input exhausted
    ping,   // control_payload() is the Ping payload to echo in a Pong
    pong,   // control_payload() is the Pong payload
    close,  // close_code()/control_payload(); every later byte is ignored
    error,  // protocol violation: send a Close with close_code()/error_reason(), then drop
  };
  struct Result {
    std::size_t consumed = 0;  // input bytes used (the rest is still to be decoded)
    std::size_t produced = 0;  // data bytes written at `out`
    Event event = Event::none;
  };

  // `server`: frames from the client must be masked; a client rejects masked frames.
  explicit Decoder(bool server, DecoderLimits limits = {}) : server_(server), limits_(limits) {}

  // Decodes `in[0, n)`, writing unmasked data payload to `out`, which may be `in` itself or any
  // address before it (in-place compaction). Stops after a control frame (event set) or at the
  // end of the input.
  Result decode(std::uint8_t* in, std::size_t n, std::uint8_t* out);

  std::span<const std::uint8_t> control_payload() const { return {control_.data(), control_len_}; }
  // Event::close: the received code (kCloseNoStatus when none). Event::error: the code to send.
  std::uint16_t close_code() const { return close_code_; }
  const std::string& error_reason() const { return error_reason_; }

  // How many bytes can be read without reading data payload: the rest of the frame header or of
  // the control payload; 0 while inside data payload (or after close/error).
  std::size_t bytes_before_data() const;
  // Inside a data frame whose payload has not all arrived.
  bool in_data() const { return state_ == State::data; }
  // No partial frame (a clean place for the stream to end).
  bool at_frame_boundary() const { return state_ == State::header && header_len_ == 0; }

 private:
  enum class State { header, control, data, closed, failed };
  Result fail(Result r, std::uint16_t code, std::string reason);
  // Validates a complete header; sets up the payload state. False: failed.
  bool start_frame();
  Event finish_control();

  bool server_;
  DecoderLimits limits_;
  State state_ = State::header;
  std::array<std::uint8_t, kMaxHeader> header_{};
  std::size_t header_len_ = 0;
  std::size_t header_need_ = 2;
  // Current frame.
  Opcode opcode_ = Opcode::binary;
  std::uint64_t remaining_ = 0;
  MaskKey mask_{};
  bool masked_ = false;
  std::size_t mask_pos_ = 0;
  // Fragmented message in progress (a non-final text/binary frame was seen).
  bool in_message_ = false;
  std::uint64_t message_len_ = 0;
  std::array<std::uint8_t, kMaxControlPayload> control_{};
  std::size_t control_len_ = 0;
  std::uint16_t close_code_ = 0;
  std::string error_reason_;
};

}  // namespace gost::proto::ws
