// Handlers "socks4" and "socks4a": SOCKS4/4a CONNECT as GOST serves it (go-gost/x handler/socks/v4;
// docs/PROTOCOLS.md "socks4"): the USERID is checked as a user with an empty password; BIND is not
// implemented (GOST neither) and unknown commands close the connection without a reply.
#include "proto/socks4.hpp"

#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/timeout.hpp"
#include "core/tunnel.hpp"
#include "net/udp.hpp"

namespace gost {
namespace {

namespace socks4 = proto::socks4;
using std::chrono::nanoseconds;

class Socks4Handler final : public Handler {
 public:
  explicit Socks4Handler(const HandlerOptions& o) : opts_(o) {
    const auto& md = o.config.metadata;
    reject_unsupported_handler_options(md, fmt::format("handler {}", o.config.type));
    // GOST 3.2.6 has no deadline here; a silent client must not hold a connection forever.
    auto rt = md.get_duration("readTimeout").value_or(nanoseconds(0));
    read_timeout_ = rt.count() <= 0 ? std::chrono::seconds(15) : rt;
    idle_timeout_ = md.get_duration("idleTimeout").value_or(nanoseconds(0));
  }

  awaitable<void> handle(StreamPtr client, ConnInfo& conn) override {
    socks4::Request req;
    std::string buf;
    error_code ec;
    proto::socks5::Parsed r;
    {
      Stream& s = *client;
      Deadline deadline(s.executor(), read_timeout_, [&s] { s.close(); });
      r = co_await net::read_message(
          s, buf, [&](std::string_view d) { return socks4::parse_request(d, req); }, ec);
    }
    if (r.status != socks4::Status::complete) {
      if (r.status == socks4::Status::bad) conn.log.error("socks4: bad request");
      co_return;
    }
    if (opts_.auth) {
      // Locals: nothing temporary inside the co_await (docs/ARCHITECTURE.md "Concurrency").
      std::string auth_user(req.userid), auth_pass("");
      std::optional<std::string> id =
          co_await opts_.auth->authenticate_async(opts_.service, auth_user, auth_pass, conn.remote);
      if (!id) {
        conn.log.info(fmt::format("{}: socks4: authentication failed", conn.remote),
                      {{"user", req.userid}});
        co_await write_all(*client, asio::buffer(socks4::reply(socks4::code::rejected_userid)), ec);
        co_return;
      }
      conn.client_id = *id;
      conn.log = conn.log.with({{"user", *id}, {"clientID", *id}});
    }
    conn.authenticated();
    if (req.cmd != socks4::cmd::connect) {
      conn.log.error("socks4: BIND is not supported (GOST does not implement it either)");
      co_return;
    }
    std::string addr = req.address();
    conn.log = conn.log.with("dst", addr);
    // The service's bypass (go-gost/x handler/socks/v4: 0x5C rejected).
    bool refused = co_await opts_.router->bypassed_async("tcp", addr, conn.client_id);
    if (refused) {
      conn.log.debug(fmt::format("bypass: {}", addr));
      co_await write_all(*client, asio::buffer(socks4::reply(socks4::code::rejected)), ec);
      co_return;
    }
    StreamPtr upstream;
    try {
      upstream = co_await opts_.router->dial("tcp", addr, conn);
    } catch (const system_error&) {
    }
    if (!upstream) {
      co_await write_all(*client, asio::buffer(socks4::reply(socks4::code::failed)), ec);
      co_return;
    }
    co_await write_all(*client, asio::buffer(socks4::reply(socks4::code::granted)), ec);
    if (ec) co_return;
    auto relaying = relay_to_end(std::move(client), std::move(upstream), std::move(addr), conn,
                                 {.idle_timeout = idle_timeout_});
    co_await std::move(relaying);
  }

 private:
  HandlerOptions opts_;
  nanoseconds read_timeout_{0};
  nanoseconds idle_timeout_{0};
};

HandlerFactory socks4_factory() {
  return [](const HandlerOptions& o) { return std::shared_ptr<Handler>(new Socks4Handler(o)); };
}

GOST_REGISTER(HandlerRegistry, "socks4", socks4_factory());
GOST_REGISTER(HandlerRegistry, "socks4a", socks4_factory());

}  // namespace
}  // namespace gost
