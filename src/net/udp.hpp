// Datagrams for proxy handlers and connectors: the PacketConn interface (one datagram per call,
// each with its peer address), a PacketConn over a plain UDP socket, and UDP-TUN — datagrams framed
// on a Stream (docs/PROTOCOLS.md "socks5: UDP-TUN", "relay: framing"). Plus exact-size reads for
// handshakes, which must never consume bytes beyond the message they read.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/stream.hpp"
#include "proto/socks5.hpp"

namespace gost::net {

using udp = asio::ip::udp;

// One datagram per call. `addr` is "host:port" (IPv6 bracketed): on read the peer the datagram
// came from (or, for a client-facing proxy conn, the destination the client asked for); on write
// where it goes.
class PacketConn {
 public:
  virtual ~PacketConn() = default;
  // Payloads larger than `buf` are truncated.
  virtual awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                           error_code& ec) = 0;
  virtual awaitable<void> write_to(asio::const_buffer buf, std::string_view addr,
                                   error_code& ec) = 0;
  virtual void close() = 0;
};

// Host for a UDP destination: an IP literal as is; a name resolved by the system resolver, the
// first IPv4 answer preferred (GOST's rule). Throws on failure.
awaitable<asio::ip::address> resolve_udp_host(std::string_view host);

// "ip:port" of an endpoint, IPv4-mapped IPv6 shown as IPv4.
std::string endpoint_text(const udp::endpoint& ep);
// Parses an IP literal, unwrapping IPv4-mapped IPv6 (so it can be bound to an IPv4 socket).
std::optional<asio::ip::address> parse_ip(std::string_view text);

// An unconnected UDP socket as a PacketConn (a direct UDP "dial" with an empty address).
class UdpSocketConn final : public PacketConn {
 public:
  explicit UdpSocketConn(udp::socket s) : socket_(std::move(s)) {}
  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override;
  awaitable<void> write_to(asio::const_buffer buf, std::string_view addr, error_code& ec) override;
  void close() override;
  udp::socket& socket() { return socket_; }

 private:
  udp::socket socket_;
};

// A UDP socket bound to `ip`:`port` (port 0 = ephemeral). Without `ip`: a dual-stack [::] socket,
// or 0.0.0.0 where IPv6 is unavailable. Throws system_error.
udp::socket open_udp(asio::any_io_executor ex, std::optional<asio::ip::address> ip,
                     unsigned short port);

// The socket of a UDP listener on `addr` (":5353", "127.0.0.1:53", "[::1]:443"), SO_REUSEPORT so
// that every worker binds its own (the kernel keeps a peer's 4-tuple on one of them): no host →
// dual-stack [::], or 0.0.0.0 where IPv6 is unavailable. Throws ConfigError / system_error.
udp::socket bind_udp_listen(asio::io_context& ctx, const std::string& addr);

// Fails with EADDRINUSE when another socket (of any process) holds the UDP address, which a bare
// SO_REUSEPORT bind would not detect for sockets of the same user that also set it.
void check_udp_address_free(const std::string& addr, std::string_view where);

// A connected UDP socket to `addr` ("host:port"; names: system resolver, IPv4 preferred) as a
// Stream of whole datagrams and a PacketConn bound to that peer (writes go there whatever
// address they name): a direct UDP CONNECT. Throws system_error.
awaitable<StreamPtr> dial_udp(std::string addr);

// UDP-TUN: each datagram is one frame `LEN(2) FF ATYP ADDR PORT DATA` on the inner stream. The
// object is also the inner Stream itself (raw bytes), so a connector can return it from connect()
// and a handler can recover the datagram view with dynamic_cast<PacketConn*>.
class UdpTunStream final : public Stream, public PacketConn {
 public:
  explicit UdpTunStream(StreamPtr inner) : inner_(std::move(inner)) {}

  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override;
  // Zero-length datagrams cannot be framed (LEN 0 means something else to GOST): dropped.
  awaitable<void> write_to(asio::const_buffer buf, std::string_view addr, error_code& ec) override;
  void close() override { inner_->close(); }

  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    return inner_->write_some(buf, ec);
  }
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

 private:
  StreamPtr inner_;
  std::string rbuf_;  // bytes read but not yet returned (a partial frame)
};

// A datagram flow framed `LEN(2) DATA` on a stream, both ways (relay UDP CONNECT, the tunnel's
// UDP flows: docs/PROTOCOLS.md "relay: framing"), with one peer: as a Stream one datagram per
// read_some/write_some; as a PacketConn reads report `peer` and writes go to it whatever they
// name. `prefix_` (a request, for a connector that sends it with the first datagram) rides on
// the first write.
class LenDatagramFlow : public Stream, public PacketConn {
 public:
  LenDatagramFlow(StreamPtr inner, std::string peer, std::string prefix = {})
      : inner_(std::move(inner)), peer_(std::move(peer)), prefix_(std::move(prefix)) {}

  asio::any_io_executor executor() override { return inner_->executor(); }
  // A datagram longer than `buf` is truncated (the rest of its frame is read and dropped).
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  // Larger than a frame can carry: message_size.
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override;
  awaitable<void> write_to(asio::const_buffer buf, std::string_view, error_code& ec) override;
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  void close() override { inner_->close(); }
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

 protected:
  StreamPtr inner_;
  std::string peer_;
  std::string prefix_;
};

// Reads exactly `n` bytes (ec = eof when the stream ends first).
awaitable<void> read_exact(Stream& s, char* p, std::size_t n, error_code& ec);

// Reads one `LEN(2) DATA` datagram frame (relay UDP CONNECT, the tunnel's UDP flows:
// docs/PROTOCOLS.md "relay: framing") into `buf`; a longer datagram is truncated and the rest of
// its frame read and dropped. The writer's side is proto::relay::encode_datagram.
awaitable<std::size_t> read_len_datagram(Stream& s, asio::mutable_buffer buf, error_code& ec);

// Reads one message with exact reads, guided by `parse` (a proto::socks5-style parser), appending
// to `buf`. Returns the final parse result: complete (buf holds the message), or bad; on an I/O
// error `ec` is set and the status is incomplete.
awaitable<proto::socks5::Parsed> read_message(
    Stream& s, std::string& buf,
    const std::function<proto::socks5::Parsed(std::string_view)>& parse, error_code& ec);

}  // namespace gost::net
