// libFuzzer target: the smux v1 frame codec (header parsing, validity, frame encoding).
#include <cstdint>
#include <string>

#include "proto/smux.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace smux = gost::proto::smux;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Walks the input as a sequence of frames, as the session's read loop does.
  while (auto h = smux::parse_header(in)) {
    in.remove_prefix(smux::kHeaderSize);
    if (in.size() < h->length) break;
    auto payload = in.substr(0, h->length);
    in.remove_prefix(h->length);
    if (!smux::valid_v1(*h)) break;
    auto enc = smux::encode_frame(static_cast<smux::Cmd>(h->cmd), h->stream_id, payload);
    if (!enc || enc->size() != smux::kHeaderSize + payload.size()) __builtin_trap();
    auto h2 = smux::parse_header(*enc);
    if (!h2 || !(*h2 == *h) || std::string_view(*enc).substr(smux::kHeaderSize) != payload)
      __builtin_trap();
  }
  return 0;
}
