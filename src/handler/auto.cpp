// Handler "auto" (the default): sniffs the first bytes and hands the stream to the SOCKS4,
// SOCKS5 or HTTP handler, or (only without auth) passes a TLS ClientHello through to its SNI
// (docs/PROTOCOLS.md "core: auto").
#include <fmt/format.h>

#include "chain/chain.hpp"
#include "core/buffered_stream.hpp"
#include "core/timeout.hpp"
#include "core/tunnel.hpp"
#include "proto/tls_hello.hpp"

namespace gost {
namespace {

namespace tls = proto::tls;

class AutoHandler final : public Handler {
 public:
  explicit AutoHandler(const HandlerOptions& o) : opts_(o) {
    // The sub-handlers share the service's auther, router and metadata.
    http_ = make("http", o);
    socks4_ = make("socks4", o);
    socks5_ = make("socks5", o);
    auto rt = o.config.metadata.get_duration("readTimeout").value_or(std::chrono::nanoseconds(0));
    sniff_timeout_ = rt.count() > 0 ? rt : std::chrono::seconds(15);
  }

  awaitable<void> handle(StreamPtr s, ConnInfo& conn) override {
    std::string head(1, '\0');
    {
      Stream& raw = *s;
      Deadline deadline(raw.executor(), sniff_timeout_, [&raw] { raw.close(); });
      co_await read_some(raw, asio::buffer(head));
      if (head[0] == 0x16) {
        // Only a TLS record starts with 0x16; wait for its whole 5-byte header.
        while (head.size() < tls::kRecordHeader) {
          char more[tls::kRecordHeader];
          auto n = co_await read_some(raw, asio::buffer(more, tls::kRecordHeader - head.size()));
          head.append(more, n);
        }
      }
    }
    const unsigned char first = static_cast<unsigned char>(head[0]);
    if (first == 0x05 || first == 0x04) {
      auto& h = first == 0x05 ? socks5_ : socks4_;
      if (!h)
        throw system_error(asio::error::operation_not_supported, "auto: SOCKS is not available");
      co_return co_await h->handle(with_prefix(std::move(s), std::move(head)), conn);
    }
    if (tls::is_handshake_record(head)) {
      // With auth configured the pass-through would be an open relay to every host's port 443
      // (docs/PROTOCOLS.md "core: auto"): close without dialing, as GOST 3.2.6 does.
      if (opts_.auth) {
        conn.log.debug("auto: TLS ClientHello on a service with auth: closed, nothing dialed");
        co_return;
      }
      co_return co_await tls_passthrough(std::move(s), head, conn);
    }
    co_await http_->handle(with_prefix(std::move(s), std::move(head)), conn);
  }

 private:
  static std::shared_ptr<Handler> make(const char* type, const HandlerOptions& o) {
    auto* f = HandlerRegistry::find(type);
    if (!f) return nullptr;
    HandlerOptions sub = o;
    sub.config.type = type;
    return (*f)(sub);
  }

  // Reads the ClientHello, dials <SNI>:443 through the router and pipes. Only on services without
  // auth (an auth-less auto service is an open proxy anyway).
  awaitable<void> tls_passthrough(StreamPtr s, std::string record, ConnInfo& conn) {
    std::size_t want = tls::kRecordHeader + tls::record_length(record);
    if (want > tls::kMaxRecord) co_return;
    {
      Stream& raw = *s;
      Deadline deadline(raw.executor(), sniff_timeout_, [&raw] { raw.close(); });
      while (record.size() < want) {
        std::size_t old = record.size();
        record.resize(want);
        auto n = co_await read_some(raw, asio::buffer(record.data() + old, want - old));
        record.resize(old + n);
      }
    }
    std::string sni;
    if (tls::parse_client_hello(record, sni) != tls::HelloStatus::ok) {
      conn.log.debug("auto: TLS ClientHello without server name");
      co_return;
    }
    std::string addr = sni + ":443";
    conn.log = conn.log.with("dst", addr);
    // The service's bypass (chain/chain.hpp Router::bypassed): closed, nothing dialed.
    bool refused = co_await opts_.router->bypassed_async("tcp", addr, conn.client_id);
    if (refused) {
      conn.log.debug(fmt::format("bypass: {}", addr));
      co_return;
    }
    auto upstream = co_await opts_.router->dial("tcp", addr, conn);
    co_await write_all(*upstream, asio::buffer(record));
    conn.input_bytes += record.size();
    auto relaying = relay_to_end(std::move(s), std::move(upstream), std::move(addr), conn, {});
    co_await std::move(relaying);
  }

  HandlerOptions opts_;
  std::shared_ptr<Handler> http_, socks4_, socks5_;
  std::chrono::nanoseconds sniff_timeout_{0};
};

GOST_REGISTER(HandlerRegistry, "auto",
              [](const HandlerOptions& o) { return std::shared_ptr<Handler>(new AutoHandler(o)); });

}  // namespace
}  // namespace gost
