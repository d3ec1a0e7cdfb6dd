#include "core/tcp_stream.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <utility>

#include "core/metrics.hpp"

namespace gost {

TcpStream::TcpStream(tcp::socket socket) : socket_(std::move(socket)) {
  error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
}

awaitable<std::size_t> TcpStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  if (peeked_errno_ != 0) {
    ec = error_code(std::exchange(peeked_errno_, 0), boost::system::system_category());
    co_return 0;
  }
  auto [e, n] = co_await socket_.async_read_some(buf, use_nothrow);
  ec = e;
  if (sink_) sink_->input(n);
  co_return n;
}

awaitable<std::size_t> TcpStream::write_some(asio::const_buffer buf, error_code& ec) {
  auto [e, n] = co_await socket_.async_write_some(buf, use_nothrow);
  ec = e;
  if (sink_) sink_->output(n);
  co_return n;
}

// Bytes or an EOF already there answer at once, without a reactor round trip: the relay waits
// before every read (docs/ARCHITECTURE.md "The relay"), also in the middle of a bulk transfer.
awaitable<void> TcpStream::wait_readable(error_code& ec) {
  ec = {};
  if (poll_readable().kind == Poll::ready) co_return;
  auto [e] = co_await socket_.async_wait(tcp::socket::wait_read, use_nothrow);
  ec = e;
}

Stream::Poll TcpStream::poll_readable() {
  char c;
  ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0) return {Poll::ready};
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {Poll::idle, &socket_};
  peeked_errno_ = errno;
  return {Poll::ready};
}

awaitable<void> TcpStream::shutdown_write(error_code& ec) {
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  co_return;
}

void TcpStream::count_read(std::size_t n) {
  if (sink_) sink_->input(n);
}

void TcpStream::close() {
  error_code ec;
  socket_.close(ec);
}

std::string endpoint_text(const tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  if (addr.is_v6()) return fmt::format("[{}]:{}", addr.to_string(), ep.port());
  return fmt::format("{}:{}", addr.to_string(), ep.port());
}

std::string TcpStream::remote_address() const {
  if (proxied_) return proxied_->remote;
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  return ec ? std::string() : endpoint_text(ep);
}

std::string TcpStream::local_address() const {
  if (proxied_) return proxied_->local;
  error_code ec;
  auto ep = socket_.local_endpoint(ec);
  return ec ? std::string() : endpoint_text(ep);
}

}  // namespace gost
