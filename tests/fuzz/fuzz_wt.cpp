// libFuzzer target: the WebTransport stream start and SETTINGS codec (proto/wt), what a peer's new
// bidirectional stream and nghttp3's control stream go through.
#include <cstdint>
#include <string>

#include "proto/wt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wt = gost::proto::wt;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto k = wt::classify_stream(in);
  if (k.kind == wt::StreamStart::webtransport &&
      (k.length > size || k.length > 2 * wt::kMaxVarint ||
       wt::stream_preamble(k.session).size() > k.length))
    __builtin_trap();
  if (k.kind == wt::StreamStart::need_more && size >= 2 * wt::kMaxVarint) __builtin_trap();
  if (auto out = wt::add_settings(in, {{wt::kSettingH3Datagram, 1}, {wt::kSettingWtEnabled, 1}})) {
    // 7 bytes more (the length varint may be re-encoded shorter)
    if (out->size() + wt::kMaxVarint < size + 7) __builtin_trap();
    // The patched frame is again a complete control stream start.
    if (!wt::add_settings(*out, {})) __builtin_trap();
  }
  return 0;
}
