// Listeners "tcp" and "tls": one SO_REUSEPORT acceptor per worker, so a connection stays on the
// worker that accepted it (docs/ARCHITECTURE.md "Concurrency").
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <iterator>

#include "core/address.hpp"
#include "core/component.hpp"
#include "core/tcp_stream.hpp"
#include "net/proxy_protocol.hpp"
#include "net/tls.hpp"

namespace gost {
namespace {

// ":8080" → all interfaces, dual stack; an IPv4 literal → IPv4 only; a name → its first address.
tcp::endpoint listen_endpoint(const std::string& addr) {
  auto hp = split_host_port(addr);
  if (!hp) throw config::ConfigError(fmt::format("invalid listen address \"{}\"", addr));
  unsigned port = 0;
  if (!hp->port.empty()) {
    auto [p, ec] = std::from_chars(hp->port.data(), hp->port.data() + hp->port.size(), port);
    if (ec != std::errc() || p != hp->port.data() + hp->port.size() || port > 65535)
      throw config::ConfigError(fmt::format("invalid port in listen address \"{}\"", addr));
  }
  if (hp->host.empty()) return {asio::ip::address_v6::any(), static_cast<unsigned short>(port)};
  error_code ec;
  auto ip = asio::ip::make_address(hp->host, ec);
  if (!ec) return {ip, static_cast<unsigned short>(port)};
  asio::io_context tmp;
  tcp::resolver resolver(tmp);
  auto results = resolver.resolve(hp->host, hp->port, ec);
  if (ec || results.empty())
    throw config::ConfigError(fmt::format("listen address \"{}\": cannot resolve host", addr));
  return results.begin()->endpoint();
}

// Fails with EADDRINUSE when another socket (of any process) holds the address, which a bare
// SO_REUSEPORT bind would not detect for sockets of the same user that also set it.
void check_address_free(const std::string& addr) {
  auto ep = listen_endpoint(addr);
  if (ep.port() == 0) return;
  asio::io_context tmp;
  tcp::acceptor probe(tmp);
  probe.open(ep.protocol());
  if (ep.address().is_v6() && ep.address().is_unspecified())
    probe.set_option(asio::ip::v6_only(false));
  probe.set_option(tcp::acceptor::reuse_address(true));
  error_code ec;
  probe.bind(ep, ec);
  if (ec) throw system_error(ec, fmt::format("listen tcp {}", addr));
}

class TcpListener : public Listener {
 public:
  TcpListener(asio::io_context& ctx, const ListenerOptions& o) : acceptor_(ctx) {
    reject_unsupported(o.config.metadata, {"mptcp"}, "listener tcp");
    if (o.config.metadata.get_int("proxyProtocol").value_or(0) > 0)
      throw config::ConfigError(
          "listener tcp: proxyProtocol is a service option (GOST reads it from the service's "
          "metadata, -L ...?proxyProtocol=1): move it there");
    // PROXY protocol (docs/PROTOCOLS.md "PROXY protocol"): every wrapping listener (tls, ws, mws,
    // h2, grpc, http2, pht ...) accepts through this one, so the mark below reaches them all.
    if (o.service_metadata)
      proxy_protocol_ = o.service_metadata->get_int("proxyProtocol").value_or(0) > 0;
    if (o.inherit) {
      take_over(*o.inherit, o.addr);
    } else {
      if (o.check_free) check_address_free(o.addr);
      auto ep = listen_endpoint(o.addr);
      acceptor_.open(ep.protocol());
      if (ep.address().is_v6() && ep.address().is_unspecified())
        acceptor_.set_option(asio::ip::v6_only(false));
      acceptor_.set_option(tcp::acceptor::reuse_address(true));
      int one = 1;
      ::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      error_code ec;
      acceptor_.bind(ep, ec);
      if (ec) throw system_error(ec, fmt::format("listen tcp {}", o.addr));
      acceptor_.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) throw system_error(ec, fmt::format("listen tcp {}", o.addr));
      holders_ = std::make_shared<int>(0);
    }
    keepalive_ = o.config.metadata.get_bool("keepalive").value_or(false);
  }

  awaitable<StreamPtr> accept(error_code& ec) override {
    tcp::socket sock(acceptor_.get_executor());
    if (pending_.empty() && acceptor_.is_open()) {
      auto [e, s] = co_await acceptor_.async_accept(use_nothrow);
      ec = e;
      sock = std::move(s);
    }
    if (ec || !sock.is_open()) {
      if (pending_.empty()) {
        if (!ec) ec = asio::error::operation_aborted;
        co_return nullptr;
      }
      ec = {};
      sock = std::move(pending_.front());
      pending_.pop_front();
    }
    error_code ignored;
    if (keepalive_) sock.set_option(asio::socket_base::keep_alive(true), ignored);
    auto stream = std::make_unique<TcpStream>(std::move(sock));
    stream->expect_proxy_header(proxy_protocol_);
    co_return stream;
  }

  // The PROXY header, unless the service's connection coroutine has read it already
  // (app/connection.cpp): the multiplexing listeners and PHT run this handshake in a coroutine of
  // their own per connection.
  awaitable<StreamPtr> handshake(StreamPtr s) override {
    co_await net::read_proxy_header(*s);
    co_return s;
  }

  // Connections the kernel has already completed on this socket would be reset when it closes:
  // the last of our listeners holding the socket takes them first and hands them out through
  // accept() (a removed service serves what was queued for it). One that shares it with its
  // replacement (share_socket) leaves them in the queue, where the replacement accepts them.
  void close() override {
    error_code ec;
    if (acceptor_.is_open() && holders_.use_count() <= 1) {
      acceptor_.non_blocking(true, ec);
      while (!ec && pending_.size() < kMaxDrained) {
        tcp::socket s(acceptor_.get_executor());
        acceptor_.accept(s, ec);
        if (!ec) pending_.push_back(std::move(s));
      }
    }
    release_and_close();
    holders_.reset();
  }
  ~TcpListener() override { release_and_close(); }

  std::optional<SharedListenSocket> share_socket() override {
    if (!acceptor_.is_open()) return std::nullopt;
    return SharedListenSocket{acceptor_.native_handle(), holders_};
  }

  std::string bound_address() const override {
    error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    if (ec) return {};
    if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
    return fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }

 private:
  // The socket of the listener this one replaces (a reload): a descriptor of our own for it,
  // listening with our backlog. Every SO_REUSEPORT and bind choice was made by its first owner.
  void take_over(const SharedListenSocket& from, const std::string& addr) {
    int fd = ::fcntl(from.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
      throw system_error(error_code(errno, asio::error::get_system_category()),
                         fmt::format("listen tcp {}: taking the socket over", addr));
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    error_code ec;
    acceptor_.assign(sa.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      if (!acceptor_.is_open()) ::close(fd);
      throw system_error(ec, fmt::format("listen tcp {}: taking the socket over", addr));
    }
    holders_ = from.holders;
  }

  // Released, then closed: asio leaves a socket it opened itself in epoll at close (the kernel
  // drops it with the last descriptor), which a replacement's duplicate would outlive.
  void release_and_close() {
    if (!acceptor_.is_open()) return;
    error_code ec;
    auto fd = acceptor_.release(ec);
    if (!ec) ::close(fd);
  }

  static constexpr std::size_t kMaxDrained = 4096;
  tcp::acceptor acceptor_;
  // Shared with the listeners that took the socket over from this one, or gave it to this one.
  std::shared_ptr<void> holders_;
  std::deque<tcp::socket> pending_;
  bool keepalive_ = false;
  bool proxy_protocol_ = false;
};

GOST_REGISTER(ListenerRegistry, "tcp", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new TcpListener(ctx, o));
});

// Listener "tls": TCP, then a TLS server handshake per connection (docs/PROTOCOLS.md "tls").
class TlsListener final : public TcpListener {
 public:
  // The certificate is ready (loaded or generated and persisted) before the port is bound.
  TlsListener(asio::io_context& ctx, const ListenerOptions& o)
      : TlsListener(ctx, o, net::server_context(o.config.tls)) {}

  awaitable<StreamPtr> handshake(StreamPtr s) override {
    s = co_await TcpListener::handshake(std::move(s));
    co_return co_await net::tls_accept(std::move(s), tls_, handshake_timeout_);
  }
  std::string network() const override { return "tcp"; }

 private:
  TlsListener(asio::io_context& ctx, const ListenerOptions& o, net::TlsContextPtr tls)
      : TcpListener(ctx, o), tls_(std::move(tls)) {
    // GOST closes a silent or half-finished TLS handshake after 15 s.
    auto t =
        o.config.metadata.get_duration("handshakeTimeout").value_or(std::chrono::nanoseconds(0));
    if (t.count() > 0) handshake_timeout_ = t;
  }

  net::TlsContextPtr tls_;
  std::chrono::nanoseconds handshake_timeout_ = std::chrono::seconds(15);
};

GOST_REGISTER(ListenerRegistry, "tls", [](asio::io_context& ctx, const ListenerOptions& o) {
  return std::unique_ptr<Listener>(new TlsListener(ctx, o));
});

}  // namespace

}  // namespace gost
