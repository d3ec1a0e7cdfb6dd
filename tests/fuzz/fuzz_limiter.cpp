// libFuzzer target: GOST's limit lines (policy/limiter): lines of the three limiters, then a
// client IP and a few moves on a fake clock.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/limiter.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gost::policy;
  std::string in(reinterpret_cast<const char*>(data), size);
  // Lines up to the first empty line; the rest: the client IP.
  std::vector<std::string> lines;
  std::size_t at = 0;
  for (;;) {
    auto nl = in.find('\n', at);
    if (nl == std::string::npos || nl == at) break;
    lines.push_back(in.substr(at, nl - at));
    at = nl + 1;
  }
  std::string ip = at < in.size() ? in.substr(at) : "127.0.0.1";
  (void)parse_base2_bytes(in);
  auto now = Clock::time_point(std::chrono::seconds(1000));
  TrafficLimiter traffic(lines);
  auto t = traffic.for_connection(ip, now);
  for (int i = 0; i < 4 && t.in; ++i) {
    auto b = t.in->check(65536, now);
    if (b.bytes > 65536 || (b.bytes == 0 && b.wait.count() <= 0)) __builtin_trap();
    t.in->charge(b.bytes ? b.bytes : 1, now);
    now += b.wait;
  }
  ConnLimiter conn(lines);
  auto slot = conn.admit(ip);
  RateLimiter rate(lines);
  (void)rate.allow(ip, now);
  return 0;
}
