// libFuzzer target: the GOST relay codec (header, feature TLVs, datagram framing).
#include <cstdint>
#include <string>

#include "proto/relay.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace relay = gost::proto::relay;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto h = relay::parse_header(in)) {
    auto body = in.substr(relay::kHeaderSize);
    if (body.size() >= h->features_length) {
      if (auto f = relay::parse_features(body.substr(0, h->features_length))) {
        relay::Request r{h->code, *f};
        if (auto enc = relay::encode_request(r)) {
          auto h2 = relay::parse_header(*enc);
          if (!h2 || !relay::parse_features(std::string_view(*enc).substr(relay::kHeaderSize)))
            __builtin_trap();
        }
      }
    }
  }
  if (auto n = relay::datagram_frame_size(in))
    if (*n < 2) __builtin_trap();
  return 0;
}
