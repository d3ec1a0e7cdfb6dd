// PHT — Plain HTTP Tunnel (docs/PROTOCOLS.md "pht"): the one server state machine and the one
// client state machine, written against a small "request carrier" interface so that every HTTP
// version that can carry a request and a streamed response carries PHT with the same logic
// (docs/ARCHITECTURE.md "Transports"). HTTP/1.1 over any Stream is net/pht_http1; HTTP/3 will be
// another carrier.
//
// Server: sessions keyed by token, each with two bounded queues (pushed bytes waiting for the
// application, application bytes waiting for the pull). A session is yielded to the service as a
// Stream through accept(). The table is shared by every worker of the service (a push and the
// pull of one session usually arrive on different connections, which SO_REUSEPORT spreads over
// the workers), so the server state is thread-safe: one mutex for the table and the accept
// backlog, one per session for its queues, and cross-thread wake-ups posted to the executor of
// the coroutine that waits. The data itself is copied once per direction (into/out of the queue).
//
// Client: one session = one Stream: write → one push at a time (POST, ≤ 32 KiB raw), read ← the
// lines of one pull (GET) at a time, re-pulled by the rule of docs/PROTOCOLS.md "pht: client".
// Single-threaded: everything of a client session runs on the executor it was dialed on.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/log.hpp"
#include "core/refusals.hpp"
#include "core/stream.hpp"

namespace gost::net::pht {

// ---- limits and timeouts (documented values; docs/PROTOCOLS.md "pht: limits") -----------
struct ServerOptions {
  std::string authorize_path = "/authorize";
  std::string push_path = "/push";
  std::string pull_path = "/pull";
  // Sessions created but not yet accepted by the service; one more waits up to `busy_hold` for
  // room, then is answered 429 (GOST: 429 at once), counted and logged in `refusals`.
  std::size_t backlog = 128;
  std::chrono::nanoseconds busy_hold = std::chrono::seconds(5);
  RefusalsPtr refusals;
  // A pull with nothing to send writes "\n" after this long (GOST: 10 s).
  std::chrono::nanoseconds heartbeat = std::chrono::seconds(10);
  // A push waits this long for the application to take its bytes, then 410 (GOST: 30 s).
  std::chrono::nanoseconds handoff_timeout = std::chrono::seconds(30);
  // A session without a pull attached and without a push in progress for this long is closed
  // (GOST keeps it forever): an authorized but unused session, or a client gone without saying.
  std::chrono::nanoseconds session_idle = std::chrono::seconds(60);
  // A session the application closed while output was still queued and no pull was attached
  // waits this long for a pull to collect it.
  std::chrono::nanoseconds closing_linger = std::chrono::seconds(15);
  // Application bytes queued per session for the pull (the application's write waits beyond).
  std::size_t out_queue_bytes = 64 * 1024;
  // Pushes of one session waiting for their hand-off at once (a GOST client has one); more: 429.
  int max_waiting_pushes = 4;
  // Tokens of closed sessions remembered (answered 403 instead of opening a new session).
  std::size_t stale_tokens = 16384;
  std::chrono::nanoseconds stale_ttl = std::chrono::minutes(10);
};

// The options of listeners pht/phts (and h3): authorizePath, pushPath, pullPath (each also as
// pht.<name>; a value not starting with '/' means the default), backlog. Throws ConfigError
// naming `where` when two paths are equal.
ServerOptions server_options(const config::Metadata& md, std::string_view where);

// ---- the request carrier, server side -----------------------------------------------------------
// One request as the PHT server sees it, whatever HTTP version carries it. Every call is made on
// the exchange's own executor.
class ServerExchange {
 public:
  virtual ~ServerExchange() = default;
  virtual std::string_view method() const = 0;
  virtual std::string_view target() const = 0;  // as sent: "/push?token=..."
  virtual std::string remote_address() const = 0;
  virtual std::string local_address() const = 0;
  // Appends at most `max` (> 0) body bytes to `out`; ec = eof at the end of the body.
  virtual awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) = 0;
  // A complete response without body (404: Go's "404 page not found" body).
  virtual awaitable<void> reply(int status, error_code& ec) = 0;
  virtual awaitable<void> reply_authorize(std::string_view token, error_code& ec) = 0;
  // The pull response: the head is sent (flushed) at once; each send_lines() call sends its lines
  // (raw bytes, base64-encoded by the carrier; an empty element = a heartbeat line) and flushes.
  virtual awaitable<void> start_pull(error_code& ec) = 0;
  virtual awaitable<void> send_lines(const std::vector<std::string>& raw, error_code& ec) = 0;
  virtual awaitable<void> end_pull(error_code& ec) = 0;
  // While the pull streams, `gone` is called (on this executor, at most once) when the carrier
  // sees that the client went away, so that a dead pull is noticed before its next line.
  virtual void watch_client(std::function<void()> gone) {}
};

class Server;

// Serves PHT requests for one service: shared by all its workers' listeners.
class PhtServer {
 public:
  PhtServer(ServerOptions opts, log::Logger log);
  ~PhtServer();
  PhtServer(const PhtServer&) = delete;
  PhtServer& operator=(const PhtServer&) = delete;

  // Serves one request (authorize / push / pull / anything else → 404). Any thread.
  awaitable<void> serve(ServerExchange& ex);

  // Each listener (one per worker) registers once and then accepts sessions on its own executor.
  int add_acceptor();
  // Next session Stream (it lives on the caller's executor); nullptr + operation_aborted after
  // close_acceptor(id). Closing the last acceptor closes every session.
  awaitable<StreamPtr> accept(int acceptor, error_code& ec);
  void close_acceptor(int acceptor);
  // Starts the periodic reaper of idle sessions and stale tokens on `ex` (once).
  void start_reaper(asio::any_io_executor ex);

  const ServerOptions& options() const;
  std::size_t session_count() const;

  // The PhtServer of a service, shared by its workers' listeners: created for the first worker
  // (`first`, or no `service` key), joined by the others (built one after the other from the same
  // listener options, `service` being the service's metadata address).
  static std::shared_ptr<PhtServer> shared(const void* service, bool first, ServerOptions opts,
                                           const log::Logger& log);

 private:
  std::shared_ptr<Server> impl_;
};

// ---- the request carrier, client side -----------------------------------------------------------
struct RequestLimits {
  std::chrono::nanoseconds head_timeout = std::chrono::seconds(30);  // until the response head
  std::chrono::nanoseconds body_idle = std::chrono::seconds(30);     // between body reads
};

// One request to the server. All calls on the executor the request was made on.
class ClientRequest {
 public:
  virtual ~ClientRequest() = default;
  // Sends the request and reads the response head.
  virtual awaitable<void> send(error_code& ec) = 0;
  virtual int status() const = 0;
  // Appends at most `max` body bytes to `out`; ec = eof at the end of the body.
  virtual awaitable<void> read_body(std::string& out, std::size_t max, error_code& ec) = 0;
  // Pending and later calls fail; the connection is not reused.
  virtual void abort() = 0;
};

// The pushes in flight at once, per worker, to one node (issue 16): a push holds its request
// (an HTTP/1.1 connection, a QUIC stream and its body in the send buffers) until the server's
// application took its bytes, so a burst of tunnels without a bound opens a connection per push
// and runs out of descriptors, or queues every tunnel's bulk ahead of the newest tunnel's first
// push until the server's request timeout ends it. Waiting pushes go by the bytes their tunnel
// pushed before (a new tunnel's first push overtakes older tunnels' bulk, as smux's shaper
// does), then first come, first served; the push done hands its slot to the next directly.
class PushQueue {
 public:
  explicit PushQueue(std::size_t limit) : limit_(limit) {}
  // On the tunnel's executor; release() on the same one.
  awaitable<void> acquire(std::uint64_t order);
  void release(const asio::any_io_executor& ex);
  // Whether acquire() would not wait now.
  bool available(const asio::any_io_executor& ex);

 private:
  struct Waiter;
  struct Queued {
    std::uint64_t order, seq;
    std::weak_ptr<Waiter> waiter;
    bool operator>(const Queued& o) const {
      return order != o.order ? order > o.order : seq > o.seq;
    }
  };
  struct Slots {
    std::size_t active = 0;
    std::uint64_t seq = 0;
    std::vector<Queued> waiting;  // a min-heap
  };
  Slots& slots(const asio::any_io_executor& ex);  // the worker's; only its thread uses them
  bool has_room(const Slots& sl) const { return sl.active < limit_ && sl.waiting.empty(); }
  std::mutex mu_;                                 // the map only
  std::map<const void*, Slots> slots_;
  const std::size_t limit_;
};

class ClientCarrier {
 public:
  virtual ~ClientCarrier() = default;
  // A request (nothing sent yet); no body when `body` is null (GET).
  virtual std::shared_ptr<ClientRequest> request(std::string_view method, std::string target,
                                                 std::optional<std::string> body,
                                                 RequestLimits limits) = 0;
  PushQueue& pushes() { return pushes_; }

 private:
  PushQueue pushes_{256};
};

struct ClientOptions {
  std::string authorize_path = "/authorize";
  std::string push_path = "/push";
  std::string pull_path = "/pull";
  // Decoded pull bytes held for the application (the pull stops reading beyond).
  std::size_t in_queue_bytes = 64 * 1024;
};

// The options of dialers pht/phts (and http3): the three paths, as for the server.
ClientOptions client_options(const config::Metadata& md);
// The authority (Host / :authority) of a client's requests (docs/PROTOCOLS.md "pht: client"): the
// `host` option (with the node's port unless it names one), else the node address; an empty node
// host (":8080") is the local host, where the dial goes too.
std::string client_authority(const config::Metadata& md, const std::string& node_addr);

// Opens a tunnel: GET authorize (a token from the server: GOST ≤ 3.2.6 servers require it; any
// other answer than 200 "token=..." or 429 → a local token, as current GOST clients use), starts
// the pull, and returns the session Stream. Throws system_error (429, transport errors).
awaitable<StreamPtr> open_client(std::shared_ptr<ClientCarrier> carrier, const ClientOptions& o,
                                 const log::Logger& log);
// True for a Stream made by open_client (a dialer's handshake() passes it through).
bool is_client_stream(const Stream& s);

// 20 characters of the xid alphabet, from random bytes: same shape as GOST's tokens, not guessable.
std::string random_token();

}  // namespace gost::net::pht
