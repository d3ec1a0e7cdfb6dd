#include "proto/base64.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace gost::proto {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Encoding: every 12-bit group → its two characters.
struct EncodeTable {
  std::array<char, 2 * 4096> pairs;
  explicit EncodeTable(const char* a) {
    for (unsigned v = 0; v < 4096; ++v) {
      pairs[2 * v] = a[v >> 6];
      pairs[2 * v + 1] = a[v & 63];
    }
  }
};

// Decoding: one table per position in a quartet holding the 6-bit value already shifted into
// place, so a quartet is four lookups OR-ed together; an invalid character sets bit 31.
struct DecodeTable {
  static constexpr std::uint32_t kBad = 0x80000000u;
  std::array<std::uint32_t, 256> at[4];
  explicit DecodeTable(const char* a) {
    for (auto& t : at) t.fill(kBad);
    for (unsigned i = 0; i < 64; ++i) {
      auto c = static_cast<unsigned char>(a[i]);
      at[0][c] = i << 18;
      at[1][c] = i << 12;
      at[2][c] = i << 6;
      at[3][c] = i;
    }
  }
};

const EncodeTable& encode_table(bool url) {
  static const EncodeTable std_table(kStd), url_table(kUrl);
  return url ? url_table : std_table;
}
const DecodeTable& decode_table(bool url) {
  static const DecodeTable std_table(kStd), url_table(kUrl);
  return url ? url_table : std_table;
}

// Writes the encoding of `data` at `out`; returns the end. `pad` adds '=' to a partial group.
char* encode_to(char* out, std::string_view data, const EncodeTable& t, bool pad) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  const char* pairs = t.pairs.data();
  for (; n >= 3; n -= 3, p += 3) {
    std::uint32_t v = (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
    std::memcpy(out, pairs + 2 * (v >> 12), 2);
    std::memcpy(out + 2, pairs + 2 * (v & 0xFFF), 2);
    out += 4;
  }
  if (n > 0) {
    std::uint32_t v = std::uint32_t{p[0]} << 16;
    if (n == 2) v |= std::uint32_t{p[1]} << 8;
    std::memcpy(out, pairs + 2 * (v >> 12), 2);
    out += 2;
    if (n == 2) *out++ = pairs[2 * (v & 0xFFF)];
    if (pad) {
      if (n == 1) *out++ = '=';
      *out++ = '=';
    }
  }
  return out;
}

// Decodes `text` (padding already removed; length % 4 != 1) to `out`; returns the end or nullptr
// on an invalid character. Bits left over in a final partial group are ignored, as before.
char* decode_to(char* out, std::string_view text, const DecodeTable& t) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t n = text.size();
  for (; n >= 4; n -= 4, p += 4) {
    std::uint32_t v = t.at[0][p[0]] | t.at[1][p[1]] | t.at[2][p[2]] | t.at[3][p[3]];
    if (v & DecodeTable::kBad) return nullptr;
    out[0] = static_cast<char>(v >> 16);
    out[1] = static_cast<char>(v >> 8);
    out[2] = static_cast<char>(v);
    out += 3;
  }
  if (n >= 2) {
    std::uint32_t v = t.at[0][p[0]] | t.at[1][p[1]];
    if (n == 3) v |= t.at[2][p[2]];
    if (v & DecodeTable::kBad) return nullptr;
    *out++ = static_cast<char>(v >> 16);
    if (n == 3) *out++ = static_cast<char>(v >> 8);
  }
  return out;
}

// Removes padding per the `pad` rule; false when the length cannot be valid.
bool strip_padding(std::string_view& text, bool pad) {
  if (pad) {
    if (text.size() % 4 != 0) return false;
    if (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (!text.empty() && text.back() == '=') text.remove_suffix(1);
  }
  return text.size() % 4 != 1;
}

}  // namespace

std::string base64_encode(std::string_view data, bool url, bool pad) {
  std::string out;
  out.resize(base64_encoded_size(data.size()));
  char* end = encode_to(out.data(), data, encode_table(url), pad);
  out.resize(static_cast<std::size_t>(end - out.data()));
  return out;
}

void base64_append(std::string& out, std::string_view data) {
  std::size_t old = out.size();
  out.resize(old + base64_encoded_size(data.size()));
  encode_to(out.data() + old, data, encode_table(false), true);
}

std::optional<std::string> base64_decode(std::string_view text, bool url, bool pad) {
  if (!strip_padding(text, pad)) return std::nullopt;
  std::string out;
  out.resize(text.size() / 4 * 3 + 2);
  char* end = decode_to(out.data(), text, decode_table(url));
  if (!end) return std::nullopt;
  out.resize(static_cast<std::size_t>(end - out.data()));
  return out;
}

bool base64_decode_append(std::string& out, std::string_view text) {
  if (!strip_padding(text, true)) return false;
  std::size_t old = out.size();
  out.resize(old + text.size() / 4 * 3 + 2);
  char* end = decode_to(out.data() + old, text, decode_table(false));
  if (!end) {
    out.resize(old);
    return false;
  }
  out.resize(static_cast<std::size_t>(end - out.data()));
  return true;
}

}  // namespace gost::proto
