// The four component kinds of docs/ARCHITECTURE.md "The model" and their registries (name →
// factory, filled by static registration so that adding a transport or protocol touches one folder
// and one line).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/auth.hpp"
#include "core/log.hpp"
#include "core/stream.hpp"

namespace gost {

class Router;
class Hop;
namespace metrics {
class Request;
}

struct ConnInfo;

// What ends a connection once its handler is done: the "><" line, the request's metrics, its
// connection-limiter slot (app/connection.cpp). A handler that hands its tunnel to a relay of its
// own (core/tunnel.hpp relay_to_end) passes it on with the ConnInfo, and the relay ends the
// connection when the tunnel ends, after every coroutine of the connection has returned
// (docs/ARCHITECTURE.md "Memory").
class ConnectionEnd {
 public:
  virtual ~ConnectionEnd() = default;
  virtual void finish(ConnInfo& conn) = 0;
};

// Per accepted stream: identity for logs and authentication results.
struct ConnInfo {
  // The connection's id is its logger's "sid" field (log.field("sid")): not kept twice.
  std::string remote;     // client address
  std::string local;      // address the client connected to
  std::string client_id;  // the authenticated user
  log::Logger log;
  std::uint64_t input_bytes = 0;        // from the client
  std::uint64_t output_bytes = 0;       // to the client
  metrics::Request* metrics = nullptr;  // this request's series when metrics are on
  // Set by the service's connection coroutine (null elsewhere, e.g. for a mux stream a reverse
  // tunnel serves): the connection may end without it. Moved away with the ConnInfo by
  // relay_to_end(); the coroutine then finds it null and leaves the end to the relay.
  std::unique_ptr<ConnectionEnd> end;

  // The handler is done authenticating: `client_id` is the user ("" without authentication).
  // With metrics.userLabel the request's series is chosen here (its `user` label); later calls
  // change nothing. Call it before relaying.
  void authenticated();
  // The identity for a stream within this connection (a reverse tunnel's inbound connection):
  // its own byte counts, no metrics series and no end (its relay is awaited).
  ConnInfo child() const;
  // The handler failed (an authentication failure answered with 407 and the like): counted in
  // gost_service_handler_errors_total as GOST counts the error its handler returns.
  void failed();
};

// A listening TCP socket passed from a listener to its replacement (a reload that keeps the
// address): the replacement accepts from the same kernel socket and its queue, so no connection
// ever meets a listener that closes under it. `fd` is the sharer's descriptor, which the receiver
// duplicates while the sharer still holds it (during the reload's build); `holders`
// is shared by every listener holding the socket: the last one to close is the one that takes
// the connections still queued (listener/tcp.cpp).
struct SharedListenSocket {
  int fd = -1;
  std::shared_ptr<void> holders;
};

class Listener {
 public:
  virtual ~Listener() = default;
  virtual awaitable<StreamPtr> accept(error_code& ec) = 0;
  // Per-connection transport handshake (TLS, WebSocket upgrade ...), run in the connection's own
  // coroutine so that a slow client never holds up accept(). Throws on failure.
  virtual awaitable<StreamPtr> handshake(StreamPtr s) { co_return s; }
  virtual void close() = 0;
  virtual std::string bound_address() const = 0;  // e.g. "[::]:8080"
  virtual std::string network() const { return "tcp"; }
  // The listening TCP socket, for the listener that replaces this one on the same address and
  // worker (a reload): see SharedListenSocket. Nothing for listeners without one (QUIC, rtcp).
  virtual std::optional<SharedListenSocket> share_socket() { return std::nullopt; }
};

struct ListenerOptions {
  std::string addr;  // listen address as configured (":8080", "127.0.0.1:0", "[::1]:80")
  config::Listener config;
  const config::Metadata* service_metadata = nullptr;
  std::string service;  // the service's name (metrics labels)
  std::string handler;  // the service's handler type (listener http3 serves MASQUE to "masque")
  log::Logger log;
  // Set for the first worker's listener (state the workers' listeners share is created once).
  bool first = false;
  // Check that no other socket holds the address (a bare SO_REUSEPORT bind would join a group
  // another process of the same user listens on). Off when a reload replaces a service of ours
  // on the same address: the new listener takes the old one's socket over (`inherit`) or binds
  // beside it, and the old one is closed afterwards.
  bool check_free = false;
  // The socket of the listener this one replaces (same address, same worker): accepted from
  // instead of binding a new one. TCP listeners only; the others ignore it.
  std::optional<SharedListenSocket> inherit;
  // The listener's own chain (listener.chain): rtcp and rudp bind through it. Null without one.
  std::shared_ptr<Router> router;
};
// Called once per worker io_context; every worker's listener shares the address (SO_REUSEPORT).
using ListenerFactory =
    std::function<std::unique_ptr<Listener>(asio::io_context&, const ListenerOptions&)>;

class Handler {
 public:
  virtual ~Handler() = default;
  // Speaks the protocol on `stream` until done; closes it. Errors are reported by throwing.
  virtual awaitable<void> handle(StreamPtr stream, ConnInfo& conn) = 0;
};

struct HandlerOptions {
  std::string service;
  config::Handler config;
  config::Metadata service_metadata;
  std::shared_ptr<Router> router;
  std::shared_ptr<const Authenticator> auth;  // null = no authentication
  std::shared_ptr<Hop> forwarder;             // fixed targets (port forwarding), may be null
  log::Logger log;
  // The workers' io_contexts: for a handler that listens itself (the tunnel's entrypoint).
  std::vector<asio::io_context*> workers;
  // The configuration's `ingresses` (the tunnel handler's `ingress` option names one).
  std::vector<config::Ingress> ingresses;
};
using HandlerFactory = std::function<std::shared_ptr<Handler>(const HandlerOptions&)>;

class Dialer {
 public:
  virtual ~Dialer() = default;
  // Opens the transport to a node (only the first node of a route is dialed).
  virtual awaitable<StreamPtr> dial(std::string_view addr, const log::Logger& log) = 0;
  // Transport handshake over an existing stream (tls, ws ...); identity for plain transports.
  // Used as is for the later nodes of a route, reached through the previous node.
  virtual awaitable<StreamPtr> handshake(StreamPtr s, std::string_view addr) { co_return s; }
  // A Stream to the first node of a route: dial() then handshake(). Multiplexing dialers (mws,
  // h2, grpc, http3) override it to open a stream on a pooled session instead.
  virtual awaitable<StreamPtr> connect(std::string_view addr, const log::Logger& log) {
    auto s = co_await dial(addr, log);
    co_return co_await handshake(std::move(s), addr);
  }
};

struct DialerOptions {
  config::Dialer config;
  std::string node_addr;
  std::string chain;  // the chain and node the dialer serves (metrics labels, log lines)
  std::string node;
};
using DialerFactory = std::function<std::shared_ptr<Dialer>(const DialerOptions&)>;

// A listener at a node, opened by Connector::bind for reverse forwarding (rtcp/rudp,
// docs/PROTOCOLS.md "rtcp and rudp"). Lives on the executor of the stream it was bound over.
class Binding {
 public:
  virtual ~Binding() = default;
  // The next inbound connection (tcp) or datagram flow (udp: a Stream that is also a
  // net::PacketConn, one datagram per read); its remote_address() is the peer at the node. Fails
  // with ec once the binding has ended.
  virtual awaitable<StreamPtr> accept(error_code& ec) = 0;
  virtual std::string address() const = 0;  // as the node reports it ("[::]:2222")
  virtual void close() = 0;
};

// Options of a UDP binding (GOST's rudp listener: ttl, readBufferSize, readQueueSize, backlog).
struct BindOptions {
  std::chrono::nanoseconds udp_ttl = std::chrono::seconds(5);
  std::size_t udp_buffer_size = 1500;
  std::size_t udp_queue_size = 128;
  std::size_t backlog = 128;
  // false: a flow ends once it has answered every datagram it took (listener udp without
  // keepAlive: request/response).
  bool udp_keepalive = true;
};

class Connector {
 public:
  virtual ~Connector() = default;
  virtual awaitable<StreamPtr> handshake(StreamPtr s) { co_return s; }
  // Asks the node at the other end of `s` to connect to `address`; returns the tunnel stream.
  virtual awaitable<StreamPtr> connect(StreamPtr s, std::string_view network,
                                       std::string_view address, const log::Logger& log) = 0;
  // Asks the node to listen on `address` ("tcp" or "udp") and serve what arrives back over `s`
  // (relay BIND, SOCKS5 MBIND / UDP-TUN). Connectors without BIND refuse (operation_not_supported).
  virtual awaitable<std::unique_ptr<Binding>> bind(StreamPtr s, std::string_view network,
                                                   std::string_view address,
                                                   const BindOptions& options,
                                                   const log::Logger& log);
};

struct ConnectorOptions {
  config::Connector config;
  std::string node_addr;
};
using ConnectorFactory = std::function<std::shared_ptr<Connector>(const ConnectorOptions&)>;

template <class Factory>
class Registry {
 public:
  static bool add(std::string name, Factory f) {
    table().insert_or_assign(std::move(name), std::move(f));
    return true;
  }
  static const Factory* find(std::string_view name) {
    auto it = table().find(name);
    return it == table().end() ? nullptr : &it->second;
  }
  static std::vector<std::string> names() {
    std::vector<std::string> out;
    for (auto& [k, v] : table()) out.push_back(k);
    return out;
  }

 private:
  static std::map<std::string, Factory, std::less<>>& table() {
    static std::map<std::string, Factory, std::less<>> t;
    return t;
  }
};

// "a, b, c": the names a registry knows, for error messages.
template <class R>
std::string registry_names() {
  std::string out;
  for (const auto& n : R::names()) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

using ListenerRegistry = Registry<ListenerFactory>;
using HandlerRegistry = Registry<HandlerFactory>;
using DialerRegistry = Registry<DialerFactory>;
using ConnectorRegistry = Registry<ConnectorFactory>;

#define GOST_CONCAT_INNER(a, b) a##b
#define GOST_CONCAT(a, b) GOST_CONCAT_INNER(a, b)
#define GOST_REGISTER(REGISTRY, NAME, FACTORY) \
  static const bool GOST_CONCAT(gost_registered_, __COUNTER__) = REGISTRY::add(NAME, FACTORY)

// Rejects metadata keys that GOST understands but this implementation does not (no option is
// ever silently ignored). Throws config::ConfigError naming the key and `where`.
void reject_unsupported(const config::Metadata& md, std::initializer_list<std::string_view> keys,
                        std::string_view where);
// The handler options GOST shares between its proxy handlers that we do not implement yet:
// sniffing/MITM, skipauth, hash selection, limiters. (mux.* belongs to the handlers with a
// multiplexed BIND: net/mux.hpp mux_config().)
void reject_unsupported_handler_options(const config::Metadata& md, std::string_view where);

}  // namespace gost
