// libFuzzer target: the PHT codec (request targets and tokens, push lines, pull lines, chunked
// pull bodies) and the base64 it rides on.
#include <cstdint>
#include <string>

#include "proto/base64.hpp"
#include "proto/pht.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace pht = gost::proto::pht;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto t = pht::parse_target(in)) {
    if (t->token && !t->bad_query) {
      // A token survives the client's escaping and the server's parsing unchanged.
      auto back = pht::parse_target(pht::request_target(t->path.empty() ? "/" : "/p", *t->token));
      if (!back || back->bad_query || back->token != t->token) __builtin_trap();
    }
  }

  // A push line decodes to bytes that encode back to the same line (modulo '\r' and the
  // leftover bits of a final group, which Go ignores as well).
  auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  if (auto raw = pht::decode_line(line)) {
    auto again = pht::push_body(*raw);
    auto decoded =
        pht::decode_line(std::string_view(again).substr(0, again.empty() ? 0 : again.size() - 1));
    if (!decoded || *decoded != *raw) __builtin_trap();
  }

  // proto/pht's AVX2 base64 (where the CPU has it) answers as proto/base64's scalar code: the
  // same bytes or the same rejection, for any line ('\r' ignored, as Go's decoder does).
  std::string clean;
  for (char c : line)
    if (c != '\r') clean += c;
  if (pht::decode_line(line) != gost::proto::base64_decode(clean)) __builtin_trap();
  if (!in.empty() &&
      pht::push_body(in.substr(0, pht::kMaxChunk)) !=
          gost::proto::base64_encode(in.substr(0, pht::kMaxChunk)) + "\n")
    __builtin_trap();

  // Encoding arbitrary bytes always decodes back.
  std::string chunk;
  pht::append_pull_chunk(chunk, in.substr(0, pht::kMaxChunk));
  gost::proto::http::ChunkedScanner scanner;
  std::string payload;
  scanner.feed(chunk, &payload);
  if (scanner.bad() || payload.empty() || payload.back() != '\n') __builtin_trap();
  payload.pop_back();
  auto round = pht::decode_line(payload);
  if (!round || *round != in.substr(0, pht::kMaxChunk)) __builtin_trap();

  // A hostile pull body: chunk framing and lines from the input, bounded buffering.
  gost::proto::http::ChunkedScanner body_scanner;
  std::string body;
  std::size_t used = 0;
  pht::LineReader reader;
  for (std::size_t off = 0; off < in.size() && !body_scanner.done() && !body_scanner.bad();
       off += 7) {
    body.clear();
    used += body_scanner.feed(in.substr(off, 7), &body);
    reader.feed(body);
    while (auto l = reader.next()) {
      if (l->size() > pht::kMaxLine) __builtin_trap();
      (void)pht::decode_line(*l);
    }
    if (reader.too_long()) break;
  }
  if (used > in.size()) __builtin_trap();
  (void)pht::parse_authorize_body(in);
  return 0;
}
