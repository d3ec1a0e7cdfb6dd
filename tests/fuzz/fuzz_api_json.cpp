// libFuzzer target: the web API's request bodies (docs/PROTOCOLS.md "observability: web API") —
// untrusted JSON into the config loader's object readers, and what they accept back out through the
// printer.
#include <cstdint>
#include <string>

#include "config/loader.hpp"
#include "config/printer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace config = gost::config;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    auto s = config::load_service_object(in);
    (void)config::to_compact_json(s);
  } catch (const config::ConfigError&) {
  }
  try {
    auto h = config::load_hop_object(in);
    (void)config::to_compact_json(h);
  } catch (const config::ConfigError&) {
  }
  try {
    auto c = config::load_chain_object(in);
    (void)config::to_compact_json(c);
  } catch (const config::ConfigError&) {
  }
  try {
    auto a = config::load_auther_object(in);
    (void)config::to_compact_json(a);
  } catch (const config::ConfigError&) {
  }
  return 0;
}
