// Base64 (RFC 4648) in the two alphabets GOST uses: standard (padded) and URL-safe (unpadded).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gost::proto {

std::string base64_encode(std::string_view data, bool url = false, bool pad = true);
// Strict decoding: the alphabet must match; padding is required iff `pad`.
std::optional<std::string> base64_decode(std::string_view text, bool url = false, bool pad = true);

}  // namespace gost::proto
