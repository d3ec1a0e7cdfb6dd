// The client endpoint: connect() (a connected UDP socket, the handshake), the ClientSession the
// dialer's pool holds, and the client's TLS credentials.
#include <fmt/format.h>

#include "core/address.hpp"
#include "net/quic_connection.hpp"

namespace gost::net::quic {

using config::ConfigError;

namespace {

class ClientSessionImpl final : public ClientSession {
 public:
  // The credentials must outlive the TLS session: the session keeps them.
  ClientSessionImpl(std::shared_ptr<Connection> c, std::shared_ptr<UdpPort> port,
                    std::shared_ptr<Credentials> cred)
      : conn_(std::move(c)), port_(std::move(port)), cred_(std::move(cred)) {}
  ~ClientSessionImpl() override { close(); }

  std::shared_ptr<RequestStream> open(const Headers& head, bool body, error_code& ec) override {
    return conn_->open_request(head, body, ec);
  }
  std::shared_ptr<RequestStream> open_raw(std::string first, error_code& ec) override {
    return conn_->open_raw_stream(std::move(first), -1, ec);
  }
  bool usable() const override { return conn_->can_open(); }
  bool closing() const override { return conn_->closed() || conn_->goaway(); }
  Clock::time_point idle_since() const override { return conn_->idle_since(); }
  void close() override {
    conn_->close(asio::error::operation_aborted);
    error_code ignored;
    port_->sock.cancel(ignored);
  }

  static awaitable<void> receive(std::shared_ptr<Connection> c, std::shared_ptr<UdpPort> port) {
    while (!c->closed()) {
      auto [ec] = co_await port->sock.async_wait(udp::socket::wait_read, use_nothrow);
      if (ec || c->closed()) break;
      int err = receive_batch(*port, [&](const Datagram& d) { c->on_datagram(d); });
      if (err == ECONNREFUSED) {
        c->close(asio::error::connection_refused, true);
        break;
      }
      c->flush();
    }
    error_code ignored;
    port->sock.close(ignored);
  }

 private:
  std::shared_ptr<Connection> conn_;
  std::shared_ptr<UdpPort> port_;
  std::shared_ptr<Credentials> cred_;
};

std::shared_ptr<Credentials> client_credentials(const ClientTls& tls) {
  auto cred = std::make_shared<Credentials>();
  if (tls.verify) {
    int rv = tls.ca_file.empty() ? gnutls_certificate_set_x509_system_trust(cred->cred)
                                 : gnutls_certificate_set_x509_trust_file(
                                       cred->cred, tls.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
    if (rv < 0) throw ConfigError(fmt::format("tls: cannot load caFile \"{}\"", tls.ca_file));
  }
  if (!tls.cert_file.empty() && !tls.key_file.empty() &&
      gnutls_certificate_set_x509_key_file(cred->cred, tls.cert_file.c_str(), tls.key_file.c_str(),
                                           GNUTLS_X509_FMT_PEM) != 0)
    throw ConfigError(fmt::format("tls: cannot load client certFile \"{}\" / keyFile \"{}\"",
                                  tls.cert_file, tls.key_file));
  return cred;
}

}  // namespace

awaitable<std::shared_ptr<ClientSession>> connect(std::string addr, const ClientTls& tls,
                                                  const Config& cfg, log::Logger log) {
  auto ex = co_await asio::this_coro::executor;
  auto hp = split_host_port(addr);
  if (!hp || hp->port.empty())
    throw system_error(asio::error::invalid_argument, fmt::format("dial udp {}", addr));
  std::string host = hp->host.empty() ? std::string("localhost") : hp->host;
  udp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, hp->port, use_nothrow);
  if (rec || results.empty()) throw system_error(rec, fmt::format("dial udp {}", addr));
  udp::endpoint remote = results.begin()->endpoint();
  for (const auto& r : results)
    if (r.endpoint().address().is_v4()) {  // GOST's rule: IPv4 first
      remote = r.endpoint();
      break;
    }
  udp::socket sock(ex);
  error_code ec;
  sock.open(remote.protocol(), ec);
  if (!ec) sock.connect(remote, ec);
  if (ec) throw system_error(ec, fmt::format("dial udp {}", addr));
  auto port = std::make_shared<UdpPort>(std::move(sock));
  auto cred = client_credentials(tls);
  auto conn = std::make_shared<Connection>(ex, false, port, cfg, log);
  sockaddr_storage rs{};
  std::memcpy(&rs, remote.data(), remote.size());
  conn->init_client(rs, tls, cred);
  asio::co_spawn(ex, ClientSessionImpl::receive(conn, port), asio::detached);
  conn->flush();
  // ngtcp2's handshake timeout closes the connection when it expires.
  error_code hec;
  co_await conn->wait_handshake(hec);
  if (hec) {
    conn->close(hec, true);
    if (hec == asio::error::timed_out)
      throw system_error(hec, fmt::format("quic: handshake with {}", addr));
    throw system_error(hec, fmt::format("quic: handshake with {} failed", addr));
  }
  co_return std::make_shared<ClientSessionImpl>(conn, port, cred);
}

}  // namespace gost::net::quic
