// libFuzzer target: the PROXY protocol codec (proto/proxy_protocol). A verdict never changes as
// more bytes arrive, a complete header never claims more bytes than it was given, and a header's
// addresses survive a rebuild.
#include <cstdint>
#include <string>

#include "proto/proxy_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace pp = gost::proto::proxy_protocol;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = pp::parse(in);
  switch (p.status) {
    case pp::Status::complete: {
      if (p.size == 0 || p.size > size) __builtin_trap();
      // The same header alone, or with anything after it, is the same verdict.
      auto alone = pp::parse(in.substr(0, p.size));
      if (alone.status != pp::Status::complete || alone.size != p.size) __builtin_trap();
      if (p.header.has_addresses) {
        for (int v : {1, 2}) {
          auto again = pp::parse(
              pp::build_for_node(v, p.header.source.to_string(), p.header.destination.to_string()));
          if (again.status != pp::Status::complete ||
              again.header.source.to_string() != p.header.source.to_string() ||
              again.header.destination.to_string() != p.header.destination.to_string())
            __builtin_trap();
        }
      }
      break;
    }
    case pp::Status::incomplete:
      if (p.size <= size || p.size > pp::kV2FixedSize + pp::kV2MaxBlock) __builtin_trap();
      break;
    case pp::Status::not_proxy:
    case pp::Status::bad:
      // Decided on a prefix: more bytes never change it.
      for (std::size_t n = 1; n < size && n <= 128; ++n) {
        auto q = pp::parse(in.substr(0, n));
        if (q.status != pp::Status::incomplete && q.status != p.status) __builtin_trap();
      }
      break;
  }
  return 0;
}
