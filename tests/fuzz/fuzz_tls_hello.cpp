// libFuzzer target: the ClientHello SNI reader of the auto handler.
#include <cstdint>
#include <string>

#include "proto/tls_hello.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string sni;
  auto st = gost::proto::tls::parse_client_hello(in, sni);
  if (st == gost::proto::tls::HelloStatus::ok && (sni.empty() || sni.size() > size))
    __builtin_trap();
  return 0;
}
