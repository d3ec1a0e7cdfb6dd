// Reading HTTP/1.x heads and bodies from Streams (the I/O half of proto/http).
#pragma once

#include <string>

#include "core/stream.hpp"
#include "proto/http.hpp"

namespace gost::net {

// Reads into `buf` until `parse(buf, out, head_len)` completes, fails, or the stream ends.
// Returns ParseStatus::bad on EOF/error before a complete head (ec says which).
template <class Message, class ParseFn>
awaitable<proto::http::ParseStatus> read_head(Stream& s, std::string& buf, Message& out,
                                              std::size_t& head_len, ParseFn parse,
                                              error_code& ec) {
  using proto::http::ParseStatus;
  constexpr std::size_t kChunk = 4096;
  for (;;) {
    if (!buf.empty()) {
      out = Message{};
      auto st = parse(buf, out, head_len);
      if (st != ParseStatus::incomplete) co_return st;
    }
    std::size_t old = buf.size();
    buf.resize(old + kChunk);
    std::size_t n = co_await s.read_some(asio::buffer(buf.data() + old, kChunk), ec);
    buf.resize(old + n);
    if (ec) co_return ParseStatus::bad;
  }
}

inline awaitable<proto::http::ParseStatus> read_request(Stream& s, std::string& buf,
                                                        proto::http::Request& out,
                                                        std::size_t& head_len, error_code& ec) {
  return read_head(
      s, buf, out, head_len,
      [](std::string_view d, proto::http::Request& r, std::size_t& n) {
        return proto::http::parse_request(d, r, n);
      },
      ec);
}

inline awaitable<proto::http::ParseStatus> read_response(Stream& s, std::string& buf,
                                                         proto::http::Response& out,
                                                         std::size_t& head_len, error_code& ec) {
  return read_head(
      s, buf, out, head_len,
      [](std::string_view d, proto::http::Response& r, std::size_t& n) {
        return proto::http::parse_response(d, r, n);
      },
      ec);
}

// Copies one message body from `src` to `dst` according to `framing`. `pending` holds bytes
// already read from `src`; on return it holds the bytes read past the end of the body.
awaitable<void> copy_body(Stream& src, Stream& dst, std::string& pending,
                          const proto::http::Framing& framing, error_code& ec);

}  // namespace gost::net
