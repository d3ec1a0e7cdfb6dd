#include "net/udp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

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
