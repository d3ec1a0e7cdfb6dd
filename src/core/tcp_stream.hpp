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
  Poll poll_readable() override;
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
  // PROXY protocol (net/proxy_protocol.hpp): set by the listener of a service with
  // proxyProtocol > 0 on each accepted socket, cleared once the header has been looked for.
  void expect_proxy_header(bool on) { expect_proxy_header_ = on; }
  bool proxy_header_expected() const { return expect_proxy_header_; }
  // The addresses a PROXY protocol header gave: reported instead of the socket's from now on.
  void set_proxied_addresses(std::string remote, std::string local) {
    proxied_ = std::make_unique<Proxied>(Proxied{std::move(remote), std::move(local)});
  }

 private:
  tcp::socket socket_;
  std::shared_ptr<metrics::Sink> sink_;
  bool expect_proxy_header_ = false;
  // A socket error (a reset) that a peek in poll_readable() took: the socket reports it once, and
  // the next read would see an EOF instead. The next read returns it.
  int peeked_errno_ = 0;
  struct Proxied {
    std::string remote, local;
  };
  std::unique_ptr<Proxied> proxied_;  // a pointer: no cost per connection without a header
};

// "host:port" text of an endpoint, IPv6 bracketed, v4-mapped IPv6 shown as IPv4.
std::string endpoint_text(const tcp::endpoint& ep);

}  // namespace gost
