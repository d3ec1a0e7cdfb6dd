// WebTransport over HTTP/3 wire pieces without I/O (docs/PROTOCOLS.md "wt: wire"): QUIC variable-
// length integers (RFC 9000 §16), the preamble of a bidirectional WebTransport stream (signal 0x41
// + session ID, draft-ietf-webtrans-http3 §4.2), the first frame type that tells it from an
// HTTP/3 request stream, and the SETTINGS both draft generations need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gost::proto::wt {

constexpr std::uint64_t kStreamSignal = 0x41;  // WEBTRANSPORT_STREAM (bidirectional)
// SETTINGS: RFC 9297 H3_DATAGRAM; ENABLE_WEBTRANSPORT (draft-02, what webtransport-go v0.9.0 of
// GOST 3.2.6 requires); WEBTRANSPORT_MAX_SESSIONS (draft-07..12, Chromium); WT_ENABLED (draft-13+,
// webtransport-go v0.10+).
constexpr std::uint64_t kSettingH3Datagram = 0x33;
constexpr std::uint64_t kSettingEnableWebTransport = 0x2b603742;
constexpr std::uint64_t kSettingMaxSessions = 0xc671706a;
constexpr std::uint64_t kSettingWtEnabled = 0x2c7cf000;
// Stream error codes: WebTransport application error 0 as an HTTP/3 code (a stream reset), and
// WT_BUFFERED_STREAM_REJECTED (a stream naming no session of ours).
constexpr std::uint64_t kResetCode = 0x52e4a40fa8dbULL;
constexpr std::uint64_t kStreamRejected = 0x3994bd84;

constexpr std::size_t kMaxVarint = 8;

std::size_t varint_size(std::uint64_t v);
// v must be below 2^62.
void append_varint(std::string& out, std::uint64_t v);
// The value at the start of `in` and its length; nullopt when `in` is shorter than its length.
std::optional<std::pair<std::uint64_t, std::size_t>> read_varint(std::string_view in);

// What the first bytes of a peer's bidirectional stream say it is.
struct StreamStart {
  enum Kind {
    need_more,     // the first varint(s) are not complete yet (at most 16 bytes are ever needed)
    http3,         // an HTTP/3 request stream: HEADERS, or a reserved frame type, first
    webtransport,  // the WebTransport signal and a session ID: `length` bytes of preamble
    invalid,       // a frame type that cannot start a request stream
  } kind = need_more;
  std::uint64_t session = 0;
  std::size_t length = 0;
};
StreamStart classify_stream(std::string_view start);

// The preamble a client writes first on a bidirectional stream of session `session`.
std::string stream_preamble(std::uint64_t session);

// `ctrl` (the first bytes of an HTTP/3 control stream: its type and SETTINGS frame) with
// `extra` identifier/value pairs appended to the SETTINGS frame; nullopt when `ctrl` does not
// start with a complete control stream type and SETTINGS frame.
std::optional<std::string> add_settings(
    std::string_view ctrl, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& extra);

}  // namespace gost::proto::wt
