// libFuzzer target: the WebSocket codec (proto/ws). The frame decoder runs on the input as the
// server and as the client, once in a single read and once in reads of varying sizes: both must
// give the same data and events (in-place compaction must not depend on read boundaries). The
// handshake checks run on the input as a request and as a response.
#include <cstdint>
#include <string>
#include <vector>

#include "proto/ws.hpp"

namespace {

namespace ws = gost::proto::ws;
namespace http = gost::proto::http;

struct Outcome {
  std::string data;
  std::vector<int> events;
  std::uint16_t code = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome run(bool server, std::string_view input, const std::uint8_t* sizes, std::size_t nsizes) {
  ws::DecoderLimits lim;
  lim.max_frame = 4096;
  lim.max_message = 8192;
  ws::Decoder d(server, lim);
  Outcome out;
  std::size_t off = 0, k = 0;
  while (off < input.size()) {
    std::size_t step = nsizes ? std::size_t(sizes[k++ % nsizes]) + 1 : input.size();
    std::size_t n = std::min(step, input.size() - off);
    std::string buf(input.substr(off, n));
    off += n;
    auto* p = reinterpret_cast<std::uint8_t*>(buf.data());
    std::size_t in = 0, produced = 0;
    bool stop = false;
    while (in < n && !stop) {
      auto r = d.decode(p + in, n - in, p + produced);
      if (r.consumed > n - in || produced + r.produced > in + r.consumed) __builtin_trap();
      in += r.consumed;
      produced += r.produced;
      if (r.event != ws::Decoder::Event::none) {
        out.events.push_back(static_cast<int>(r.event));
        if (d.control_payload().size() > ws::kMaxControlPayload) __builtin_trap();
        stop = r.event == ws::Decoder::Event::error || r.event == ws::Decoder::Event::close;
      } else if (r.consumed == 0) {
        __builtin_trap();  // no progress without an event
      }
    }
    out.data.append(buf.data(), produced);
    if (stop) {
      out.code = d.close_code();
      break;
    }
    if (!d.in_data() && d.bytes_before_data() > ws::kMaxHeader + ws::kMaxControlPayload)
      __builtin_trap();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first bytes choose the read sizes.
  std::size_t nsizes = std::min<std::size_t>(data[0] & 7, size - 1);
  const std::uint8_t* sizes = data + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1 + nsizes), size - 1 - nsizes);
  for (bool server : {true, false}) {
    Outcome whole = run(server, input, nullptr, 0);
    Outcome pieces = run(server, input, sizes, nsizes);
    if (!(whole == pieces)) __builtin_trap();
  }

  http::Request req;
  std::size_t head = 0;
  if (http::parse_request(input, req, head) == http::ParseStatus::complete) {
    int st = ws::check_request(req, "/ws");
    if (st == 101) {
      auto resp = ws::response_101(*req.headers.get("Sec-Websocket-Key"));
      http::Response r;
      std::size_t n = 0;
      if (http::parse_response(resp, r, n) != http::ParseStatus::complete) __builtin_trap();
      if (!ws::check_response(r, *req.headers.get("Sec-Websocket-Key")).empty()) __builtin_trap();
    } else if (st != 400 && st != 404 && st != 405) {
      __builtin_trap();
    }
  }
  http::Response resp;
  if (http::parse_response(input, resp, head) == http::ParseStatus::complete)
    (void)ws::check_response(resp, "dGhlIHNhbXBsZSBub25jZQ==");
  (void)ws::unescape_path(input);
  auto esc = ws::escape_path(input);
  auto back = ws::unescape_path(esc);
  if (!back ||
      (input.empty() || input[0] != '/' ? "/" + std::string(input) : std::string(input)) != *back)
    __builtin_trap();
  return 0;
}
