// A Stream over a plain TCP socket.
#pragma once

#include <memory>

#include "core/stream.hpp"

namespace gost {
namespace metrics {
class Sink;
}

class TcpStream final : public Stream {
 public:
  explicit TcpStream(tcp::socket socket);
  asio::any_io_executor executor() override { return socket_.get_executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<void> wait_readable(error_code& ec) override;
  awaitable<void> shutdown_write(error_code& ec) override;
  void close() override;
  tcp::socket* raw_tcp() override { return &socket_; }
  std::string remote_address() const override;
  std::string local_address() const override;
  // Counts every byte read and written (the raw accepted connection of a service, for metrics).
  void count_traffic(std::shared_ptr<metrics::Sink> s) { sink_ = std::move(s); }
  bool counts_traffic() const { return sink_ != nullptr; }
  // Bytes read from the socket by someone else (OpenSSL reading it directly).
  void count_read(std::size_t n);

 private:
  tcp::socket socket_;
  std::shared_ptr<metrics::Sink> sink_;
};

// "host:port" text of an endpoint, IPv6 bracketed, v4-mapped IPv6 shown as IPv4.
std::string endpoint_text(const tcp::endpoint& ep);

}  // namespace gost
