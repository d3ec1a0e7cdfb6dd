// libFuzzer target: the HTTP/1 head parsers, chunked scanner and credential decoders.
#include <cstdint>
#include <string>

#include "proto/http.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http = gost::proto::http;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  http::Request req;
  std::size_t n = 0;
  if (http::parse_request(in, req, n) == http::ParseStatus::complete) {
    if (n > size) __builtin_trap();
    (void)http::request_framing(req);
    (void)http::split_absolute_uri(req.target);
    if (auto* pa = req.headers.get("Proxy-Authorization")) (void)http::parse_basic_auth(*pa);
    if (auto* gt = req.headers.get("Gost-Target")) (void)http::decode_gost_target(*gt);
  }
  http::Response resp;
  if (http::parse_response(in, resp, n) == http::ParseStatus::complete) {
    if (n > size) __builtin_trap();
    (void)http::response_framing(resp, "GET");
  }
  http::ChunkedScanner chunks;
  std::size_t used = chunks.feed(in);
  if (used > size) __builtin_trap();
  return 0;
}
