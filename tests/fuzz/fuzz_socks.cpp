// libFuzzer target: the SOCKS5 and SOCKS4/4a codecs (every parser, with re-encoding round trips).
#include <cstdint>
#include <string>
#include <vector>

#include "proto/socks4.hpp"
#include "proto/socks5.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace s5 = gost::proto::socks5;
  namespace s4 = gost::proto::socks4;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::uint8_t> methods;
  auto g = s5::parse_greeting(in, methods);
  if (g.status == s5::Status::complete && g.size > size) __builtin_trap();
  std::uint8_t m = 0;
  (void)s5::parse_method_reply(in, m);
  std::string user, pass;
  (void)s5::parse_user_pass_request(in, user, pass);
  s5::Request req;
  if (s5::parse_request(in, req).status == s5::Status::complete) {
    // A parsed request re-encodes to bytes that parse to the same address.
    std::string again = s5::request(req.cmd, req.addr);
    s5::Request back;
    if (!again.empty() && (s5::parse_request(again, back).status != s5::Status::complete ||
                           back.addr.to_string() != req.addr.to_string()))
      __builtin_trap();
  }
  s5::UdpHeader uh;
  (void)s5::parse_udp_header(in, uh);
  s4::Request r4;
  (void)s4::parse_request(in, r4);
  std::uint8_t cd = 0;
  (void)s4::parse_reply(in, cd);
  return 0;
}
