#include "net/udp.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "config/model.hpp"
#include "core/address.hpp"
#include "proto/relay.hpp"

namespace gost::net {

namespace socks5 = proto::socks5;

std::optional<asio::ip::address> parse_ip(std::string_view text) {
  error_code ec;
  auto ip = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  return ip;
}

std::string endpoint_text(const udp::endpoint& ep) {
  auto ip = ep.address();
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  return join_host_port(ip.to_string(), std::to_string(ep.port()));
}

awaitable<asio::ip::address> resolve_udp_host(std::string_view host) {
  if (auto ip = parse_ip(host)) co_return *ip;
  auto ex = co_await asio::this_coro::executor;
  udp::resolver resolver(ex);
  auto [ec, results] = co_await resolver.async_resolve(std::string(host), "", use_nothrow);
  if (ec || results.empty()) throw system_error(ec, fmt::format("resolve {}", host));
  for (const auto& r : results)
    if (r.endpoint().address().is_v4()) co_return r.endpoint().address();
  co_return results.begin()->endpoint().address();
}

udp::socket open_udp(asio::any_io_executor ex, std::optional<asio::ip::address> ip,
                     unsigned short port) {
  udp::socket s(ex);
  error_code ec;
  if (ip) {
    s.open(ip->is_v4() ? udp::v4() : udp::v6(), ec);
    if (!ec && ip->is_v6()) s.set_option(asio::ip::v6_only(true), ec);
    if (!ec) s.bind({*ip, port}, ec);
    if (ec)
      throw system_error(
          ec, fmt::format("listen udp {}", join_host_port(ip->to_string(), std::to_string(port))));
    return s;
  }
  s.open(udp::v6(), ec);
  if (!ec) s.set_option(asio::ip::v6_only(false), ec);
  if (!ec) s.bind({asio::ip::address_v6::any(), port}, ec);
  if (!ec) return s;
  error_code ignored;
  s.close(ignored);
  s.open(udp::v4(), ec);
  if (!ec) s.bind({asio::ip::address_v4::any(), port}, ec);
  if (ec) throw system_error(ec, fmt::format("listen udp :{}", port));
  return s;
}

udp::socket bind_udp_listen(asio::io_context& ctx, const std::string& addr) {
  auto hp = split_host_port(addr);
  if (!hp || hp->port.empty())
    throw config::ConfigError(fmt::format("listen address \"{}\": missing port", addr));
  unsigned long port_num = 0;
  try {
    port_num = std::stoul(hp->port);
  } catch (...) {
    port_num = 70000;
  }
  if (port_num > 65535)
    throw config::ConfigError(fmt::format("listen address \"{}\": bad port", addr));
  std::optional<asio::ip::address> ip;
  if (!hp->host.empty()) {
    ip = parse_ip(hp->host);
    if (!ip) {
      asio::io_context tmp;
      udp::resolver r(tmp);
      error_code ec;
      auto res = r.resolve(hp->host, hp->port, ec);
      if (ec || res.empty())
        throw config::ConfigError(fmt::format("listen address \"{}\": cannot resolve host", addr));
      ip = res.begin()->endpoint().address();
    }
  }
  udp::socket s(ctx);
  error_code ec;
  udp::endpoint ep =
      ip ? udp::endpoint(*ip, static_cast<unsigned short>(port_num))
         : udp::endpoint(asio::ip::address_v6::any(), static_cast<unsigned short>(port_num));
  s.open(ep.protocol(), ec);
  if (!ec && !ip) s.set_option(asio::ip::v6_only(false), ec);
  if (ec && !ip) {  // no IPv6: 0.0.0.0
    ep = udp::endpoint(asio::ip::address_v4::any(), static_cast<unsigned short>(port_num));
    s = udp::socket(ctx);
    s.open(ep.protocol(), ec);
  }
  if (!ec) {
    int one = 1;
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    s.bind(ep, ec);
  }
  if (ec) throw system_error(ec, fmt::format("listen udp {}", addr));
  return s;
}

// Fails with EADDRINUSE when another socket (of any process) holds the UDP address, which a bare
// SO_REUSEPORT bind would not detect for sockets of the same user that also set it.
void check_udp_address_free(const std::string& addr, std::string_view where) {
  asio::io_context tmp;
  // A plain bind (no SO_REUSEPORT) on the same address: the kernel refuses it if it is taken.
  auto hp = split_host_port(addr);
  if (!hp || hp->port.empty() || hp->port == "0") return;
  asio::ip::udp::resolver r(tmp);
  error_code ec;
  auto res = r.resolve(hp->host.empty() ? "::" : hp->host, hp->port, ec);
  if (ec || res.empty()) return;  // the real bind reports it
  auto ep = res.begin()->endpoint();
  asio::ip::udp::socket s(tmp);
  s.open(ep.protocol(), ec);
  if (!ec && ep.address().is_v6() && ep.address().is_unspecified())
    s.set_option(asio::ip::v6_only(false), ec);
  if (!ec) s.bind(ep, ec);
  if (ec == asio::error::address_in_use)
    throw system_error(ec, fmt::format("{}: listen udp {}", where, addr));
}

// ---- UdpSocketConn ----------------------------------------------------------------------------

awaitable<std::size_t> UdpSocketConn::read_from(asio::mutable_buffer buf, std::string& addr,
                                                error_code& ec) {
  udp::endpoint from;
  auto [e, n] = co_await socket_.async_receive_from(buf, from, use_nothrow);
  ec = e;
  if (!ec) addr = endpoint_text(from);
  co_return n;
}

awaitable<void> UdpSocketConn::write_to(asio::const_buffer buf, std::string_view addr,
                                        error_code& ec) {
  auto hp = split_host_port(addr);
  unsigned port = 0;
  if (!hp || hp->port.empty() ||
      std::from_chars(hp->port.data(), hp->port.data() + hp->port.size(), port).ec != std::errc() ||
      port > 65535) {
    ec = asio::error::invalid_argument;
    co_return;
  }
  asio::ip::address ip;
  try {
    ip = co_await resolve_udp_host(hp->host);
  } catch (const system_error& e) {
    ec = e.code() ? e.code() : asio::error::host_not_found;
    co_return;
  }
  error_code lec;
  auto local = socket_.local_endpoint(lec);
  if (!lec && local.address().is_v6() && ip.is_v4())
    ip = asio::ip::make_address_v6(asio::ip::v4_mapped, ip.to_v4());
  auto [e, n] = co_await socket_.async_send_to(
      buf, udp::endpoint(ip, static_cast<unsigned short>(port)), use_nothrow);
  ec = e;
}

void UdpSocketConn::close() {
  error_code ec;
  socket_.close(ec);
}

// ---- connected UDP ---------------------------------------------------------------------------

namespace {

// The connected UDP socket of a direct UDP CONNECT: a PacketConn bound to one peer (every datagram
// goes there whatever address it names), also usable as a Stream of whole datagrams.
class ConnectedUdp final : public Stream, public PacketConn {
 public:
  explicit ConnectedUdp(udp::socket s) : socket_(std::move(s)) {}
  asio::any_io_executor executor() override { return socket_.get_executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    auto [e, n] = co_await socket_.async_receive(buf, use_nothrow);
    ec = e;
    co_return n;
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    auto [e, n] = co_await socket_.async_send(buf, use_nothrow);
    ec = e;
    co_return n;
  }
  awaitable<void> shutdown_write(error_code& ec) override {
    ec = {};
    co_return;
  }
  awaitable<std::size_t> read_from(asio::mutable_buffer buf, std::string& addr,
                                   error_code& ec) override {
    std::size_t n = co_await read_some(buf, ec);
    error_code ignored;
    if (!ec) addr = endpoint_text(socket_.remote_endpoint(ignored));
    co_return n;
  }
  awaitable<void> write_to(asio::const_buffer buf, std::string_view, error_code& ec) override {
    co_await write_some(buf, ec);
  }
  void close() override {
    error_code ec;
    socket_.close(ec);
  }

 private:
  udp::socket socket_;
};

}  // namespace

awaitable<StreamPtr> dial_udp(std::string addr) {
  auto hp = split_host_port(addr);
  unsigned port = 0;
  bool ok = hp.has_value();
  if (ok) {
    const char* end = hp->port.data() + hp->port.size();
    auto [ptr, pec] = std::from_chars(hp->port.data(), end, port);
    ok = pec == std::errc() && ptr == end && port <= 65535;
  }
  if (!ok) throw system_error(asio::error::invalid_argument, fmt::format("bad address {}", addr));
  std::string host = hp->host.empty() ? std::string("localhost") : hp->host;
  asio::ip::address ip = co_await resolve_udp_host(host);
  udp::endpoint ep(ip, static_cast<unsigned short>(port));
  udp::socket sock(co_await asio::this_coro::executor);
  error_code ec;
  sock.open(ep.protocol(), ec);
  if (!ec) sock.connect(ep, ec);
  if (ec) throw system_error(ec, fmt::format("dial udp {}", addr));
  co_return std::make_unique<ConnectedUdp>(std::move(sock));
}

// ---- UdpTunStream -----------------------------------------------------------------------------

awaitable<std::size_t> UdpTunStream::read_from(asio::mutable_buffer buf, std::string& addr,
                                               error_code& ec) {
  char chunk[16 * 1024];
  for (;;) {
    socks5::UdpHeader h;
    auto p = socks5::parse_udp_header(rbuf_, h);
    if (p.status == socks5::Status::bad) {
      ec = asio::error::invalid_argument;
      co_return 0;
    }
    if (p.status == socks5::Status::complete && rbuf_.size() >= p.size + h.rsv) {
      std::size_t n = std::min<std::size_t>(h.rsv, buf.size());
      std::memcpy(buf.data(), rbuf_.data() + p.size, n);
      rbuf_.erase(0, p.size + h.rsv);
      addr = h.addr.to_string();
      co_return n;
    }
    std::size_t got = co_await inner_->read_some(asio::buffer(chunk), ec);
    if (ec) co_return 0;
    rbuf_.append(chunk, got);
  }
}

awaitable<void> UdpTunStream::write_to(asio::const_buffer buf, std::string_view addr,
                                       error_code& ec) {
  if (buf.size() == 0) co_return;
  if (buf.size() > 0xFFFF) {
    ec = asio::error::message_size;
    co_return;
  }
  auto a = socks5::address_from_text(addr);
  std::string frame = a ? socks5::udp_tun_header(static_cast<std::uint16_t>(buf.size()), *a) : "";
  if (frame.empty()) {
    ec = asio::error::invalid_argument;
    co_return;
  }
  frame.append(static_cast<const char*>(buf.data()), buf.size());
  co_await write_all(*inner_, asio::buffer(frame), ec);
}

awaitable<std::size_t> UdpTunStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  if (!rbuf_.empty()) {
    std::size_t n = std::min(buf.size(), rbuf_.size());
    std::memcpy(buf.data(), rbuf_.data(), n);
    rbuf_.erase(0, n);
    co_return n;
  }
  co_return co_await inner_->read_some(buf, ec);
}

// ---- exact reads ------------------------------------------------------------------------------

awaitable<std::size_t> read_len_datagram(Stream& s, asio::mutable_buffer buf, error_code& ec) {
  unsigned char len[2];
  co_await read_exact(s, reinterpret_cast<char*>(len), 2, ec);
  if (ec) co_return 0;
  std::size_t size = (std::size_t{len[0]} << 8) | len[1];
  std::size_t keep = std::min(size, buf.size());
  co_await read_exact(s, static_cast<char*>(buf.data()), keep, ec);
  if (ec) co_return 0;
  if (size > keep) {
    std::string rest(size - keep, '\0');
    co_await read_exact(s, rest.data(), rest.size(), ec);
    if (ec) co_return 0;
  }
  co_return keep;
}

awaitable<std::size_t> LenDatagramFlow::read_some(asio::mutable_buffer buf, error_code& ec) {
  return read_len_datagram(*inner_, buf, ec);
}

awaitable<std::size_t> LenDatagramFlow::write_some(asio::const_buffer buf, error_code& ec) {
  auto frame = proto::relay::encode_datagram(
      std::string_view(static_cast<const char*>(buf.data()), buf.size()));
  if (!frame) {
    ec = asio::error::message_size;
    co_return 0;
  }
  std::string out = std::move(prefix_);
  prefix_.clear();
  out += *frame;
  co_await write_all(*inner_, asio::buffer(out), ec);
  co_return ec ? 0 : buf.size();
}

awaitable<std::size_t> LenDatagramFlow::read_from(asio::mutable_buffer buf, std::string& addr,
                                                  error_code& ec) {
  std::size_t n = co_await read_some(buf, ec);
  if (!ec) addr = peer_;
  co_return n;
}

awaitable<void> LenDatagramFlow::write_to(asio::const_buffer buf, std::string_view,
                                          error_code& ec) {
  co_await write_some(buf, ec);
}

awaitable<void> read_exact(Stream& s, char* p, std::size_t n, error_code& ec) {
  while (n > 0) {
    std::size_t got = co_await s.read_some(asio::buffer(p, n), ec);
    if (ec) co_return;
    if (got == 0) {
      ec = asio::error::eof;
      co_return;
    }
    p += got;
    n -= got;
  }
}

awaitable<proto::socks5::Parsed> read_message(
    Stream& s, std::string& buf,
    const std::function<proto::socks5::Parsed(std::string_view)>& parse, error_code& ec) {
  for (;;) {
    auto r = parse(buf);
    if (r.status != socks5::Status::incomplete) co_return r;
    std::size_t have = buf.size();
    buf.resize(r.size);
    co_await read_exact(s, buf.data() + have, r.size - have, ec);
    if (ec) {
      buf.resize(have);
      co_return r;
    }
  }
}

}  // namespace gost::net
