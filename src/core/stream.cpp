#include "core/stream.hpp"

namespace gost {

awaitable<void> write_all(Stream& s, asio::const_buffer buf, error_code& ec) {
  while (buf.size() > 0) {
    std::size_t n = co_await s.write_some(buf, ec);
    if (ec) co_return;
    buf += n;
  }
}

awaitable<void> write_all(Stream& s, asio::const_buffer buf) {
  error_code ec;
  co_await write_all(s, buf, ec);
  if (ec) throw_error(ec, "write");
}

awaitable<std::size_t> read_some(Stream& s, asio::mutable_buffer buf) {
  error_code ec;
  std::size_t n = co_await s.read_some(buf, ec);
  if (ec) throw_error(ec, "read");
  co_return n;
}

awaitable<std::size_t> NoByteStream::read_some(asio::mutable_buffer, error_code& ec) {
  ec = asio::error::operation_not_supported;
  co_return 0;
}

awaitable<std::size_t> NoByteStream::write_some(asio::const_buffer, error_code& ec) {
  ec = asio::error::operation_not_supported;
  co_return 0;
}

awaitable<void> NoByteStream::shutdown_write(error_code& ec) {
  ec = asio::error::operation_not_supported;
  co_return;
}

}  // namespace gost
