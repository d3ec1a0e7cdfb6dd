// Base64 (RFC 4648) in the two alphabets GOST uses: standard (padded) and URL-safe (unpadded).
// Table-driven (two output characters per lookup when encoding, one pre-shifted lookup per input
// character when decoding), so that PHT, which carries every tunnel byte as base64, is not
// limited by it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace gost::proto {

std::string base64_encode(std::string_view data, bool url = false, bool pad = true);
// Strict decoding: the alphabet must match; padding is required iff `pad`.
std::optional<std::string> base64_decode(std::string_view text, bool url = false, bool pad = true);

// Length of the standard padded encoding of `n` bytes.
constexpr std::size_t base64_encoded_size(std::size_t n) { return (n + 2) / 3 * 4; }
// Appends the standard padded encoding of `data` to `out` (no intermediate string).
void base64_append(std::string& out, std::string_view data);
// Decodes standard padded base64 and appends the bytes to `out`; false (out unchanged) when
// `text` is not valid.
bool base64_decode_append(std::string& out, std::string_view text);

}  // namespace gost::proto
