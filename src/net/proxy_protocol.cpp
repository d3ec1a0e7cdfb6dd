#include "net/proxy_protocol.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "core/tcp_stream.hpp"
#include "core/timeout.hpp"
#include "proto/proxy_protocol.hpp"

namespace gost::net {
namespace pp = proto::proxy_protocol;

namespace {

error_code last_error() { return error_code(errno, boost::system::system_category()); }

// SO_RCVLOWAT back to 1 when it was raised (docs/ARCHITECTURE.md "Memory": the TLS server waits
// behind a partial record the same way).
struct LowWater {
  int fd;
  int value = 1;
  void set(int v) {
    if (v == value) return;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) == 0) value = v;
  }
  ~LowWater() { set(1); }
};

}  // namespace

// The header is looked for without consuming anything (MSG_PEEK) until it is known complete,
// malformed or absent: a connection without a header is handed on untouched, and with one the
// header alone is read. While a partial header waits, SO_RCVLOWAT makes the socket readable only
// when more has arrived (or the peer's FIN or RST). The wait never blocks another connection: it
// runs in this connection's coroutine, not in the accept loop as GOST's does.
awaitable<void> read_proxy_header(Stream& s) {
  auto* tcp = dynamic_cast<TcpStream*>(&s);
  if (!tcp || !tcp->proxy_header_expected()) co_return;
  tcp->expect_proxy_header(false);
  tcp::socket& sock = *tcp->raw_tcp();
  const int fd = static_cast<int>(sock.native_handle());
  bool expired = false;
  Deadline deadline(sock.get_executor(), kProxyHeaderTimeout, [&sock, &expired] {
    expired = true;
    error_code ignored;
    sock.cancel(ignored);
  });
  LowWater lowat{fd};
  std::string buf;
  std::size_t want = pp::kV2FixedSize;  // enough to tell v1, v2 and no header apart
  for (;;) {
    buf.resize(want);
    ssize_t n = ::recv(fd, buf.data(), want, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      throw system_error(last_error(), "proxy protocol");
    if (n == 0) co_return;  // closed before a byte: nothing to look for
    if (n > 0) {
      std::string_view got(buf.data(), static_cast<std::size_t>(n));
      auto p = pp::parse(got);
      if (p.status == pp::Status::not_proxy) co_return;
      if (p.status == pp::Status::bad)
        throw system_error(asio::error::invalid_argument,
                           fmt::format("proxy protocol: {}", p.error));
      if (p.status == pp::Status::complete) {
        std::size_t done = 0;
        while (done < p.size) {  // all there already: it was just peeked
          ssize_t r = ::recv(fd, buf.data() + done, p.size - done, MSG_DONTWAIT);
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0)
            throw system_error(r == 0 ? asio::error::eof : last_error(), "proxy protocol");
          done += static_cast<std::size_t>(r);
        }
        if (p.header.has_addresses)
          tcp->set_proxied_addresses(p.header.source.to_string(), p.header.destination.to_string());
        co_return;
      }
      // Incomplete. A v1 line is peeked whole at once (it has no length field).
      std::size_t next = buf[0] == pp::kV1Signature[0] ? pp::kV1MaxSize : p.size;
      if (static_cast<std::size_t>(n) == want && next > want) {
        want = next;
        continue;
      }
      pollfd pfd{fd, POLLRDHUP, 0};
      if (::poll(&pfd, 1, 0) != 0) {
        // The peer stopped sending inside the header. Only a signature's prefix so far: that was
        // no header (pires' Read() answers ErrNoProxyProtocol on EOF there); after it, a
        // truncated header.
        std::size_t sig =
            buf[0] == pp::kV1Signature[0] ? pp::kV1Signature.size() : pp::kV2Signature.size();
        if (static_cast<std::size_t>(n) < sig) co_return;
        throw system_error(asio::error::invalid_argument, "proxy protocol: truncated header");
      }
      lowat.set(static_cast<int>(p.size));
    }
    auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, use_nothrow);
    if (expired) throw system_error(asio::error::timed_out, "proxy protocol: reading the header");
    if (ec) throw system_error(ec, "proxy protocol");
  }
}

awaitable<bool> accept_proxy_header(Stream& s, const log::Logger& log) {
  auto* tcp = dynamic_cast<TcpStream*>(&s);
  if (!tcp || !tcp->proxy_header_expected()) co_return true;
  std::string remote = s.remote_address();
  std::string local = s.local_address();
  try {
    co_await read_proxy_header(s);
    co_return true;
  } catch (const system_error& e) {
    bool malformed = e.code() == asio::error::invalid_argument;
    log.with({{"remote", remote}, {"local", local}})
        .write(malformed ? log::Level::error : log::Level::debug, error_text(e));
  }
  co_return false;
}

}  // namespace gost::net
