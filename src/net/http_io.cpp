#include "net/http_io.hpp"

#include "core/buffer_pool.hpp"

namespace gost::net {

awaitable<void> copy_body(Stream& src, Stream& dst, std::string& pending,
                          const proto::http::Framing& framing, error_code& ec) {
  using proto::http::Framing;
  if (framing.kind == Framing::none) co_return;
  std::uint64_t remaining = framing.length;
  proto::http::ChunkedScanner chunks;

  // Returns how many bytes of `data` belong to the body.
  auto body_part = [&](std::string_view data) -> std::size_t {
    switch (framing.kind) {
      case Framing::sized: {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, data.size()));
        remaining -= n;
        return n;
      }
      case Framing::chunked:
        return chunks.feed(data);
      default:
        return data.size();
    }
  };
  auto finished = [&] {
    if (framing.kind == Framing::sized) return remaining == 0;
    if (framing.kind == Framing::chunked) return chunks.done();
    return false;
  };

  if (!pending.empty()) {
    std::size_t n = body_part(pending);
    if (chunks.bad()) {
      ec = asio::error::invalid_argument;
      co_return;
    }
    co_await write_all(dst, asio::buffer(pending.data(), n), ec);
    if (ec) co_return;
    pending.erase(0, n);
  }
  RelayBuffer buf;
  while (!finished()) {
    std::size_t n = co_await src.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec) {
      if (ec == asio::error::eof && framing.kind == Framing::until_close) ec = {};
      co_return;
    }
    std::string_view data(buf.data(), n);
    std::size_t body = body_part(data);
    if (chunks.bad()) {
      ec = asio::error::invalid_argument;
      co_return;
    }
    co_await write_all(dst, asio::buffer(data.data(), body), ec);
    if (ec) co_return;
    if (body < n) pending.assign(data.substr(body));
  }
}

}  // namespace gost::net
