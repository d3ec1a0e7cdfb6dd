#include "core/xid.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>

namespace gost {

std::string new_xid() {
  static const std::uint32_t machine = std::random_device{}() & 0xFFFFFF;
  static std::atomic<std::uint32_t> counter{std::random_device{}()};
  const auto secs =
      static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  const auto pid = static_cast<std::uint16_t>(::getpid());
  const std::uint32_t c = counter.fetch_add(1, std::memory_order_relaxed);
  unsigned char id[12] = {
      static_cast<unsigned char>(secs >> 24),    static_cast<unsigned char>(secs >> 16),
      static_cast<unsigned char>(secs >> 8),     static_cast<unsigned char>(secs),
      static_cast<unsigned char>(machine >> 16), static_cast<unsigned char>(machine >> 8),
      static_cast<unsigned char>(machine),       static_cast<unsigned char>(pid >> 8),
      static_cast<unsigned char>(pid),           static_cast<unsigned char>(c >> 16),
      static_cast<unsigned char>(c >> 8),        static_cast<unsigned char>(c)};
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuv";
  std::string out;
  out.reserve(20);
  unsigned acc = 0;
  int bits = 0;
  for (unsigned char b : id) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kAlphabet[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (5 - bits)) & 31];
  return out;
}

}  // namespace gost
