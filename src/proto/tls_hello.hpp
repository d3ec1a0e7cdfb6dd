// Reading the server name (SNI) out of a TLS ClientHello record, for the `auto` handler's TLS
// pass-through (docs/PROTOCOLS.md "core: auto"). No I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace gost::proto::tls {

inline constexpr std::size_t kRecordHeader = 5;
inline constexpr std::size_t kMaxRecord = 16384 + 2048;  // plaintext limit + slack

// True when `head` (≥ 5 bytes) is a TLS handshake record header: 0x16, version 0x0301..0x0304.
bool is_handshake_record(std::string_view head);
// Length of the record body announced by the header (bytes after the 5-byte header).
std::size_t record_length(std::string_view head);

enum class HelloStatus { ok, no_sni, bad };
// Parses one complete handshake record holding a ClientHello; on ok, `server_name` is the first
// host_name entry of the server_name extension.
HelloStatus parse_client_hello(std::string_view record, std::string& server_name);

}  // namespace gost::proto::tls
